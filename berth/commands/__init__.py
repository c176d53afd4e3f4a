"""What the commands share: the common options, opening the workspace (or only the state
store), holding the state lock (its stale-lock warning said here), and the exit codes.

One module per command group; each exposes `register(subparsers)`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", metavar="PATH", help="stack file, or a directory holding berth.toml (default: ./berth.toml)")
    parser.add_argument("--state-dir", metavar="DIR", help="where state is kept (default: .berth/ beside the stack file)")
    parser.add_argument("--no-color", action="store_true", help="plain output, no colour")


def open_workspace(args: argparse.Namespace) -> Any:
    """Load the stack file and open its workspace (state store, hosts on demand)."""
    from pathlib import Path

    from berth.stackfile.load import load_stack
    from berth.workspace import Workspace, state_dir_for

    stack = load_stack(args.file, getattr(args, "environment", None))
    return Workspace(stack, state_dir_for(Path(stack.file), args.state_dir))


def state_dir(args: argparse.Namespace) -> Any:
    """Where state is kept, from -f and --state-dir alone (the stack file is not parsed)."""
    from pathlib import Path

    from berth.stackfile.load import find_stack_file
    from berth.workspace import state_dir_for

    if args.state_dir:
        return Path(args.state_dir).resolve()
    return state_dir_for(find_stack_file(args.file), None)


def open_store(args: argparse.Namespace) -> Any:
    """The stack's state store alone, for commands that never need the stack's hosts.
    A stack file that does not load (or is not there, with --state-dir) still finds the
    store when the state directory keeps only one, so `state pull` can save a state and
    `force-unlock` clear a lock whatever the file holds now."""
    from berth.stackfile.load import load_stack
    from berth.workspace import store_path, stores_in
    from planner.diagnostics import DiagnosticsError
    from state.store import DiskStore, recorded_stack

    directory = state_dir(args)
    try:
        name = load_stack(args.file, getattr(args, "environment", None)).name
    except DiagnosticsError:
        kept = stores_in(directory)
        if len(kept) != 1:
            raise
        return DiskStore(kept[0], stack=recorded_stack(kept[0]) or None)
    return DiskStore(store_path(directory, name), stack=name)


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


def plan_opts(args: argparse.Namespace, *, destroy: bool = False) -> Any:
    """The planner's options (planner.pipeline.PlanOpts) from plan_options' flags."""
    from planner.pipeline import PlanOpts

    return PlanOpts(destroy=destroy, refresh=args.refresh, targets=tuple(args.target),
                    replace=tuple(getattr(args, "replace", None) or ()),
                    remove_volumes=bool(getattr(args, "volumes", False)))


def say_environment(stack: Any, ui: Any) -> None:
    """The plan's header line when an environment is in effect (`-e NAME`)."""
    if stack.environment:
        ui.say(f"Environment {stack.environment}: stack {stack.name} (berth.{stack.environment}.toml over "
               f"{stack.file.rsplit('/', 1)[-1]})\n", "bold")


@contextmanager
def locked(store: Any, operation: str, ui: Any) -> Iterator[Any]:
    """The state lock held for the block; a stale lock taken over is said here."""
    from state import lock

    with lock.acquire(store, operation) as held:
        if held.taken_over:
            ui.say(f"Warning: took over a stale lock: its holder is gone ({lock.describe(held.taken_over)})", "yellow", err=True)
        yield held
