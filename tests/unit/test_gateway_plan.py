"""planner.gateway and the gateway's part of diff and the step graph, as data: no Docker."""

from __future__ import annotations

from typing import Any

from planner import gateway
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
    attrs = gateway.attributes(desired, "local")
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
    assert change.after["routes"] == {"llm": {"ports": [18000, 18001], "readiness": "/ready",
                                              "predict": "/v1/chat/completions", "probe_interval": 10.0}}
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
    assert change.after["routes"]["llm"]["ports"] == [18000, 18001, 18002]
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
    config = gateway.caddy_config(gateway.attributes(stack(), "local"))
    assert config["admin"] == {"listen": "127.0.0.1:2019"}
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
    assert [u["dial"] for u in proxy["upstreams"]] == ["127.0.0.1:18000", "127.0.0.1:18001"]
    assert proxy["health_checks"]["active"]["uri"] == "/ready"
    assert proxy["headers"]["response"]["set"] == {"X-Request-Id": ["{http.request.header.X-Request-Id}"]}
    assert fallback["handle"][0]["status_code"] == 404


def test_an_app_without_readiness_or_predict_gets_no_health_check_or_predict_route() -> None:
    config = gateway.caddy_config(gateway.attributes(stack(readiness=None, predict=None), "local"))
    routes = config["apps"]["http"]["servers"]["berth"]["routes"]
    assert len(routes) == 4
    assert "health_checks" not in routes[1]["handle"][1]


def test_the_gateway_container_shares_the_host_network_and_publishes_nothing() -> None:
    spec = gateway.container_spec(STACK, Address.gateway("local"), gateway.attributes(stack(), "local"))
    assert spec.network_mode == "host" and spec.name == "berth-demo-gateway"
    assert "--resume" in spec.command[-1]


def test_every_step_kind_has_words_in_the_apply_view() -> None:
    from typing import get_args

    from berth.ui.apply_view import VERBS
    from planner.graph import StepKind

    assert set(get_args(StepKind)) <= set(VERBS)
