"""state.history.runs: the versions one apply wrote, read as one run."""

from __future__ import annotations

import json

from state.history import run_numbered, runs


def entry(serial: int, run: str | None, resources: dict, note: str = "apply", config: str | None = None) -> dict:
    found = {"serial": serial, "time": float(serial), "who": "me", "note": note,
             "state": json.dumps({"resources": resources})}
    return found | ({"run": run} if run else {}) | ({"config": config} if config else {})


def test_versions_of_one_run_are_one_row_with_what_the_run_changed_in_all():
    history = [
        entry(1, "a", {"x": 1}, config="c1"), entry(2, "a", {"x": 1, "y": 1}, config="c1"),
        entry(3, None, {"x": 1, "y": 1}, note="state mv"),
        entry(4, "b", {"x": 2, "y": 1}, config="c2"), entry(5, "b", {"x": 2}, config="c2"),
    ]
    found = runs(history)
    assert [(r.number, r.first, r.last, r.note, r.config) for r in found] == [
        (1, 1, 2, "apply", "c1"), (2, 3, 3, "state mv", None), (3, 4, 5, "apply", "c2")]
    assert (found[0].added, found[0].removed, found[0].changed) == (("x", "y"), (), ())
    assert (found[2].added, found[2].removed, found[2].changed) == ((), ("y",), ("x",))
    assert run_numbered(history, 3).last == 5 and run_numbered(history, 4) is None


def test_the_same_run_id_apart_is_two_runs():
    history = [entry(1, "a", {}), entry(2, None, {}), entry(3, "a", {})]
    assert [r.first for r in runs(history)] == [1, 2, 3]
