"""`berth rollback [SERIAL]`: plan (and on yes, apply) the desired configuration an
earlier apply recorded, through the normal plan, so its diff is shown first."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import common, locked, open_store, state_dir


def register(commands: Any) -> None:
    rollback = commands.add_parser("rollback", help="re-apply the configuration recorded at an earlier serial")
    common(rollback)
    rollback.add_argument("serial", nargs="?", type=int, metavar="SERIAL",
                          help="a serial from `berth state history --serials` (default: the configuration applied before the current one)")
    rollback.add_argument("--run", dest="run_number", type=int, metavar="N", help="the configuration run N of `berth state history` applied")
    rollback.add_argument("--auto-approve", action="store_true", help="do not ask for 'yes'")
    rollback.add_argument("--parallelism", type=int, default=10, metavar="N", help="steps run at once (default 10)")
    rollback.set_defaults(run=cmd_rollback, destroy=False)


def _chosen(args: argparse.Namespace, store: Any) -> tuple[int | None, str]:
    """The serial to roll back to, and how to name it: SERIAL, --run N (its last serial), or neither."""
    from state.errors import StateError
    from state.history import run_numbered

    if args.run_number is None:
        return args.serial, ""
    if args.serial is not None:
        raise StateError("rollback takes a SERIAL or --run N, not both")
    run = run_numbered(store.history(), args.run_number)
    if run is None or run.config is None:
        raise StateError(f"rollback: run {args.run_number} " + ("is not in the history" if run is None else
                         "recorded no configuration (it was not an apply)") + "; see `berth state history`")
    return run.last, f"run {run.number} (serial {run.last})"


def cmd_rollback(args: argparse.Namespace, ui: Any) -> int:
    from berth.commands.apply import run_plan
    from berth.ui.state_view import when
    from berth.workspace import Workspace
    from planner import pipeline
    from planner.recorded import stack_from_record
    from planner.rollback import rollback_hashes, rollback_point
    from state.model import State

    directory = state_dir(args)
    probe = open_store(args)
    try:
        serial, what = _chosen(args, probe)
        point = rollback_point(probe, serial)
    finally:
        probe.close()
    stack = stack_from_record(point.record)
    workspace = Workspace(stack, directory)
    try:
        with locked(workspace.store, "rollback", ui):
            state = workspace.store.read() or State(stack=stack.name)
            hashes, warnings = rollback_hashes(workspace.context, state, point.state)
            for warning in warnings:
                ui.say(f"Warning: {warning}", "yellow", err=True)
            ui.say(f"Rolling back to the configuration applied {'by ' + what if what else 'at serial ' + str(point.serial)} "
                   f"({when(point.time)} UTC by {point.who}).\n", "bold")
            plan = pipeline.plan(workspace.context, state, pipeline.PlanOpts(hashes=hashes))
            return run_plan(workspace, plan, state, args, ui, config=point.record,
                            note=f"rollback to {what or 'serial ' + str(point.serial)}", confirm=not args.auto_approve)
    finally:
        workspace.close()
