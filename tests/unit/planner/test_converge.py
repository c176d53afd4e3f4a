"""Convergence on plain data: stack files planned and applied through the real pipeline
against FakeHosts (tests/unit/deployment.py). What Compose's "up twice, the second
changes nothing" and Terraform's "a second plan is empty" ask, without Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.deployment import Deployment, failures, pending
from planner.plan import Action
from state.model import State

MIB = 2**20
DIGEST = "sha256:" + "ab" * 32

ONE_APP = """
[stack]
name = "demo"

[apps.web]
image = "busybox:1.36"
port = 8080
host_port = 18080
env = { MODEL = "llama" }
"""

REPLICAS = """
[stack]
name = "demo"

[apps.web]
build = "./web"
port = 8080
host_port = 18080
replicas = 3
readiness = "/ready"
"""

DEPENDS_ON = """
[stack]
name = "demo"

[apps.model]
build = "./model"
port = 8080
host_port = 18080
replicas = 2
readiness = "/ready"
readiness_timeout = 0.3

[apps.frontend]
image = "busybox:1.36"
port = 8080
host_port = 18090
readiness = "/"
depends_on = ["model"]
"""

SECRETS = """
[stack]
name = "demo"

[apps.web]
build = "./web"
port = 8080
host_port = 18080
secrets = ["tok", "cfg"]
secret_env = { API_TOKEN = "tok" }

[apps.worker]
image = "busybox:1.36"
port = 8080
host_port = 18090
secrets = ["cfg"]

[secrets.tok]
env = "DEMO_TOK"

[secrets.cfg]
file = "./cfg.txt"
"""

BUILD_AND_IMAGES = f"""
[stack]
name = "demo"

[apps.web]
build = "./web"
port = 8080
host_port = 18080

[apps.worker]
build = "./web"
port = 8080
host_port = 18081

[apps.api]
image = "vllm/vllm-openai:v0.5.0"
port = 8000
host_port = 19000

[apps.pinned]
image = "busybox@{DIGEST}"
port = 80
host_port = 19100
"""

FILES = {"web/Dockerfile": "FROM busybox\nCOPY . /srv\n", "web/serve.sh": "#!/bin/sh\n",
         "model/Dockerfile": "FROM busybox\n", "cfg.txt": "a=1\n"}

STACKS = {"one_app": ONE_APP, "replicas": REPLICAS, "depends_on": DEPENDS_ON, "secrets": SECRETS,
          "build_and_images": BUILD_AND_IMAGES}


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TOK", "t0ken-v1")


def applied(tmp_path: Path, toml: str) -> Deployment:
    d = Deployment(tmp_path, toml, files=FILES)
    result = d.apply()
    assert result.ok, failures(result)
    assert not d.plan().has_changes, pending(d.plan())
    return d


def changes_since(d: Deployment, mark: int) -> list[tuple[str, str]]:
    """What was done to the local host after log position mark (observing is not a change)."""
    return [entry for entry in d.local.log[mark:] if entry[0] != "observe"]


def assert_host_matches_state(d: Deployment) -> None:
    """Every container state records runs on its host under its ID, and no other
    container of the stack is there (no duplicate left by a replace)."""
    state = d.state
    recorded = {r.id: a for a, r in state.resources.items() if r.type == "container"}
    on_host = {c.id: c.address for c in d.local.stack_containers("demo")}
    assert on_host == recorded
    assert all(d.local.containers[i].state == "running" for i in on_host)


# -- apply twice: the second plan is empty -------------------------------------------------


@pytest.mark.parametrize("toml", STACKS.values(), ids=STACKS.keys())
def test_apply_twice_the_second_plan_is_empty(tmp_path: Path, toml: str) -> None:
    d = Deployment(tmp_path, toml, files=FILES)
    assert d.plan().has_changes
    result = d.apply()
    assert result.ok, failures(result)
    assert result.counts()["added"] == len(d.last_plan.actions)

    second = d.plan()
    assert not second.has_changes, pending(second)
    assert not d.plan(refresh=False).has_changes, pending(d.plan(refresh=False))
    mark = len(d.local.log)
    again = d.apply()
    assert again.ok and not d.last_plan.has_changes
    assert changes_since(d, mark) == []  # the second apply touched nothing on the host

    state = d.state
    assert state.resources and all(r.status == "ready" for r in state.resources.values())
    assert_host_matches_state(d)


def test_every_container_runs_what_its_stack_file_says(tmp_path: Path) -> None:
    d = applied(tmp_path, SECRETS)
    web = d.local.container_at("app.web.container[0]@local").spec
    assert web.host_port == 18080 and web.port == 8080
    assert web.secret_env == {"API_TOKEN": "t0ken-v1"} and "t0ken-v1" not in repr(web)
    assert {m.target for m in web.secret_mounts} == {"/secrets/tok", "/secrets/cfg"}
    assert d.local.secret_files[("demo", "web", "tok")] == b"t0ken-v1"
    assert d.local.secret_files[("demo", "worker", "cfg")] == b"a=1"
    assert d.local.image_for(web.image).labels["berth.stack"] == "demo"


def test_apps_built_from_one_context_share_one_image_and_a_digest_is_pulled_as_named(tmp_path: Path) -> None:
    d = applied(tmp_path, BUILD_AND_IMAGES)
    web = d.local.container_at("app.web.container[0]@local")
    worker = d.local.container_at("app.worker.container[0]@local")
    assert web.image_id == worker.image_id and web.spec.image != worker.spec.image  # one image, two tags
    assert sorted(d.local.ops("build")) == sorted([web.spec.image, worker.spec.image])
    pinned = d.local.container_at("app.pinned.container[0]@local")
    assert pinned.image_id == d.local.image_for("busybox@" + DIGEST).id
    assert set(d.local.ops("pull")) == {"busybox@" + DIGEST, "vllm/vllm-openai:v0.5.0"}


# -- a change is applied the way the plan says -----------------------------------------------


def test_a_changed_env_replaces_the_container(tmp_path: Path) -> None:
    d = applied(tmp_path, ONE_APP)
    old = d.local.container_at("app.web.container[0]@local")
    d.write(ONE_APP.replace('"llama"', '"mistral"'))

    (change,) = d.plan().actions
    assert change.address == "app.web.container[0]@local"
    assert change.action is Action.REPLACE and change.forces_replacement == ["env"]
    result = d.apply()
    assert result.ok, failures(result)
    new = d.local.container_at("app.web.container[0]@local")
    assert new.id != old.id and old.id not in d.local.containers
    assert new.spec.env == {"MODEL": "mistral"}
    assert not d.plan().has_changes, pending(d.plan())
    assert_host_matches_state(d)


def test_a_changed_memory_limit_updates_the_container_in_place(tmp_path: Path) -> None:
    d = applied(tmp_path, ONE_APP.replace("port = 8080\n", 'port = 8080\nmemory = "256m"\n'))
    old = d.local.container_at("app.web.container[0]@local")
    assert old.spec.memory == 256 * MIB
    d.write(ONE_APP.replace("port = 8080\n", 'port = 8080\nmemory = "512m"\n'))

    (change,) = d.plan().actions
    assert change.action is Action.UPDATE and change.changed_keys == ["memory"]
    mark = len(d.local.log)
    result = d.apply()
    assert result.ok, failures(result)
    assert changes_since(d, mark) == [("update", "app.web.container[0]@local")]
    same = d.local.container_at("app.web.container[0]@local")
    assert same.id == old.id and same.spec.memory == 512 * MIB
    assert d.state.resources["app.web.container[0]@local"].attributes["memory"] == 512 * MIB
    assert not d.plan().has_changes, pending(d.plan())


def test_a_changed_build_context_rebuilds_moves_every_replica_and_untags_the_old_image(tmp_path: Path) -> None:
    d = applied(tmp_path, REPLICAS)
    old_tag = d.local.container_at("app.web.container[0]@local").spec.image
    d.write(files={"web/serve.sh": "#!/bin/sh\necho v2\n"})

    image = next(c for c in d.plan().actions if c.address == "app.web.image@local")
    assert image.action is Action.CREATE_THEN_DELETE
    result = d.apply()
    assert result.ok, failures(result)
    new_tags = {d.local.container_at(f"app.web.container[{i}]@local").spec.image for i in range(3)}
    assert len(new_tags) == 1 and old_tag not in new_tags
    assert old_tag not in d.local.tags() and new_tags <= d.local.tags()
    assert not d.plan().has_changes, pending(d.plan())
    assert_host_matches_state(d)


def test_a_rotated_secret_file_is_rewritten_and_restarts_the_containers_that_mount_it(tmp_path: Path) -> None:
    d = applied(tmp_path, SECRETS)
    web, worker = (d.local.container_at(f"app.{a}.container[0]@local") for a in ("web", "worker"))
    d.write(files={"cfg.txt": "a=2\n"})

    result = d.apply()
    assert result.ok, failures(result)
    assert d.local.secret_files[("demo", "web", "cfg")] == b"a=2"
    assert d.local.secret_files[("demo", "worker", "cfg")] == b"a=2"
    for before in (web, worker):
        after = d.local.containers[before.id]  # the same container, restarted
        assert after.restarts == 1
    assert not d.plan().has_changes, pending(d.plan())


def test_a_secret_passed_in_env_that_changes_replaces_the_container(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    d = applied(tmp_path, SECRETS)
    old = d.local.container_at("app.web.container[0]@local")
    monkeypatch.setenv("DEMO_TOK", "t0ken-v2")

    result = d.apply()
    assert result.ok, failures(result)
    new = d.local.container_at("app.web.container[0]@local")
    assert new.id != old.id and new.spec.secret_env == {"API_TOKEN": "t0ken-v2"}
    assert d.local.secret_files[("demo", "web", "tok")] == b"t0ken-v2"
    assert not d.plan().has_changes, pending(d.plan())


def test_depends_on_starts_the_dependent_only_after_its_dependency_is_ready(tmp_path: Path) -> None:
    d = applied(tmp_path, DEPENDS_ON)
    log = d.local.log
    started = log.index(("run", "app.frontend.container[0]@local"))
    for i in range(2):
        assert log.index(("ready", f"app.model.container[{i}]@local")) < started


def test_fewer_replicas_remove_the_extra_ones(tmp_path: Path) -> None:
    d = applied(tmp_path, REPLICAS)
    d.write(REPLICAS.replace("replicas = 3", "replicas = 1"))
    result = d.apply()
    assert result.ok, failures(result)
    assert [c.address for c in d.local.stack_containers("demo")] == ["app.web.container[0]@local"]
    assert not d.plan().has_changes, pending(d.plan())
    assert_host_matches_state(d)


# -- destroy ---------------------------------------------------------------------------------


def test_destroy_empties_state_and_the_host_of_what_berth_made(tmp_path: Path) -> None:
    d = applied(tmp_path, SECRETS)
    built = d.local.container_at("app.web.container[0]@local").spec.image
    result = d.destroy()
    assert result.ok, failures(result)

    assert d.state.resources == {}
    assert d.local.stack_containers("demo") == []
    assert d.local.secret_files == {}
    assert built not in d.local.tags()
    assert "busybox:1.36" in d.local.tags()  # pulled by reference: not berth's to remove
    assert not d.plan(destroy=True).has_changes, pending(d.plan(destroy=True))
    assert d.plan().has_changes  # and the stack can be applied again


# -- what the next plan converges from -------------------------------------------------------


def test_a_readiness_failure_leaves_a_state_the_next_plan_converges_from(tmp_path: Path) -> None:
    d = Deployment(tmp_path, DEPENDS_ON, files=FILES)
    d.local.never_ready.add("model")
    result = d.apply()

    assert not result.ok
    assert {str(step) for step, _ in result.failed} == {f"wait app.model.container[{i}]@local" for i in range(2)}
    assert "app.frontend.container[0]@local" not in d.local.ops("run")  # its dependency never became ready
    assert any(e.kind == "failed" and "not ready after 0.3s" in e.message for e in d.events)
    assert any(e.kind == "skipped" and "frontend" in str(e.step) for e in d.events)
    state = d.state
    assert {state.resources[f"app.model.container[{i}]@local"].status for i in range(2)} == {"tainted"}

    d.local.never_ready.clear()
    plan = d.plan()
    actions = {c.address: c.action for c in plan.actions}
    assert actions == {"app.model.container[0]@local": Action.REPLACE, "app.model.container[1]@local": Action.REPLACE,
                       "app.frontend.container[0]@local": Action.CREATE}, pending(plan)
    result = d.apply()
    assert result.ok, failures(result)
    assert not d.plan().has_changes, pending(d.plan())
    assert_host_matches_state(d)


@pytest.mark.parametrize("how", ["remove_behind_berth", "stop_behind_berth"])
def test_a_container_lost_behind_berths_back_is_planned_back(tmp_path: Path, how: str) -> None:
    d = applied(tmp_path, REPLICAS)
    getattr(d.local, how)("app.web.container[1]@local")

    plan = d.plan()
    assert [c.address for c in plan.actions] == ["app.web.container[1]@local"], pending(plan)
    assert plan.actions[0].action is (Action.CREATE if how == "remove_behind_berth" else Action.REPLACE)
    result = d.apply()
    assert result.ok, failures(result)
    assert not d.plan().has_changes, pending(d.plan())
    assert_host_matches_state(d)


def test_a_secret_file_removed_behind_berths_back_is_written_again(tmp_path: Path) -> None:
    d = applied(tmp_path, SECRETS)
    del d.local.secret_files[("demo", "worker", "cfg")]
    assert [c.address for c in d.plan().actions if c.type == "secret"] == ["app.worker.secret.cfg@local"]
    result = d.apply()
    assert result.ok, failures(result)
    assert d.local.secret_files[("demo", "worker", "cfg")] == b"a=1"
    assert not d.plan().has_changes, pending(d.plan())


# A run that fails at any change to the host (the Nth, for every N the apply makes)
# leaves a state from which the next apply converges, with no container left over.
CHANGED = {"cfg.txt": "a=3\n", "web/serve.sh": "#!/bin/sh\necho v3\n"}


@pytest.mark.parametrize("phase", ["fresh", "changed"])
def test_a_failure_at_any_change_leaves_a_state_the_next_apply_converges_from(tmp_path: Path, phase: str) -> None:
    toml = SECRETS + DEPENDS_ON.replace('[stack]\nname = "demo"\n', "").replace("1808", "1828").replace("18090", "18290")
    n, failed_runs = 0, 0
    while True:
        n += 1
        d = Deployment(tmp_path / f"n{n}", toml, files=FILES)
        if phase == "changed":
            assert d.apply().ok
            d.write(toml.replace('"/ready"', '"/healthz"'), files=CHANGED)
        d.local.fail_at = d.local.changes_made + n
        first = d.apply()
        if first.ok:  # the apply made fewer than n changes: every position was tried
            break
        failed_runs += 1
        assert any("(injected)" in f for f in failures(first)), failures(first)
        d.local.fail_at = None
        second = d.apply()
        assert second.ok, (n, failures(second))
        assert not d.plan().has_changes, (n, pending(d.plan()))
        assert_host_matches_state(d)
    assert failed_runs >= {"fresh": 11, "changed": 7}[phase], failed_runs


def test_a_run_stopped_midway_leaves_a_state_the_next_apply_converges_from(tmp_path: Path) -> None:
    import threading

    d = Deployment(tmp_path, DEPENDS_ON, files=FILES)
    stop = threading.Event()
    real_run = d.local.run_container

    def run_then_stop(spec):
        stop.set()  # Ctrl-C while the first container starts
        return real_run(spec)

    d.local.run_container = run_then_stop
    first = d.apply(stop=stop, parallelism=1)
    assert first.interrupted and not first.ok
    del d.local.run_container
    second = d.apply()
    assert second.ok, failures(second)
    assert not d.plan().has_changes, pending(d.plan())
    assert_host_matches_state(d)


def test_the_harness_sees_a_plan_that_does_not_converge(tmp_path: Path) -> None:
    """The checks above can fail: a container berth recorded but the host lost while
    the plan did not look (refresh=false) is a change the next refreshed plan finds."""
    d = applied(tmp_path, ONE_APP)
    d.local.remove_behind_berth("app.web.container[0]@local")
    assert not d.plan(refresh=False).has_changes
    assert d.plan().has_changes
    with pytest.raises(AssertionError):
        assert_host_matches_state(d)


def test_a_fresh_state_has_no_lineage_until_the_first_apply(tmp_path: Path) -> None:
    d = Deployment(tmp_path, ONE_APP)
    assert d.state is None and d.plan().lineage is None
    d.apply()
    state = d.state
    assert isinstance(state, State) and state.serial >= 1
    assert d.plan().lineage == state.lineage


# -- the harness's own parts agree with what they stand for ----------------------------------


def test_on_the_disk_store_the_cli_uses_apply_twice_plans_nothing(tmp_path: Path) -> None:
    d = Deployment(tmp_path, SECRETS, files=FILES, on_disk=True)
    assert d.apply().ok
    assert (tmp_path / ".berth" / "stacks" / "demo").is_dir()  # the stack's own store
    assert not d.plan().has_changes, pending(d.plan())
    assert d.state.resources["app.web.container[0]@local"].status == "ready"


def test_the_memory_store_numbers_and_records_versions_as_the_disk_store_does(tmp_path: Path) -> None:
    from unit.deployment import MemoryStore
    from state.store import DiskStore

    disk, memory = DiskStore(tmp_path / "state"), MemoryStore()
    config = {"apps": {"web": {"image": "busybox"}}}
    fresh = State(stack="demo")
    for store in (disk, memory):
        first = store.write(fresh, note="apply", config=config)
        store.write(first, note="apply")
        store.write(first.model_copy(update={"serial": 9}), note="push")  # a pushed state keeps its serial
        store.write(first.model_copy(update={"serial": 3}), note="apply", config=config)  # never backwards
    assert memory.read() == disk.read()
    strip = lambda entries: [{k: v for k, v in e.items() if k not in ("time", "who")} for e in entries]
    assert strip(memory.history()) == strip(disk.history())
    assert memory.latest_config() == disk.latest_config()
    assert memory.config(disk.latest_config()) == disk.config(disk.latest_config()) == config
    disk.close()


# The plan cases (plan_cases/*.json, run by test_diff.py) start from applied(): state and
# hosts "exactly as a successful apply leaves them", built by hand. Here a real apply
# leaves them, and the two must agree but for the engine's IDs, or every case tests a fiction.
RICH = f"""
[stack]
name = "demo"

[apps.web]
build = "./web"
command = ["/serve.sh", "--port", "8080"]
port = 8080
host_port = 18080
replicas = 2
readiness = "/ready"
memory = "256m"
cpus = 0.5
restart = "always"
secrets = ["tok"]
env = {{ MODEL = "llama" }}

[apps.worker]
build = "./web"
port = 8080
host_port = 18090
depends_on = ["web"]

[apps.api]
image = "vllm/vllm-openai:v0.5.0"
port = 8000
host_port = 19000

[apps.pinned]
image = "busybox@{DIGEST}"
port = 80
host_port = 19100

[secrets.tok]
env = "TOK"
"""


def assert_world_is_what_apply_left(d: Deployment) -> None:
    """test_diff.applied() of the stack d applied equals d's state and hosts, IDs aside."""
    from unit.planner import test_diff
    from planner.pipeline import content_hashes
    from planner.resources import secret_names

    session = d.session()
    try:
        stack = session.stack
        assert stack.name == test_diff.STACK
        names = sorted({n for app in stack.apps.values() for n in secret_names(app)})
        ctx = session.context
        world = test_diff.applied(dict(stack.apps), content_hashes(ctx), set(d.hosts),
                                  ctx.secrets.digests(names) if names else {})
    finally:
        session.close()

    def records(resources):
        return {a: (r.type, r.host, r.status, r.attributes) for a, r in resources.items()}

    def containers(obs):
        return {c.labels["berth.address"]: (c.name, c.state, c.labels, c.host_ports) for c in obs.containers}

    def images(obs):
        return sorted((sorted(i.tags), sorted(i.digests), sorted(i.labels.items())) for i in obs.images)

    real = d.state
    assert records(world.resources) == records(real.resources)
    observed = world.observed()
    for name, fake in d.hosts.items():
        on_host = fake.observe("demo")
        assert containers(observed[name]) == containers(on_host), name
        assert images(observed[name]) == images(on_host), name
        assert sorted(observed[name].secrets) == sorted(on_host.secrets), name


def test_the_plan_cases_applied_world_is_the_one_a_real_apply_leaves(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOK", "s3cret")
    assert_world_is_what_apply_left(applied(tmp_path, RICH))


def case_worlds() -> list:
    """Each distinct `world` of the plan cases, named by the first case that has it."""
    import json

    from unit.planner import test_diff

    seen, params = set(), []
    for path in sorted(test_diff.CASES.glob("*.json")):
        world = json.loads(path.read_text()).get("world", {})
        key = json.dumps(world, sort_keys=True)
        if world and key not in seen:
            seen.add(key)
            params.append(pytest.param(world, id=path.stem))
    return params


@pytest.mark.parametrize("world", case_worlds())
def test_every_plan_cases_world_is_the_one_a_real_apply_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               world: dict) -> None:
    """The world of each plan case, applied for real: its build contexts made as
    directories, its secrets given in the environment (test_diff's sources: env NAME)."""
    from unit.planner import test_diff
    from unit.fake_provider import FakeHost
    from planner.desired import HostConfig, Stack
    from planner.resources import secret_names

    apps = {}
    for name, fields in world.items():
        if isinstance(fields.get("build"), str):
            context = tmp_path / "contexts" / fields["build"].strip("/")
            context.mkdir(parents=True, exist_ok=True)
            (context / "Dockerfile").write_text(f"FROM busybox\n# {fields['build']}\n")
            fields = fields | {"build": str(context)}
        apps[name] = fields
    configs = test_diff.configs(apps)
    remote = {app.host for app in configs.values()} - {"local"}
    for name in {n for app in configs.values() for n in secret_names(app)}:
        monkeypatch.setenv(name.upper(), f"value of {name}")
    stack = Stack(name=test_diff.STACK, file=str(tmp_path / "berth.toml"), apps=configs,
                  secrets=test_diff.sources_for(configs, {}),
                  hosts={h: HostConfig(name=h, user="root", address="10.0.0.5") for h in remote})
    d = Deployment(tmp_path, None, stack=stack, hosts={h: FakeHost(h) for h in {"local", *remote}})
    result = d.apply()
    assert result.ok, failures(result)
    assert not d.plan().has_changes, pending(d.plan())
    assert_world_is_what_apply_left(d)


# -- more than one host ----------------------------------------------------------------------

TWO_HOSTS = """
[stack]
name = "demo"

[hosts.gpu-a]
ssh = "root@10.0.0.5"

[apps.web]
image = "busybox:1.36"
port = 8080
host_port = 18080
"""


def two_hosts(tmp_path: Path, toml: str) -> Deployment:
    from unit.fake_provider import FakeHost

    return Deployment(tmp_path, toml, hosts={"local": FakeHost("local"), "gpu-a": FakeHost("gpu-a")})


def test_an_app_moved_to_another_host_starts_there_and_leaves_the_old_one(tmp_path: Path) -> None:
    d = two_hosts(tmp_path, TWO_HOSTS)
    assert d.apply().ok
    d.write(TWO_HOSTS + 'host = "gpu-a"\n')

    actions = {c.address: c.action for c in d.plan().actions}
    assert actions == {"app.web.image@gpu-a": Action.CREATE, "app.web.container[0]@gpu-a": Action.CREATE,
                       "app.web.container[0]@local": Action.DELETE}
    result = d.apply()
    assert result.ok, failures(result)
    assert d.local.stack_containers("demo") == []
    assert [c.address for c in d.hosts["gpu-a"].stack_containers("demo")] == ["app.web.container[0]@gpu-a"]
    assert not d.plan().has_changes, pending(d.plan())


def test_gpus_are_assigned_from_the_hosts_inventory_and_kept_on_the_next_plan(tmp_path: Path) -> None:
    from providers.gpus import Gpu

    d = two_hosts(tmp_path, TWO_HOSTS.replace('host_port = 18080\n', 'host_port = 18080\nreplicas = 2\ngpus = 1\nhost = "gpu-a"\n'))
    d.hosts["gpu-a"].gpu_list = tuple(Gpu(index=str(i), name="NVIDIA L4", memory_mib=23034, uuid=f"GPU-{i}")
                                      for i in range(2))
    result = d.apply()
    assert result.ok, failures(result)
    devices = sorted(d.hosts["gpu-a"].container_at(f"app.web.container[{i}]@gpu-a").spec.gpus for i in range(2))
    assert devices == [("0",), ("1",)]
    assert not d.plan().has_changes, pending(d.plan())

    d.hosts["gpu-a"].gpu_list = d.hosts["gpu-a"].gpu_list[:1]  # a GPU is gone: two cannot fit on one
    from planner.diagnostics import DiagnosticsError

    with pytest.raises(DiagnosticsError) as refused:
        d.plan()
    assert "has 1 GPU" in str(refused.value) and "ask for 2" in str(refused.value), refused.value
