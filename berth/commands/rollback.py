"""`berth rollback [SERIAL]`: plan (and on yes, apply) the desired configuration an
earlier apply recorded, through the normal plan, so its diff is shown first."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import common, state_dir


def register(commands: Any) -> None:
    rollback = commands.add_parser("rollback", help="re-apply the configuration recorded at an earlier serial")
    common(rollback)
    rollback.add_argument("serial", nargs="?", type=int, metavar="SERIAL",
                          help="a serial from `berth state history` (default: the configuration applied before the current one)")
    rollback.add_argument("--auto-approve", action="store_true", help="do not ask for 'yes'")
    rollback.add_argument("--parallelism", type=int, default=10, metavar="N", help="steps run at once (default 10)")
    rollback.set_defaults(run=cmd_rollback, destroy=False)


def cmd_rollback(args: argparse.Namespace, ui: Any) -> int:
    from berth.commands.apply import run_plan
    from berth.workspace import Session
    from berth.ui.state_view import when
    from planner.recorded import stack_from_record
    from state import lock
    from state.errors import StateError
    from state.history import config_at, previous_config, state_at
    from state.model import State
    from state.store import DiskStore

    directory = state_dir(args)
    probe = DiskStore(directory / "state")
    try:
        entries = probe.history()
        found = previous_config(entries) if args.serial is None else config_at(entries, args.serial)
        if found is None:
            raise StateError(
                "rollback: no earlier configuration is recorded" if args.serial is None else
                f"rollback: no apply had recorded a configuration by serial {args.serial}; see `berth state history`")
        serial, digest = found
        record = probe.config(digest)
        if record is None:
            raise StateError(f"rollback: the configuration recorded at serial {serial} is missing from {probe.path}")
        then = next(e for e in entries if e["serial"] == serial)
        recorded_state = State.model_validate(state_at(entries, serial) or {})
    finally:
        probe.close()
    stack = stack_from_record(record)
    session = Session(stack, directory)
    try:
        with lock.acquire(session.store, "rollback") as held:
            if held.taken_over:
                ui.say(f"Warning: took over a stale lock: its holder is gone ({lock.describe(held.taken_over)})", "yellow", err=True)
            state = session.store.read() or State(stack=stack.name)
            hashes = _hashes(session, state, recorded_state, ui)
            ui.say(f"Rolling back to the configuration applied at serial {serial} "
                   f"({when(then['time'])} UTC by {then.get('who', '?')}).\n", "bold")
            plan = session.plan(state, hashes=hashes)
            return run_plan(session, plan, state, args, ui, config=record, note=f"rollback to serial {serial}",
                            confirm=not args.auto_approve)
    finally:
        session.close()


def _hashes(session: Any, state: Any, recorded: Any, ui: Any) -> dict[str, str]:
    """Content hashes for the recorded builds: the image an earlier apply built, when the
    host still has it; else the context as it is now, with a warning."""
    from planner.resources import image_labels
    from state.address import Address

    current = session.content_hashes()
    observed = session.observe(state)
    out = dict(current)
    for app in session.stack.apps.values():
        if app.build is None:
            continue
        then = recorded.resources.get(str(Address.image(app.name, app.host)))
        wanted = (then.attributes.get("content_hash") if then else None)
        if not wanted or wanted == current.get(app.name):
            continue
        labels = image_labels(session.stack.name, wanted)
        obs = observed.get(app.host)
        if obs and any(labels.items() <= image.labels.items() for image in obs.images):
            out[app.name] = wanted
        else:
            ui.say(f"Warning: the image app {app.name} ran then ({wanted[:12]}) is gone from host {app.host}; "
                   "it is built from the context as it is now.", "yellow", err=True)
    return out
