"""planner.serving.gateway and the gateway's part of diff and the step graph, as data: no Docker."""

from __future__ import annotations

import json
from typing import Any

from planner.serving import gateway
from planner.desired import AppConfig, Stack
from planner.diff import diff
from planner.graph import Step, build_graph
from planner.plan import Action, Plan
from providers.types import Observation, ObservedContainer
from state.address import Address
from state.model import ResourceState, State

STACK = "demo"


def stack(gateway_port: int | None = 8080, **app_fields: Any) -> Stack:
    fields = {"name": "llm", "image": "srv:1", "port": 8000, "host_port": 18000, "readiness": "/ready",
              "predict": "/v1/chat/completions", "replicas": 2} | app_fields
    return Stack(name=STACK, file="/x/berth.toml", apps={"llm": AppConfig(**fields)}, gateway_port=gateway_port)


def fresh() -> dict[str, Observation]:
    return {"local": Observation(host="local")}


def applied(desired: Stack, status: str = "ready") -> tuple[State, dict[str, Observation]]:
    """State and host as an apply of `desired`'s gateway left them (apps left out: the
    gateway's changes are what is checked)."""
    address = Address.gateway("local")
    attrs = gateway.attributes(desired, "local") | {"upstreams": {"llm": [18000, 18001]}}
    spec = gateway.container_spec(STACK, address, attrs)
    state = State(stack=STACK, serial=3, resources={str(address): ResourceState(
        address=str(address), type="gateway", host="local", id="g1", status=status, attributes=attrs)})
    container = ObservedContainer(id="g1", name=attrs["name"], state="running", image_id="", labels=spec.labels)
    return state, {"local": Observation(host="local", containers=(container,))}


def gateway_change(plan: Plan):
    [change] = [c for c in plan.changes if c.address == "gateway@local"]
    return change


def test_a_gateway_is_created_on_each_host_that_runs_apps() -> None:
    plan = diff(stack(), None, fresh(), {})
    change = gateway_change(plan)
    assert change.action is Action.CREATE and change.type == "gateway"
    assert change.after["routes"] == {"llm": {"readiness": "/ready", "predict": "/v1/chat/completions",
                                              "probe_interval": 10.0}}
    assert change.after["upstreams"] == {"llm": [18000, 18001]}  # fixed host ports: known before apply
    # listed after the apps, before the host's liveness watcher
    assert [c.address for c in plan.changes[-2:]] == ["gateway@local", "watcher@local"]


def test_no_gateway_without_gateway_port() -> None:
    plan = diff(stack(gateway_port=None), None, fresh(), {})
    assert not [c for c in plan.changes if c.type == "gateway"]


def test_an_applied_gateway_is_a_no_op() -> None:
    desired = stack()
    state, observed = applied(desired)
    assert gateway_change(diff(desired, state, observed, {})).action is Action.NOOP


def test_routes_follow_the_apps_as_an_update_not_a_restart() -> None:
    state, observed = applied(stack())
    change = gateway_change(diff(stack(replicas=3), state, observed, {}))
    assert change.action is Action.UPDATE
    assert change.after["upstreams"]["llm"] == [18000, 18001, 18002]
    graph = build_graph(diff(stack(replicas=3), state, observed, {}))
    assert [s.kind for s in graph.nodes if s.address == "gateway@local"] == ["gateway-routes"]


def test_a_new_port_replaces_the_gateway() -> None:
    state, observed = applied(stack())
    change = gateway_change(diff(stack(gateway_port=9090), state, observed, {}))
    assert change.action is Action.REPLACE and change.forces_replacement == ["port"]


def test_a_stopped_or_relabelled_gateway_is_replaced_and_unconfirmed_routes_reloaded() -> None:
    desired = stack()
    state, observed = applied(desired)
    [container] = observed["local"].containers
    stopped = {"local": Observation(host="local", containers=(ObservedContainer(
        id="g1", name=container.name, state="exited", image_id="", labels=container.labels),))}
    assert gateway_change(diff(desired, state, stopped, {})).action is Action.REPLACE
    state, observed = applied(desired, status="created")
    assert gateway_change(diff(desired, state, observed, {})).action is Action.UPDATE


def test_gateway_is_deleted_when_unset_and_on_destroy() -> None:
    state, observed = applied(stack())
    for plan in (diff(stack(gateway_port=None), state, observed, {}), diff(stack(), state, observed, {}, destroy=True)):
        change = gateway_change(plan)
        assert (change.action, change.ids) == (Action.DELETE, ["g1"])
        assert [s.kind for s in build_graph(plan).nodes if s.address == "gateway@local"] == ["gateway-remove"]


def test_routes_load_after_the_hosts_containers_are_ready() -> None:
    graph = build_graph(diff(stack(), None, fresh(), {}))
    routes = Step("gateway-routes", "gateway@local")
    assert list(graph.predecessors(Step("gateway-image", "gateway@local"))) == []
    for index in (0, 1):
        assert graph.has_edge(Step("wait", f"app.llm.container[{index}]@local"), routes)
    assert graph.has_edge(Step("gateway-start", "gateway@local"), routes)


def test_caddy_config_maps_predict_sync_and_plain_paths_and_sets_request_ids() -> None:
    config = gateway.caddy_config(gateway.attributes(stack(), "local"), {"llm": [18000, 18001]})
    assert config["admin"] == {"listen": "127.0.0.1:2019"}  # the gateway container's own loopback
    server = config["apps"]["http"]["servers"]["berth"]
    assert server["listen"] == [":8080"]
    first, predict, sync, plain, fallback = server["routes"]
    assert first["handle"][0]["request"]["set"] == {"X-Request-Id": ["{http.request.uuid}"]}
    assert first["match"] == [{"not": [{"header": {"X-Request-Id": []}}]}]
    assert predict["match"] == [{"path": ["/llm/predict"]}]
    assert predict["handle"][0] == {"handler": "rewrite", "uri": "/v1/chat/completions?{http.request.uri.query}"}
    assert sync["handle"][0] == {"handler": "rewrite", "strip_path_prefix": "/llm/sync"}
    assert plain["match"] == [{"path": ["/llm/*"]}]
    proxy = plain["handle"][1]
    assert [u["dial"] for u in proxy["upstreams"]] == ["host.docker.internal:18000", "host.docker.internal:18001"]
    assert proxy["health_checks"]["active"]["uri"] == "/ready"
    assert proxy["headers"]["response"] == {"set": {"X-Request-Id": ["{http.request.header.X-Request-Id}"]},
                                            "delete": ["Server"]}
    assert fallback["handle"][0]["status_code"] == 404


def test_an_app_without_readiness_or_predict_gets_no_health_check_or_predict_route() -> None:
    config = gateway.caddy_config(gateway.attributes(stack(readiness=None, predict=None), "local"), {"llm": [18000]})
    routes = config["apps"]["http"]["servers"]["berth"]["routes"]
    assert len(routes) == 4
    assert "health_checks" not in routes[1]["handle"][1]


def test_the_gateway_publishes_its_port_only_and_keeps_its_admin_api_on_its_own_loopback() -> None:
    attrs = gateway.attributes(stack(), "local")
    spec = gateway.container_spec(STACK, Address.gateway("local"), attrs)
    # Its own namespace on Docker's default bridge, beside the replicas it dials.
    # One per host and port, shared by the stacks that ask for the port: no stack's name or label.
    assert spec.network_mode is None and attrs["network"] == "bridge" and spec.name == "berth-gateway-8080"
    assert "berth.stack" not in spec.labels and spec.labels["berth.gateway-port"] == "8080"
    assert (spec.port, spec.host_port) == (8080, 8080)
    assert spec.env["BERTH_GATEWAY_ADMIN"] == "127.0.0.1:2019"
    assert gateway.caddy_config(attrs, {})["admin"] == {"listen": "127.0.0.1:2019"}
    # Connections queued during a config reload go to Caddy's new socket, not reset.
    assert spec.sysctls == {"net.ipv4.tcp_migrate_req": "1"}
    assert spec.extra_hosts == {"host.docker.internal": "host-gateway"}
    # It boots with every stack's routes, composed from the fragments on its volume,
    # where Caddy's data (the internal CA) lives too: a new container keeps both.
    assert f"{gateway.COMPOSE_FILE} boot" in spec.command[-1]
    [volume] = spec.volumes
    assert (volume.source, volume.target, volume.named) == ("berth-gateway-8080", gateway.DATA_DIR, True)
    assert spec.env["XDG_DATA_HOME"].startswith(gateway.DATA_DIR + "/")


def test_a_gateway_from_before_its_own_network_is_replaced() -> None:
    state, observed = applied(stack())
    del state.resources["gateway@local"].attributes["network"]
    change = gateway_change(diff(stack(), state, observed, {}))
    assert change.action is Action.REPLACE and change.forces_replacement == ["network"]


def test_every_step_kind_has_words_in_the_apply_view() -> None:
    from typing import get_args

    from berth.ui.apply_view import VERBS
    from planner.graph import StepKind

    assert set(get_args(StepKind)) <= set(VERBS)


# Rolling replace: apps behind a running gateway publish on free ports berth picks (host_port None).

def rolled_out(image: str = "srv:1", replicas: int = 2) -> tuple[Stack, State, dict[str, Observation]]:
    """A served app with its replicas on picked ports (32770, 32771) and the gateway
    routing to them, as an apply left them."""
    from planner.resources import config_hash, container_attributes, container_spec

    desired = stack(host_port=None, image=image, replicas=replicas)
    state, observed = applied(desired)
    state.resources["gateway@local"].attributes["upstreams"] = {"llm": [32770 + i for i in range(replicas)]}
    containers = list(observed["local"].containers)
    for index in range(replicas):
        address = Address.container("llm", index, "local")
        attrs = container_attributes(STACK, desired.apps["llm"], index, image) | {"published_port": 32770 + index}
        state.resources[str(address)] = ResourceState(address=str(address), type="container", host="local",
                                                      id=f"c{index}", status="ready", attributes=attrs)
        labels = container_spec(STACK, address, attrs).labels
        assert labels["berth.config-hash"] == config_hash(attrs)
        containers.append(ObservedContainer(id=f"c{index}", name=attrs["name"], state="running", image_id="",
                                            labels=labels, host_ports=(32770 + index,)))
    return desired, state, {"local": Observation(host="local", containers=tuple(containers))}


def test_replicas_on_picked_ports_are_a_no_op_and_keep_their_port() -> None:
    desired, state, observed = rolled_out()
    plan = diff(desired, state, observed, {})
    assert {c.action for c in plan.changes if c.type in ("container", "gateway")} == {Action.NOOP}
    [replica] = [c for c in plan.changes if c.address == "app.llm.container[1]@local"]
    assert replica.after["published_port"] == 32771 and replica.after["host_port"] is None


def test_a_served_replica_is_replaced_new_first_and_the_routes_follow_it() -> None:
    _, state, observed = rolled_out()
    plan = diff(stack(host_port=None, image="srv:2"), state, observed, {})
    replicas = [c for c in plan.changes if c.type == "container"]
    assert [c.action for c in replicas] == [Action.CREATE_THEN_DELETE] * 2
    assert "published_port" not in replicas[0].after  # berth picks the new one's port at apply
    assert gateway_change(plan).action is Action.UPDATE and "upstreams" not in gateway_change(plan).after
    graph = build_graph(plan)
    address = "app.llm.container[0]@local"
    assert [s.kind for s in graph.nodes if s.address == address] == ["roll-start", "wait", "roll-switch"]
    assert graph.has_edge(Step("roll-start", address), Step("wait", address))
    assert graph.has_edge(Step("wait", address), Step("roll-switch", address))
    assert graph.has_edge(Step("roll-switch", address), Step("gateway-routes", "gateway@local"))


def test_without_a_running_gateway_a_replace_stops_the_old_replica_first() -> None:
    _, state, observed = rolled_out()
    del state.resources["gateway@local"]
    observed = {"local": Observation(host="local", containers=tuple(
        c for c in observed["local"].containers if c.id != "g1"))}
    plan = diff(stack(host_port=None, image="srv:2"), state, observed, {})
    assert gateway_change(plan).action is Action.CREATE
    assert {c.action for c in plan.changes if c.type == "container"} == {Action.REPLACE}


def test_a_replica_restarted_on_a_new_port_reloads_the_routes() -> None:
    desired, state, observed = rolled_out()
    state.resources["gateway@local"].attributes["upstreams"] = {"llm": [32770, 32799]}
    change = gateway_change(diff(desired, state, observed, {}))
    assert change.action is Action.UPDATE and change.after["upstreams"] == {"llm": [32770, 32771]}


def test_upstreams_are_listed_in_port_order_as_the_gateway_loads_them() -> None:
    """Replicas start in parallel, so replica 1 may get the lower port; the plan's
    upstreams must equal what apply loads, or every plan would reload the routes."""
    from planner.plan import Change

    desired = stack(host_port=None)
    changes = {f"app.llm.container[{i}]@local": Change(
        address=f"app.llm.container[{i}]@local", type="container", action=Action.NOOP,
        after={"host_port": None, "published_port": port}) for i, port in ((0, 32797), (1, 32796))}
    assert gateway.upstreams(list(desired.apps.values()), changes) == {"llm": [32796, 32797]}
    changes["app.llm.container[1]@local"] = changes["app.llm.container[1]@local"].model_copy(
        update={"action": Action.CREATE_THEN_DELETE, "after": {"host_port": None}})
    assert gateway.upstreams(list(desired.apps.values()), changes) is None  # known after apply


def test_a_draining_replica_stays_in_the_config_on_a_route_no_request_matches() -> None:
    config = gateway.caddy_config(gateway.attributes(stack(), "local"), {"llm": [32771]}, draining=[32770])
    routes = config["apps"]["http"]["servers"]["berth"]["routes"]
    [drain] = [r for r in routes if r.get("match") == [{"not": [{}]}]]
    assert [u["dial"] for u in drain["handle"][0]["upstreams"]] == ["host.docker.internal:32770"]
    proxies = [h for r in routes if r is not drain for h in r.get("handle", []) if h["handler"] == "reverse_proxy"]
    assert {u["dial"] for p in proxies for u in p["upstreams"]} == {"host.docker.internal:32771"}


def test_after_an_interrupted_roll_the_old_replica_goes_before_the_new_one_takes_its_name() -> None:
    """A run that died between roll-start and roll-switch leaves the new replica in state
    under a name of its own and the old one, unrecorded, holding the name."""
    desired, state, observed = rolled_out(replicas=1)
    address = "app.llm.container[0]@local"
    new = state.resources[address]
    new_attrs = new.attributes | {"name": f"berth-{STACK}-llm-0-next-abc123", "published_port": 32790}
    state.resources[address] = new.model_copy(update={"id": "c-new", "status": "created", "attributes": new_attrs})
    [old] = [c for c in observed["local"].containers if c.id == "c0"]
    new_container = ObservedContainer(id="c-new", name=new_attrs["name"], state="running", image_id="",
                                      labels=old.labels, host_ports=(32790,))
    observed = {"local": Observation(host="local", containers=(*observed["local"].containers, new_container))}
    plan = diff(desired, state, observed, {})
    actions = sorted((c.action.word, c.ids[0]) for c in plan.changes if c.address == address)
    assert actions == [("delete", "c0"), ("update", "c-new")]
    graph = build_graph(plan)
    assert graph.has_edge(Step("remove", address), Step("update", address))
