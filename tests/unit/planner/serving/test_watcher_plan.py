"""planner.serving.watcher and the watcher's part of diff and the step graph, as data: no Docker."""

from __future__ import annotations

import json
from typing import Any

from planner.serving import gateway, watcher
from planner.desired import AppConfig, HostConfig, Stack
from planner.diff import diff
from planner.graph import build_graph
from planner.plan import Action, Plan
from providers.types import HostMount, Observation, ObservedContainer
from state.address import Address, AddressError, check_target, moves
from state.model import ResourceState, State

STACK = "demo"


def app(**fields: Any) -> AppConfig:
    return AppConfig(**({"name": "llm", "image": "srv:1", "port": 8000, "host_port": 18000, "readiness": "/ready",
                         "liveness": "/health", "replicas": 2} | fields))


def stack(*apps: AppConfig, gateway_port: int | None = 8080, hosts: dict | None = None) -> Stack:
    apps = apps or (app(),)
    return Stack(name=STACK, file="/x/berth.toml", apps={a.name: a for a in apps}, gateway_port=gateway_port,
                 hosts=hosts or {})


def applied(desired: Stack, host: str = "local", status: str = "ready", state_id: str = "w1",
            running: str = "running") -> tuple[State, dict[str, Observation]]:
    """State and host as an apply of `desired`'s watcher left them (apps and gateway left out)."""
    address = Address.watcher(host)
    attrs = watcher.attributes(desired, host)
    spec = watcher.container_spec(STACK, address, attrs)
    state = State(stack=STACK, serial=3, resources={str(address): ResourceState(
        address=str(address), type="watcher", host=host, id=state_id, status=status, attributes=attrs)})
    container = ObservedContainer(id="w1", name=attrs["name"], state=running, image_id="", labels=spec.labels)
    return state, {host: Observation(host=host, containers=(container,))}


def watcher_change(plan: Plan, host: str = "local"):
    [change] = [c for c in plan.changes if c.address == f"watcher@{host}"]
    return change


def test_targets_are_the_apps_with_a_liveness_path() -> None:
    truss = app(name="truss", liveness="/live", probe_timing={"liveness_delay": 45.0}, liveness_failure_threshold=5,
                probe_interval=2.0)
    attrs = watcher.attributes(stack(app(), app(name="plain", liveness=None, host_port=19000), truss), "local")
    assert attrs["targets"] == {
        "llm": {"liveness": "/health", "port": 8000, "threshold": 3, "interval": 10.0, "grace": 600.0},
        "truss": {"liveness": "/live", "port": 8000, "threshold": 5, "interval": 2.0, "grace": 45.0},
    }
    assert attrs["name"] == "berth-demo-watcher" and attrs["image"] == gateway.image_tag()
    assert attrs["script_hash"] == watcher.SCRIPT_HASH


def test_the_engine_socket_is_the_ssh_hosts_own() -> None:
    host = HostConfig(name="gpu1", user="root", address="10.0.0.2", docker_socket="/run/other/docker.sock")
    desired = stack(app(host="gpu1"), hosts={"gpu1": host})
    attrs = watcher.attributes(desired, "gpu1")
    assert attrs["socket"] == "/run/other/docker.sock"
    spec = watcher.container_spec(STACK, Address.watcher("gpu1"), attrs)
    assert spec.host_mounts == (HostMount(source="/run/other/docker.sock", target="/var/run/docker.sock"),)
    assert spec.network_mode == "host" and spec.labels["berth.address"] == "watcher@gpu1"
    assert "berth.app" not in spec.labels  # the watcher itself is never one of its targets
    assert json.loads(spec.env[watcher.CONFIG_ENV]) == {"stack": STACK, "targets": attrs["targets"]}
    assert spec.env[watcher.SCRIPT_ENV] == watcher.SCRIPT


def test_a_local_socket_follows_docker_host(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/custom.sock")
    assert watcher.engine_socket(stack(), "local") == "/run/custom.sock"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert watcher.engine_socket(stack(), "local") == "/var/run/docker.sock"


def test_a_watcher_is_created_where_the_gateway_runs_and_listed_last() -> None:
    plan = diff(stack(), None, {"local": Observation(host="local")}, {})
    change = watcher_change(plan)
    assert (change.action, change.type) == (Action.CREATE, "watcher")
    assert plan.changes[-1].address == "watcher@local"
    steps = [s.kind for s in build_graph(plan).nodes if s.address == "watcher@local"]
    assert steps == ["watcher-image", "watcher-start"]


def test_no_watcher_without_a_gateway() -> None:
    plan = diff(stack(gateway_port=None), None, {"local": Observation(host="local")}, {})
    assert not [c for c in plan.changes if c.type == "watcher"]


def test_an_applied_watcher_is_a_no_op() -> None:
    desired = stack()
    state, observed = applied(desired)
    assert watcher_change(diff(desired, state, observed, {})).action is Action.NOOP


def test_a_watcher_started_by_an_interrupted_run_is_adopted_as_it_is() -> None:
    desired = stack()
    _, observed = applied(desired)
    change = watcher_change(diff(desired, State(stack=STACK), observed, {}))
    assert change.action is Action.NOOP and change.ids == ["w1"]  # apply's refresh records it


def test_new_targets_replace_the_watcher() -> None:
    state, observed = applied(stack())
    plan = diff(stack(app(liveness_failure_threshold=5)), state, observed, {})
    change = watcher_change(plan)
    assert change.action is Action.REPLACE and change.forces_replacement == ["targets"]
    steps = [s.kind for s in build_graph(plan).nodes if s.address == "watcher@local"]
    assert steps == ["watcher-image", "watcher-remove", "watcher-start"]


def test_replicas_do_not_change_the_watcher() -> None:
    """It finds replicas in the engine's container list: scaling is not its business."""
    state, observed = applied(stack())
    assert watcher_change(diff(stack(app(replicas=5)), state, observed, {})).action is Action.NOOP


def test_a_stopped_or_unconfirmed_watcher_is_replaced() -> None:
    state, observed = applied(stack(), running="exited")
    assert watcher_change(diff(stack(), state, observed, {})).reasons == ["watcher container is exited"]
    state, observed = applied(stack(), status="tainted")
    assert watcher_change(diff(stack(), state, observed, {})).action is Action.REPLACE


def test_turning_the_gateway_off_removes_the_watcher_before_any_container() -> None:
    state, observed = applied(stack())
    plan = diff(stack(gateway_port=None), state, observed, {})
    change = watcher_change(plan)
    assert (change.action, change.ids) == (Action.DELETE, ["w1"])


def test_destroy_removes_the_watcher_before_the_replicas() -> None:
    desired = stack(app(replicas=1))
    state, observed = applied(desired)
    replica = ObservedContainer(id="c1", name="berth-demo-llm-0", state="running", image_id="",
                                labels={"berth.stack": STACK, "berth.app": "llm",
                                        "berth.address": "app.llm.container[0]@local"})
    observed = {"local": Observation(host="local", containers=(*observed["local"].containers, replica))}
    graph = build_graph(diff(desired, state, observed, {}, destroy=True))
    kinds = {(s.kind, s.address) for s in graph.nodes}
    assert ("watcher-remove", "watcher@local") in kinds
    remove = next(s for s in graph.nodes if s.kind == "remove")
    watcher_remove = next(s for s in graph.nodes if s.kind == "watcher-remove")
    assert graph.has_edge(watcher_remove, remove)


def test_the_watcher_image_comes_after_the_gateways() -> None:
    graph = build_graph(diff(stack(), None, {"local": Observation(host="local")}, {}))
    image = next(s for s in graph.nodes if s.kind == "gateway-image")
    assert graph.has_edge(image, next(s for s in graph.nodes if s.kind == "watcher-image"))


def test_watcher_addresses_parse_select_and_do_not_move() -> None:
    assert str(Address.parse("watcher@gpu1")) == "watcher@gpu1"
    assert Address.parse("watcher@gpu1").matches("watcher") and not Address.parse("gateway@gpu1").matches("watcher")
    check_target("watcher@local")
    check_target("watcher")
    try:
        moves(["watcher@local"], "watcher@local", "watcher@gpu1")
    except AddressError as err:
        assert "cannot move a watcher" in str(err)
    else:
        raise AssertionError("a watcher moved")
