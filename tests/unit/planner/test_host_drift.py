"""Issue 17 item 16: drift that refresh missed. A container renamed (`docker rename`) or
given other limits (`docker update --cpus/--memory`) behind berth's back is planned back:
an update in place (rename back, limits back), the container running on, keeping its ID;
a limit set where berth set none needs a new container (docker update cannot clear it)."""

from __future__ import annotations

from pathlib import Path

from unit.deployment import Deployment, pending
from planner.plan import Action

MIB = 2**20
LIMITED = """
[stack]
name = "demo"

[apps.web]
image = "busybox:1.36"
port = 8080
host_port = 18080
cpus = 0.5
memory = "64m"

[apps.free]
image = "busybox:1.36"
port = 8080
host_port = 18090
"""
WEB = "app.web.container[0]@local"
FREE = "app.free.container[0]@local"


def only_change(d: Deployment):
    plan = d.plan()
    assert [str(c.address) for c in plan.actions] == [WEB], pending(plan)
    return plan.actions[0]


def test_a_container_renamed_behind_berth_is_renamed_back_in_place(tmp_path: Path) -> None:
    d = Deployment(tmp_path, LIMITED)
    assert d.apply().ok
    container = d.local.container_at(WEB)
    name, cid = container.name, container.id
    d.local.rename_behind_berth(WEB, "someone-elses-name")

    change = only_change(d)
    assert change.action is Action.UPDATE, pending(d.plan())
    assert change.before["name"] == "someone-elses-name" and change.after["name"] == name
    assert any("renamed to someone-elses-name outside berth" in r for r in change.reasons), change.reasons
    assert d.apply().ok
    assert d.local.container_at(WEB).id == cid and d.local.container_at(WEB).name == name
    assert not d.plan().has_changes, pending(d.plan())


def test_limits_changed_behind_berth_are_put_back_in_place(tmp_path: Path) -> None:
    d = Deployment(tmp_path, LIMITED)
    assert d.apply().ok
    cid = d.local.container_at(WEB).id
    d.local.update_behind_berth(WEB, cpus=2.0, memory=512 * MIB)

    change = only_change(d)
    assert change.action is Action.UPDATE, pending(d.plan())
    assert (change.before["cpus"], change.before["memory"]) == (2.0, 512 * MIB)
    assert (change.after["cpus"], change.after["memory"]) == (0.5, 64 * MIB)
    assert any("cpus was changed to 2 outside berth" in r for r in change.reasons), change.reasons
    assert d.apply().ok
    spec = d.local.container_at(WEB).spec
    assert d.local.container_at(WEB).id == cid and (spec.cpus, spec.memory) == (0.5, 64 * MIB)
    assert not d.plan().has_changes, pending(d.plan())


def test_a_limit_set_behind_berth_where_it_set_none_needs_a_new_container(tmp_path: Path) -> None:
    d = Deployment(tmp_path, LIMITED)
    assert d.apply().ok
    d.local.update_behind_berth(FREE, memory=128 * MIB)
    plan = d.plan()
    [change] = [c for c in plan.actions if c.type == "container"]
    assert str(change.address) == FREE and change.action is Action.REPLACE, pending(plan)
    assert change.forces_replacement == ["memory"]
    assert d.apply().ok
    assert d.local.container_at(FREE).spec.memory is None
    assert not d.plan().has_changes, pending(d.plan())


def test_a_plan_from_state_alone_sees_no_drift(tmp_path: Path) -> None:
    d = Deployment(tmp_path, LIMITED)
    assert d.apply().ok
    d.local.rename_behind_berth(WEB, "elsewhere")
    d.local.update_behind_berth(WEB, cpus=3.0)
    assert not d.plan(refresh=False).has_changes


def test_berth_refresh_reports_the_rename_and_the_limits(tmp_path: Path) -> None:
    from planner.drift import drift
    from planner.refresh import observe_all

    d = Deployment(tmp_path, LIMITED)
    assert d.apply().ok
    d.local.rename_behind_berth(WEB, "elsewhere")
    d.local.update_behind_berth(WEB, cpus=3.0)
    state = d.state
    _, findings = drift(state, observe_all({"local": d.local}, "demo", state))
    said = [f.message for f in findings if f.address == WEB]
    assert any("renamed to elsewhere" in m for m in said) and any("cpus was changed to 3" in m for m in said), said
    assert not any(f.writes for f in findings if f.address == WEB)
