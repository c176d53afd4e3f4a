"""An empty stack file never plans the destruction of what state holds (issue 17 item 5):
`: > berth.toml; berth apply --auto-approve` is refused; `berth destroy` is the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.deployment import Deployment
from planner.diagnostics import DiagnosticsError
from planner.plan import Action

ONE_APP = """
[stack]
name = "demo"

[apps.web]
image = "busybox:1.36"
port = 8080
host_port = 18080
"""
MESSAGE = "the stack file declares no apps; `berth destroy` removes the stack"


@pytest.mark.parametrize("emptied", ["", '[stack]\nname = "demo"\n', "# all gone\n"], ids=["empty", "stack-only", "comment"])
def test_a_stack_file_without_apps_is_refused_while_state_holds_resources(tmp_path: Path, emptied: str) -> None:
    d = Deployment(tmp_path, ONE_APP)
    d.apply()
    before = d.state
    running = dict(d.local.containers)
    d.write(emptied)
    with pytest.raises(DiagnosticsError) as err:
        d.plan()
    assert [diag.summary for diag in err.value.diagnostics] == [MESSAGE]
    assert err.value.diagnostics[0].file == "berth.toml"
    with pytest.raises(DiagnosticsError):
        d.apply()
    assert d.state == before and dict(d.local.containers) == running  # nothing touched


def test_destroy_of_a_stack_file_without_apps_still_plans_the_removal(tmp_path: Path) -> None:
    d = Deployment(tmp_path, ONE_APP)
    d.apply()
    d.write('[stack]\nname = "demo"\n')
    plan = d.plan(destroy=True)
    assert {c.action for c in plan.actions} == {Action.DELETE}
    d.destroy()
    assert not d.state.resources


def test_a_stack_file_without_apps_and_nothing_in_state_plans_nothing(tmp_path: Path) -> None:
    d = Deployment(tmp_path, '[stack]\nname = "demo"\n')
    assert not d.plan().has_changes
