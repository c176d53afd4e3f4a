"""Named volumes as resources (volume.NAME@HOST) and host paths, applied against fake
hosts (tests/unit/deployment.py): made before the containers that mount them, kept
across replaces, applies and destroy, removed by destroy --volumes; a host path missing
on its host is a plan-time error at its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.diagnostics import DiagnosticsError
from planner.plan import Action
from providers.types import LABEL_ADDRESS, LABEL_STACK
from unit.deployment import Deployment, failures, pending
from unit.fake_provider import FakeHost

TOML = """
[stack]
name = "demo"

[apps.llm]
image = "busybox"
port = 8000
volumes = ["hf-cache:/root/.cache/huggingface", "/srv/models:/models:ro"]
env = {{ MODEL = "{model}" }}

[apps.embed]
image = "busybox"
port = 8001
volumes = ["hf-cache:/cache"]
"""
VOLUME = "volume.hf-cache@local"


def deployment(tmp_path: Path, model: str = "a", **kwargs) -> Deployment:
    d = Deployment(tmp_path, TOML.format(model=model), **kwargs)
    d.local.paths.add("/srv/models")
    d.local._add_image("busybox", {})
    return d


def test_one_volume_per_host_made_before_the_containers_that_mount_it(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    plan = d.plan()
    volumes = [c for c in plan.actions if c.type == "volume"]
    assert [(str(c.address), c.action) for c in volumes] == [(VOLUME, Action.CREATE)]  # two apps, one volume
    result = d.apply()
    assert result.ok, failures(result)
    assert d.local.volumes == {"berth-demo-hf-cache": {LABEL_STACK: "demo", LABEL_ADDRESS: VOLUME}}
    assert "auto_volume" not in {op for op, _ in d.local.log}  # never left for Docker to make unlabelled
    log = [(op, subject) for op, subject in d.local.log if op in ("create_volume", "create", "run")]
    assert log[0] == ("create_volume", "berth-demo-hf-cache"), log
    assert d.state.resources[VOLUME].id == "berth-demo-hf-cache"
    mounts = {m.target: m for m in d.local.container_at("app.llm.container[0]@local").spec.volumes}
    assert mounts["/root/.cache/huggingface"].source == "berth-demo-hf-cache" and mounts["/root/.cache/huggingface"].named
    assert mounts["/models"].source == "/srv/models" and mounts["/models"].read_only
    assert not d.plan().has_changes, pending(d.plan())


def test_a_replace_keeps_the_volume(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    assert d.apply().ok
    d.write(TOML.format(model="b"))
    plan = d.plan()
    assert [c.action for c in plan.actions if c.type == "volume"] == []
    assert d.apply().ok
    assert "remove_volume" not in {op for op, _ in d.local.log}
    assert "berth-demo-hf-cache" in d.local.volumes


def test_destroy_keeps_named_volumes_and_says_so(tmp_path: Path) -> None:
    from berth.ui.plan_view import kept

    d = deployment(tmp_path)
    assert d.apply().ok
    plan = d.plan(destroy=True)
    assert kept(plan) == ["kept: volume.hf-cache@local (destroy --volumes removes it)"]
    from berth.ui.plan_view import plan_document

    assert plan_document(plan)["kept"] == kept(plan)
    assert d.destroy().ok
    assert not d.local.stack_containers("demo")
    assert "berth-demo-hf-cache" in d.local.volumes
    assert VOLUME in d.state.resources  # still berth's: a later destroy --volumes finds it


def test_destroy_volumes_removes_them_after_the_containers(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    assert d.apply().ok
    plan = d.plan(destroy=True, volumes=True)
    assert [(str(c.address), c.action) for c in plan.actions if c.type == "volume"] == [(VOLUME, Action.DELETE)]
    result = d.destroy(volumes=True)
    assert result.ok, failures(result)  # the fake refuses to remove a volume a container still uses
    assert d.local.volumes == {}
    assert VOLUME not in d.state.resources


def test_a_volume_no_app_mounts_any_more_is_kept(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    assert d.apply().ok
    d.write(TOML.format(model="a").replace('volumes = ["hf-cache:/cache"]', "")
            .replace('"hf-cache:/root/.cache/huggingface", ', ""))
    plan = d.plan()
    [change] = [c for c in plan.changes if c.type == "volume"]
    assert change.action is Action.NOOP
    assert change.reasons == ["no app mounts it; kept: volume.hf-cache@local (destroy --volumes removes it)"]
    assert d.apply().ok
    assert "berth-demo-hf-cache" in d.local.volumes and VOLUME in d.state.resources


def test_a_volume_removed_behind_berths_back_is_made_again(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    assert d.apply().ok
    d.local.volumes.clear()
    [change] = [c for c in d.plan().actions if c.type == "volume"]
    assert (change.action, change.reasons) == (Action.CREATE, ["volume no longer exists on the host"])


def test_a_missing_host_path_is_a_plan_time_error_at_its_key(tmp_path: Path) -> None:
    d = deployment(tmp_path)
    d.local.paths.clear()
    with pytest.raises(DiagnosticsError) as caught:
        d.plan()
    [problem] = caught.value.diagnostics
    assert (problem.file, problem.key, problem.line) == ("berth.toml", "apps.llm.volumes[1]", 8)
    assert problem.summary.startswith("host path /srv/models does not exist on host local")
    assert not [op for op, _ in d.local.log if op != "observe" and op != "missing_paths"]  # nothing touched


def test_host_paths_are_checked_on_the_apps_host_in_one_call(tmp_path: Path) -> None:
    gpu = FakeHost("gpu-a")
    toml = TOML.format(model="a").replace('port = 8000\n', 'port = 8000\nhost = "gpu-a"\n', 1) + \
        '\n[hosts.gpu-a]\nssh = "root@10.0.0.5"\n'
    d = Deployment(tmp_path, toml, hosts={"gpu-a": gpu})
    d.local.paths.add("/srv/models")  # here, but not on gpu-a: that is where the app runs
    with pytest.raises(DiagnosticsError) as caught:
        d.plan()
    assert "does not exist on host gpu-a" in caught.value.diagnostics[0].summary
    assert gpu.ops("missing_paths") == ["/srv/models"] and d.local.ops("missing_paths") == []


def test_refresh_keeps_a_volume_that_is_there_and_forgets_one_that_is_gone(tmp_path: Path) -> None:
    from planner.drift import drift

    d = deployment(tmp_path)
    assert d.apply().ok
    state = d.state
    kept, findings = drift(state, {"local": d.local.observe("demo")})
    assert VOLUME in kept.resources and not [f for f in findings if f.address == VOLUME]
    d.local.volumes.clear()
    gone, findings = drift(state, {"local": d.local.observe("demo")})
    assert VOLUME not in gone.resources
    assert [f.message for f in findings if f.address == VOLUME] == [
        "volume berth-demo-hf-cache no longer exists on host local: removed from state "
        "(the next apply makes it again, empty)"]


def test_a_targeted_app_brings_the_volumes_it_mounts(tmp_path: Path) -> None:
    from planner.targeting import select

    d = deployment(tmp_path)
    plan = select(d.plan(), ["app.embed"])
    assert sorted(str(c.address) for c in plan.actions) == ["app.embed.container[0]@local", VOLUME]
