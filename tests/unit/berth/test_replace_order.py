"""plan --json tells a start-first from a stop-first replace (berth.ui.plan_view.replace_order)."""

from __future__ import annotations

from berth.ui.plan_view import replace_order
from planner.plan import Action, Change
from state.address import Address

WEB = Address.container("web", 0, "local")


def change(action: Action, before: dict, after: dict) -> Change:
    return Change(address=WEB, type="container", action=action, before=before, after=after)


def test_a_free_port_replace_starts_first_and_a_fixed_port_or_shared_gpu_stops_first():
    assert replace_order(change(Action.REPLACE, {"host_port": None}, {"host_port": None})) == "start-first"
    assert replace_order(change(Action.REPLACE, {"host_port": 8000}, {"host_port": 8000})) == "stop-first"
    assert replace_order(change(Action.REPLACE, {"host_port": None, "gpus": ["0"]},
                                {"host_port": None, "gpus": ["0"]})) == "stop-first"
    assert replace_order(change(Action.REPLACE, {"host_port": None, "gpus": ["0"]},
                                {"host_port": None, "gpus": ["1"]})) == "start-first", "a spare GPU"
    assert replace_order(change(Action.CREATE_THEN_DELETE, {"host_port": None}, {"host_port": None})) == "start-first"
    assert replace_order(change(Action.UPDATE, {"host_port": 1}, {"host_port": 1})) is None
