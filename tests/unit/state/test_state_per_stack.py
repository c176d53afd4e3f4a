"""Issue 17 item 1: a state directory keeps one state per stack. Two stack files beside
each other never share one (a plan of one never touches what the other made), a state
directory of an earlier berth (one store in .berth/state) stays its stack's with no
migration, and a state recorded for another stack is never read as this one's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from berth.cli import main
from unit.deployment import Deployment, pending
from planner.plan import Action
from state.errors import StateError
from state.model import State
from state.store import DiskStore

STAGING = """
[stack]
name = "staging"

[apps.web]
image = "busybox:1.36"
port = 8080
host_port = {port}
env = { WHERE = "{name}" }
"""


def stack(name: str, port: int) -> str:
    return STAGING.replace('"staging"', f'"{name}"').replace("{port}", str(port)).replace("{name}", name)


def test_two_stacks_in_one_directory_keep_their_own_state(tmp_path: Path) -> None:
    d = Deployment(tmp_path, stack("staging", 18080), on_disk=True)
    assert d.apply().ok
    staging_ids = {c.id for c in d.local.stack_containers("staging")}

    d.write(stack("prod", 18090))
    plan = d.plan()
    assert all(c.action is Action.CREATE for c in plan.actions), pending(plan)
    assert not d.plan(destroy=True).has_changes, pending(d.plan(destroy=True))
    assert d.apply().ok
    assert {c.id for c in d.local.stack_containers("staging")} == staging_ids  # untouched
    assert d.apply(destroy=True).ok
    assert {c.id for c in d.local.stack_containers("staging")} == staging_ids
    assert not d.local.stack_containers("prod")

    d.write(stack("staging", 18080))
    assert not d.plan().has_changes, pending(d.plan())
    stores = sorted(p.name for p in (tmp_path / ".berth" / "stacks").iterdir())
    assert stores == ["prod", "staging"]


def test_a_state_directory_of_an_earlier_berth_stays_its_stacks_with_no_migration(tmp_path: Path) -> None:
    d = Deployment(tmp_path, stack("staging", 18080), on_disk=True)
    assert d.apply().ok
    legacy = tmp_path / ".berth" / "state"
    shutil.move(tmp_path / ".berth" / "stacks" / "staging", legacy)  # where berth kept it before stacks/
    shutil.rmtree(tmp_path / ".berth" / "stacks")
    serial = d.state.serial

    assert not d.plan().has_changes, pending(d.plan())
    d.write(stack("staging", 18080).replace('WHERE = "staging"', 'WHERE = "staging-2"'))
    assert d.apply().ok
    assert DiskStore(legacy).read().serial > serial  # written where it is
    assert not (tmp_path / ".berth" / "stacks").exists()

    d.write(stack("prod", 18090))  # another stack beside it: its own store, blind to staging's
    assert all(c.action is Action.CREATE for c in d.plan().actions), pending(d.plan())
    assert not d.plan(destroy=True).has_changes


def test_a_state_recorded_for_another_stack_is_never_read_or_written_as_this_ones(tmp_path: Path) -> None:
    DiskStore(tmp_path / "s").write(State(stack="staging"))
    store = DiskStore(tmp_path / "s", stack="prod")
    for attempt in (store.read, lambda: store.write(State(stack="prod"))):
        with pytest.raises(StateError, match="the state of stack 'staging', not of 'prod'"):
            attempt()
    with pytest.raises(StateError, match="the state of stack 'staging', not of 'prod'"):
        DiskStore(tmp_path / "t", stack="prod").write(State(stack="staging"))  # a push of another's state


def test_state_list_says_whose_state_it_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = Deployment(tmp_path, stack("staging", 18080), on_disk=True)
    assert d.apply().ok
    d.write(stack("prod", 18090))
    assert main(["state", "list", "-f", str(tmp_path), "--no-color"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "state of stack prod" in err
    d.write(stack("staging", 18080))
    assert main(["state", "list", "-f", str(tmp_path), "--no-color"]) == 0
    out, err = capsys.readouterr()
    assert "app.web.container[0]@local" in out and "state of stack staging" in err


def test_import_refuses_a_container_labelled_for_another_stack(tmp_path: Path) -> None:
    from unit.deployment import MemoryStore
    from planner.importing import adopt
    from state.address import Address

    d = Deployment(tmp_path, stack("staging", 18080))
    assert d.apply().ok
    staging = d.local.container_at("app.web.container[0]@local")
    store = MemoryStore()
    with pytest.raises(StateError, match="belongs to stack 'staging'"):
        adopt(store, "prod", Address.parse("app.web.container[0]@local"), d.local, staging.name, {})
    assert store.read() is None
