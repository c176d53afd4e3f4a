"""One module per command group; each exposes `register(subparsers)`.

What the commands share lives here: the common options, opening a Session or only the
state store, and the exit codes.
"""

from __future__ import annotations

import argparse
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", metavar="PATH", help="stack file, or a directory holding berth.toml (default: ./berth.toml)")
    parser.add_argument("--state-dir", metavar="DIR", help="where state is kept (default: .berth/ beside the stack file)")
    parser.add_argument("--no-color", action="store_true", help="plain output, no colour")


def open_session(args: argparse.Namespace) -> Any:
    """Load the stack file and open its session (state store, hosts on demand)."""
    from pathlib import Path

    from berth.workspace import Session, state_dir_for
    from berth.stackfile.load import load_stack

    stack = load_stack(args.file)
    return Session(stack, state_dir_for(Path(stack.file), args.state_dir))


def state_dir(args: argparse.Namespace) -> Any:
    """Where state is kept, from -f and --state-dir alone (the stack file is not parsed)."""
    from pathlib import Path

    from berth.workspace import state_dir_for
    from berth.stackfile.load import find_stack_file

    if args.state_dir:
        return Path(args.state_dir).resolve()
    return state_dir_for(find_stack_file(args.file), None)


def open_store(args: argparse.Namespace) -> Any:
    """The state store alone, for commands that never need the stack's hosts."""
    from state.store import DiskStore

    return DiskStore(state_dir(args) / "state")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def plan_options(parser: argparse.ArgumentParser, *, replace: bool = True) -> None:
    """The options that shape a plan: shared by plan, apply and destroy."""
    parser.add_argument("--target", action="append", default=[], metavar="ADDRESS",
                        help="plan only this address (app.web, app.web@HOST, app.web.container[0]@local) and what it depends on; repeatable")
    if replace:
        parser.add_argument("--replace", action="append", default=[], metavar="ADDRESS",
                            help="replace this container even if nothing about it changed; repeatable")
    parser.add_argument("--refresh", type=_bool, default=True, metavar="true|false",
                        help="--refresh=false plans from stored state alone, contacting no host")


def make_plan(session: Any, state: Any, args: argparse.Namespace, *, destroy: bool = False) -> Any:
    """Diff, then force replacements, then narrow to the targets: what plan shows and
    apply runs."""
    from planner.targeting import force_replace, select

    plan = session.plan(state, destroy=destroy, refresh=args.refresh)
    if getattr(args, "replace", None):
        plan = force_replace(plan, args.replace)
    if args.target:
        plan = select(plan, args.target)
    return plan


def recorded_config_for(stack: Any, *, destroy: bool = False) -> dict[str, Any]:
    """The configuration an apply records with its state versions (a destroy records
    the stack with no apps: that is what it leaves desired)."""
    from planner.recorded import recorded_config

    return recorded_config(stack.model_copy(update={"apps": {}}) if destroy else stack)
