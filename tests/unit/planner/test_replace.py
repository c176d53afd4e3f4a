"""Replacing containers without taking the app down (issue 17, items 7-9): the graph's
shape on plain data, and apply against fake hosts (tests/unit/deployment.py).

- a replace creates the new container before the old one stops: a config the engine
  refuses at create leaves the old one serving; a start that fails after the old one
  stopped (fixed host port) starts the old one again;
- an app's replicas are replaced max_unavailable (default 1) at a time, each ready
  before the next is stopped;
- a container that failed readiness is stopped, kept tainted, shown failed by status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.deployment import Deployment, failures, pending
from planner.plan import Action, Change
from unit.planner.test_graph import attrs, container, edges, graph_of, runs_before

WEB = [f"app.web.container[{i}]@local" for i in range(4)]
API0 = "app.api.container[0]@local"


def replicas(n: int, action: Action = Action.REPLACE, **more) -> list[Change]:
    return [container(WEB[i], action, before=attrs(WEB[i], 8000 + i), after=attrs(WEB[i], 8000 + i, **more))
            for i in range(n)]


# -- the graph ---------------------------------------------------------------------------------


def test_replicas_of_one_app_are_replaced_one_at_a_time_each_ready_before_the_next() -> None:
    g = graph_of(*replicas(3))
    assert edges(g) == {
        f"create {WEB[0]} > wait {WEB[0]}", f"wait {WEB[0]} > create {WEB[1]}",
        f"create {WEB[1]} > wait {WEB[1]}", f"wait {WEB[1]} > create {WEB[2]}",
        f"create {WEB[2]} > wait {WEB[2]}",
    }


def test_max_unavailable_lets_that_many_replicas_go_at_once() -> None:
    g = graph_of(*replicas(4, max_unavailable=2))
    chain = {e for e in edges(g) if e.startswith("wait")}
    assert chain == {f"wait {WEB[0]} > create {WEB[2]}", f"wait {WEB[1]} > create {WEB[3]}"}


def test_max_unavailable_at_or_above_the_replica_count_replaces_all_at_once() -> None:
    g = graph_of(*replicas(2, max_unavailable=2))
    assert not {e for e in edges(g) if e.startswith("wait")}


def test_one_replica_other_apps_and_new_replicas_are_not_chained() -> None:
    api = container(API0, Action.REPLACE, before=attrs(API0, 9000), after=attrs(API0, 9000))
    new = [container(WEB[i], Action.CREATE, after=attrs(WEB[i], 8000 + i)) for i in range(2)]
    g = graph_of(api, *new)
    assert not {e for e in edges(g) if e.startswith("wait")}


def test_restarts_for_a_rotated_secret_are_one_at_a_time_too() -> None:
    rotated = [container(WEB[i], Action.UPDATE, before=attrs(WEB[i], 8000 + i, secret_versions={"tok": "v1"}),
                         after=attrs(WEB[i], 8000 + i, secret_versions={"tok": "v2"})) for i in range(2)]
    assert f"wait {WEB[0]} > update {WEB[1]}" in edges(graph_of(*rotated))
    renamed = [container(WEB[i], Action.UPDATE, before=attrs(WEB[i], 8000 + i, name=f"old-{i}"),
                         after=attrs(WEB[i], 8000 + i)) for i in range(2)]
    assert not {e for e in edges(graph_of(*renamed)) if e.startswith("wait")}  # a rename stops nothing


def test_a_served_apps_rolling_replace_is_left_as_it_is() -> None:
    rolls = [container(WEB[i], Action.CREATE_THEN_DELETE, before=attrs(WEB[i], None), after=attrs(WEB[i], None))
             for i in range(2)]
    g = graph_of(*rolls)
    assert edges(g) == {f"roll-start {WEB[i]} > wait {WEB[i]}" for i in range(2)} | {
        f"wait {WEB[i]} > roll-switch {WEB[i]}" for i in range(2)}


def test_ports_that_shift_by_one_replace_the_replica_that_frees_the_port_first() -> None:
    shifted = [container(WEB[i], Action.REPLACE, before=attrs(WEB[i], 8000 + i), after=attrs(WEB[i], 8001 + i))
               for i in range(3)]
    g = graph_of(*shifted)
    assert runs_before(g, f"wait {WEB[2]}", f"create {WEB[1]}")
    assert runs_before(g, f"wait {WEB[1]}", f"create {WEB[0]}")


# -- apply against fake hosts ------------------------------------------------------------------

ONE = """
[stack]
name = "demo"

[apps.web]
image = "busybox:1.36"
port = 8080
host_port = 18080
readiness = "/ready"
readiness_timeout = 0.3
env = { MODEL = "v1" }
"""

FREE_PORT = ONE.replace("host_port = 18080\n", "")  # no gateway: a free port berth picks

TWO = ONE.replace('env = { MODEL = "v1" }', 'replicas = 2\nenv = { MODEL = "v1" }')


def running(d: Deployment) -> dict[str, str]:
    return {c.address: c.id for c in d.local.stack_containers("demo") if c.state == "running"}


@pytest.mark.parametrize("toml", [ONE, FREE_PORT], ids=["fixed_port", "free_port"])
def test_a_config_the_engine_refuses_at_create_leaves_the_old_container_serving(tmp_path: Path, toml: str) -> None:
    d = Deployment(tmp_path, toml)
    assert d.apply().ok
    before = running(d)
    # berth's own checks refuse what they know Docker refuses (a memory limit under 6 MB);
    # an engine can refuse more at create (its runtime, its version): this one does
    d.local.refuse_create = "invalid config for this engine"
    d.write(toml.replace('"v1"', '"v2"'))
    result = d.apply()
    assert not result.ok
    assert any("invalid config for this engine" in f for f in failures(result)), failures(result)
    assert running(d) == before and len(d.local.stack_containers("demo")) == 1
    assert "remove" not in [op for op, _ in d.local.log[-3:]]
    assert d.state.resources[WEB[0]].id == before[WEB[0]]
    assert d.state.resources[WEB[0]].status == "ready"
    d.local.refuse_create = None
    assert d.apply().ok
    assert not d.plan().has_changes, pending(d.plan())


def test_a_start_that_fails_after_the_old_one_stopped_starts_the_old_one_again(tmp_path: Path) -> None:
    d = Deployment(tmp_path, ONE)
    assert d.apply().ok
    before = running(d)
    d.write(ONE.replace('"v1"', '"v2"'))
    d.local.fail_start.add("web")
    result = d.apply()
    assert not result.ok
    (failure,) = failures(result)
    assert "start refused (injected)" in failure and f"the old one ({before[WEB[0]][:12]}) started again" in failure
    assert running(d) == before and len(d.local.stack_containers("demo")) == 1
    container = d.local.containers[before[WEB[0]]]
    assert container.name == "berth-demo-web-0"
    assert d.state.resources[WEB[0]].id == before[WEB[0]]
    d.local.fail_start.clear()
    assert d.apply().ok
    assert running(d).keys() == {WEB[0]} and running(d) != before
    assert d.local.containers[running(d)[WEB[0]]].name == "berth-demo-web-0"
    assert not d.plan().has_changes, pending(d.plan())


def test_a_replace_on_a_fixed_port_creates_the_new_one_before_the_old_one_stops(tmp_path: Path) -> None:
    d = Deployment(tmp_path, ONE)
    assert d.apply().ok
    d.write(ONE.replace('"v1"', '"v2"'))
    d.local.log.clear()
    assert d.apply().ok
    ops = [op for op, subject in d.local.log if subject == WEB[0] or subject.startswith("ctr") or op == "ready"]
    assert [op for op in ops if op in ("create", "stop", "start", "remove", "update", "ready")] == [
        "create", "stop", "start", "ready", "remove", "update"]


def test_two_replicas_are_replaced_one_at_a_time(tmp_path: Path) -> None:
    d = Deployment(tmp_path, TWO)
    assert d.apply().ok
    d.write(TWO.replace('"v1"', '"v2"'))
    d.local.log.clear()
    assert d.apply().ok
    order = [(op, subject) for op, subject in d.local.log if op in ("stop", "ready")]
    assert order == [("stop", WEB[0]), ("ready", WEB[0]), ("stop", WEB[1]), ("ready", WEB[1])]


def test_a_replica_that_fails_readiness_stops_the_roll(tmp_path: Path) -> None:
    d = Deployment(tmp_path, TWO)
    assert d.apply().ok
    before = running(d)
    d.write(TWO.replace('"v1"', '"v2"'))
    d.local.never_ready.add("web")
    result = d.apply()
    assert {str(s) for s, _ in result.failed} == {f"wait {WEB[0]}"}
    # replica 1 was never touched: it serves on; replica 0's old container is back
    assert running(d) == before


def test_a_container_that_fails_readiness_is_stopped_tainted_and_shown_failed(tmp_path: Path) -> None:
    from planner import health

    d = Deployment(tmp_path, ONE)
    d.local.never_ready.add("web")
    result = d.apply()
    assert not result.ok
    (failure,) = failures(result)
    assert "the container was stopped; the next apply replaces it" in failure
    assert ("stop", WEB[0]) in d.local.log
    resource = d.state.resources[WEB[0]]
    assert resource.status == "tainted"
    assert d.local.containers[resource.id].state == "exited"
    (row,) = health.check(d.state, d.hosts, ["web"])
    assert not row.healthy and row.tainted and row.readiness.startswith("failed readiness")
    plan = d.plan()
    assert [(c.action, c.reasons) for c in plan.actions if c.type == "container"] == [
        (Action.REPLACE, ["tainted: its readiness check failed"])]
    d.local.never_ready.clear()
    assert d.apply().ok
    assert not d.plan().has_changes, pending(d.plan())


def test_status_shows_a_tainted_replica_as_failed() -> None:
    import io

    from berth.ui.state_view import render_status
    from planner.health import ReplicaHealth

    class Ui:
        def __init__(self) -> None:
            from rich.console import Console

            self.buffer = io.StringIO()
            self.out = Console(file=self.buffer, width=200, no_color=True)

        def say(self, text: str, style: str | None = None) -> None:
            self.out.print(text)

    row = ReplicaHealth(app="web", address=WEB[0], host="local", container="abc", state="exited",
                        readiness="failed readiness (tainted: the next apply replaces it)", liveness="-",
                        image="x", since="", tainted=True)
    ui = Ui()
    render_status([row], ui)  # type: ignore[arg-type]
    text = ui.buffer.getvalue()
    assert "failed (exited)" in text and "failed readiness" in text and "0 of 1 healthy" in text


# -- max_unavailable in berth.toml ----------------------------------------------------------------


def test_max_unavailable_reaches_the_container_attributes_only_when_set(tmp_path: Path) -> None:
    d = Deployment(tmp_path, TWO.replace("replicas = 2", "replicas = 2\nmax_unavailable = 2"))
    plan = d.plan()
    assert {c.after.get("max_unavailable") for c in plan.actions if c.type == "container"} == {2}
    d = Deployment(tmp_path / "default", TWO)
    assert all("max_unavailable" not in c.after for c in d.plan().actions if c.type == "container")


@pytest.mark.parametrize("value", ["0", "-1", '"one"', "1.5"])
def test_max_unavailable_below_one_is_refused_with_its_key(tmp_path: Path, value: str) -> None:
    from berth.stackfile.load import load_stack
    from planner.diagnostics import DiagnosticsError

    (tmp_path / "berth.toml").write_text(TWO.replace("replicas = 2", f"replicas = 2\nmax_unavailable = {value}"))
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(tmp_path / "berth.toml"))
    text = "\n".join(str(d) for d in caught.value.diagnostics)
    assert "apps.web.max_unavailable" in text and "at least 1" in text, text


GPU_APP = """
[stack]
name = "demo"

[hosts.gpu-a]
ssh = "root@10.0.0.5"

[apps.llm]
image = "busybox:1.36"
host = "gpu-a"
port = 8080
replicas = 2
gpus = 1
deploy = "recreate"
readiness = "/ready"
env = { MODEL = "v1" }
"""


def test_gpu_replicas_with_deploy_recreate_are_replaced_one_at_a_time(tmp_path: Path) -> None:
    """A GPU replica's new container gets the old one's devices: the old one stops
    before it starts (never two servers on one GPU), one replica at a time."""
    from unit.fake_provider import FakeHost
    from providers.gpus import Gpu

    host = FakeHost("gpu-a")
    host.gpu_list = tuple(Gpu(index=str(i), name="NVIDIA L4", memory_mib=23034, uuid=f"GPU-{i}") for i in range(2))
    d = Deployment(tmp_path, GPU_APP, hosts={"local": FakeHost("local"), "gpu-a": host})
    first = d.apply()
    assert first.ok, failures(first)
    d.write(GPU_APP.replace('"v1"', '"v2"'))
    host.log.clear()
    result = d.apply()
    assert result.ok, failures(result)
    llm = [f"app.llm.container[{i}]@gpu-a" for i in range(2)]
    order = [(op, subject) for op, subject in host.log if op in ("create", "stop", "ready", "run")]
    assert order == [("create", llm[0]), ("stop", llm[0]), ("ready", llm[0]),
                     ("create", llm[1]), ("stop", llm[1]), ("ready", llm[1])]
    assert not d.plan().has_changes, pending(d.plan())


# -- brief: the old container is kept (stopped) until the new one passes readiness -------------

BOOT_FAIL = "llama-server: error: failed to load model '/models/missing.gguf'\nmain: exiting due to model loading error"


def free_port(tmp_path: Path, toml: str) -> Deployment:
    """The app of toml on a port berth picks (as behind the gateway, which the fake host
    does not run): its replace starts the new container beside the old one."""
    from unit.deployment import load

    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "berth.toml").write_text(toml)
    stack = load(tmp_path / "berth.toml")
    apps = {n: a.model_copy(update={"host_port": None}) for n, a in stack.apps.items()}
    d = Deployment(tmp_path, None, stack=stack.model_copy(update={"apps": apps}))
    d.free_port = True
    return d


def rewrite(d: Deployment, toml: str) -> None:
    if getattr(d, "free_port", False):
        stack = d.given_stack
        d.given_stack = stack.model_copy(update={"apps": {n: a.model_copy(update={"env": {"MODEL": "v2"}})
                                                           for n, a in stack.apps.items()}})
    else:
        d.write(toml.replace('"v1"', '"v2"'))


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed_port", "free_port"])
def test_a_new_container_that_starts_then_dies_brings_the_old_one_back(tmp_path: Path, fixed: bool) -> None:
    toml = ONE
    d = Deployment(tmp_path, toml) if fixed else free_port(tmp_path, toml)
    assert d.apply().ok
    before = running(d)
    rewrite(d, toml)
    d.local.crash["web"] = BOOT_FAIL  # `command = ["/no/such/server"]`: it starts, then exits
    result = d.apply()
    assert not result.ok
    (step, outcome), = result.failed
    assert str(step) == f"wait {WEB[0]}"
    undone = (f"the new container was removed and the old one ({before[WEB[0]][:12]}) started again" if fixed
              else "the new container was removed; the old container keeps serving")
    assert undone in str(outcome.error), outcome.error
    assert "failed to load model" in outcome.error.log_tail  # the new container's last lines
    assert running(d) == before and len(d.local.stack_containers("demo")) == 1
    assert result.counts() == {"added": 0, "changed": 0, "destroyed": 0}  # the app is as it was
    assert d.local.containers[before[WEB[0]]].name == "berth-demo-web-0"
    recorded = d.state.resources[WEB[0]]
    assert (recorded.id, recorded.status) == (before[WEB[0]], "ready")
    assert recorded.attributes["env"] == {"MODEL": "v1"}
    # the old one was never removed, and (on a free port) never stopped either
    old_ops = [op for op, subject in d.local.log if subject == WEB[0]]
    assert "remove" in old_ops  # the new one's removal
    assert d.local.ops("stop").count(WEB[0]) == (1 if fixed else 0)
    # next plan: the same replace again, nothing else; fixed, it converges
    plan = d.plan()
    assert [(c.action, str(c.address)) for c in plan.actions if c.type == "container"] == [(Action.REPLACE, WEB[0])]
    d.local.crash.clear()
    assert d.apply().ok
    assert not d.plan().has_changes, pending(d.plan())
    assert len(d.local.stack_containers("demo")) == 1


def test_a_new_container_that_never_gets_ready_on_a_fixed_port_brings_the_old_one_back(tmp_path: Path) -> None:
    d = Deployment(tmp_path, ONE)
    assert d.apply().ok
    before = running(d)
    d.write(ONE.replace('"v1"', '"v2"'))
    d.local.never_ready.add("web")
    result = d.apply()
    (failure,) = failures(result)
    assert "not ready after 0.3s" in failure and "last: answering 503" in failure, failure
    assert f"the old one ({before[WEB[0]][:12]}) started again" in failure
    assert running(d) == before
    assert d.state.resources[WEB[0]].status == "ready"


def test_the_old_container_is_removed_only_once_the_new_one_is_ready(tmp_path: Path) -> None:
    d = free_port(tmp_path, ONE)
    assert d.apply().ok
    rewrite(d, ONE)
    d.local.log.clear()
    assert d.apply().ok
    ops = [op for op, _ in d.local.log if op in ("run", "stop", "remove", "update", "ready")]
    assert ops == ["run", "ready", "remove", "update"], d.local.log  # beside the old one, never stopped first


# -- brief: a run killed at any point of a replace: the next single apply converges ------------


def kill_at(d: Deployment, n: int, after: bool = False) -> bool:
    """Apply with berth killed before the host's nth change from now (after: once the
    change is made, before state records it); the store keeps what it held at that
    moment. False when the apply made fewer than n changes."""
    from unit.fake_provider import Killed

    kept: dict[str, object] = {}
    start = d.local.changes_made

    def killed() -> None:
        if not after:
            kept.update(text=d.memory.text, entries=list(d.memory.entries))

    def changed(count: int) -> None:  # inside the host's call: no state was written since the change
        if after and count == start + n:
            kept.update(text=d.memory.text, entries=list(d.memory.entries))

    d.local.kill_at, d.local.on_kill, d.local.on_change = start + n + (1 if after else 0), killed, changed
    try:
        d.apply(parallelism=1)
    except Killed:
        pass
    d.local.revive()
    if not kept:
        return False
    d.memory.text, d.memory.entries = kept["text"], kept["entries"]
    return True


@pytest.mark.parametrize("after", [False, True], ids=["before_a_change", "before_state_records_it"])
@pytest.mark.parametrize("toml,fixed", [(ONE, True), (ONE, False), (TWO, True), (TWO, False)],
                         ids=["fixed_port", "free_port", "two_replicas", "two_free"])
def test_a_replace_killed_at_any_change_converges_in_one_apply(tmp_path: Path, toml: str, fixed: bool,
                                                               after: bool) -> None:
    from unit.planner.test_converge import assert_host_matches_state

    n = 0
    while True:
        n += 1
        d = Deployment(tmp_path / f"n{n}", toml) if fixed else free_port(tmp_path / f"n{n}", toml)
        assert d.apply().ok
        rewrite(d, toml)
        if not kill_at(d, n, after):
            break
        second = d.apply()
        assert second.ok, (n, failures(second), d.local.log)
        assert not d.plan().has_changes, (n, pending(d.plan()))
        assert_host_matches_state(d)
        live = d.local.stack_containers("demo")
        assert all(c.state == "running" and "-next-" not in c.name for c in live), (n, [(c.name, c.state) for c in live])
        assert len(live) == (2 if toml is TWO else 1)
        assert {c.spec.env.get("MODEL") for c in live} == {"v2"}
    assert n > 3, n  # every change of the replace was a kill point


# -- brief: GPU replicas replace start-first when the host has free GPUs -------------------------

GPU_ONE = """
[stack]
name = "demo"

[hosts.gpu-a]
ssh = "root@10.0.0.5"

[apps.llm]
image = "busybox:1.36"
host = "gpu-a"
port = 8080
replicas = {replicas}
gpus = 1
readiness = "/ready"
readiness_timeout = 0.3
env = { MODEL = "v1" }
"""


def gpu_deployment(tmp_path: Path, gpus: int, replicas: int = 1) -> tuple[Deployment, "FakeHost"]:
    """A GPU app on a port berth picks (as behind the gateway, which the fake host does not
    run), on a host with `gpus` L4s."""
    from unit.deployment import load
    from unit.fake_provider import FakeHost
    from providers.gpus import Gpu

    host = FakeHost("gpu-a")
    host.gpu_list = tuple(Gpu(index=str(i), name="NVIDIA L4", memory_mib=23034, uuid=f"GPU-{i}") for i in range(gpus))
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "berth.toml").write_text(GPU_ONE.replace("{replicas}", str(replicas)))
    stack = load(tmp_path / "berth.toml")
    apps = {n: a.model_copy(update={"host_port": None}) for n, a in stack.apps.items()}
    d = Deployment(tmp_path, None, stack=stack.model_copy(update={"apps": apps}),
                   hosts={"local": FakeHost("local"), "gpu-a": host})
    d.free_port = True
    first = d.apply()
    assert first.ok, failures(first)
    return d, host


def test_a_gpu_replica_with_a_free_gpu_is_replaced_start_first(tmp_path: Path) -> None:
    d, host = gpu_deployment(tmp_path, gpus=2)
    address = "app.llm.container[0]@gpu-a"
    assert d.state.resources[address].attributes["gpus"] == ["0"]
    rewrite(d, GPU_ONE)
    (change,) = [c for c in d.plan().actions if c.type == "container"]
    assert change.action is Action.REPLACE and change.after["gpus"] == ["1"]
    assert "start-first: the new replica gets free GPU 1 while the old one serves" in change.reasons
    host.log.clear()
    result = d.apply()
    assert result.ok, failures(result)
    ops = [op for op, subject in host.log if op in ("run", "create", "stop", "start", "ready", "remove", "update")]
    assert ops == ["run", "ready", "remove", "update"], host.log  # the old one served until the new one was ready
    assert d.state.resources[address].attributes["gpus"] == ["1"]
    assert not d.plan().has_changes, pending(d.plan())


def test_a_gpu_replica_without_a_free_gpu_stops_first_and_the_plan_says_so(tmp_path: Path) -> None:
    from planner.placement import NO_FREE_GPU

    d, host = gpu_deployment(tmp_path, gpus=1)
    address = "app.llm.container[0]@gpu-a"
    port = d.state.resources[address].attributes["published_port"]
    rewrite(d, GPU_ONE)
    (change,) = [c for c in d.plan().actions if c.type == "container"]
    assert change.after["gpus"] == ["0"] and NO_FREE_GPU in change.reasons
    host.log.clear()
    assert d.apply().ok
    ops = [op for op, subject in host.log if op in ("run", "create", "stop", "start", "ready", "remove", "update")]
    assert ops == ["create", "stop", "start", "ready", "remove", "update"], host.log
    # the new one takes the old one's picked port (written into its config, so a restart keeps it)
    new = d.state.resources[address]
    assert new.attributes["published_port"] == port == host.containers[new.id].host_port
    assert host.containers[new.id].spec.host_port == port
    assert not d.plan().has_changes, pending(d.plan())


def test_spare_gpus_go_to_the_replicas_in_plan_order_each_once(tmp_path: Path) -> None:
    from planner.placement import NO_FREE_GPU

    d, host = gpu_deployment(tmp_path, gpus=3, replicas=2)
    rewrite(d, GPU_ONE)
    changes = [c for c in d.plan().actions if c.type == "container"]
    assert [c.after["gpus"] for c in changes] == [["2"], ["1"]]
    assert NO_FREE_GPU not in changes[0].reasons and NO_FREE_GPU in changes[1].reasons
    result = d.apply()
    assert result.ok, failures(result)
    assert not d.plan().has_changes, pending(d.plan())
    assert sorted(d.state.resources[f"app.llm.container[{i}]@gpu-a"].attributes["gpus"][0] for i in range(2)) == ["1", "2"]


def test_behind_the_gateway_a_gpu_replica_rolls_only_onto_spare_gpus() -> None:
    """The gateway's rolling replace starts the new replica beside the old one: for a GPU
    app only once placement gave it spare devices; otherwise it stays a stop-first replace."""
    from planner.desired import AppConfig
    from planner.diff import _rolling
    from planner.placement import NO_FREE_GPU, Placement, start_first
    from providers.gpus import Gpu

    llm = "app.llm.container[0]@gpu-a"
    app = AppConfig(name="llm", image="srv", port=8000, host_port=None, host="gpu-a", gpus=1)
    change = container(llm, Action.REPLACE, before=attrs(llm, None, gpus=["0"]), after=attrs(llm, None, gpus=["0"]))
    l4 = [Gpu(index=str(i), name="NVIDIA L4", memory_mib=23034, uuid=f"GPU-{i}") for i in range(2)]
    for spare, action, gpus in [((l4[1],), Action.CREATE_THEN_DELETE, ["1"]), ((), Action.REPLACE, ["0"])]:
        placement = Placement(spare={"gpu-a": spare}, inventories={"gpu-a": tuple(l4)})
        (rolled,) = _rolling(start_first([change], placement), {"llm": app}, "gpu-a")
        assert (rolled.action, rolled.after["gpus"]) == (action, gpus)
        assert (NO_FREE_GPU in rolled.reasons) == (not spare)


def test_a_secret_file_no_longer_mounted_goes_only_once_the_replace_is_done() -> None:
    """The old container is kept (and started again should the new one fail): the file
    it mounts stays until the new one passed readiness."""
    secret = Change(address="app.web.secret.tok@local", type="secret", action=Action.DELETE,
                    before={"name": "tok"}, ids=["/fake/secrets/demo/web/tok"])
    change = container(WEB[0], Action.REPLACE, before=attrs(WEB[0], 8000, secrets=["tok"]), after=attrs(WEB[0], 8000))
    g = graph_of(change, secret)
    assert runs_before(g, f"wait {WEB[0]}", "remove-secret app.web.secret.tok@local")
