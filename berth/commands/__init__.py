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

    from berth.session import Session, state_dir_for
    from berth.spec.load import load_stack

    stack = load_stack(args.file)
    return Session(stack, state_dir_for(Path(stack.file), args.state_dir))


def open_store(args: argparse.Namespace) -> Any:
    """The state store alone, for commands that never need the stack's hosts."""
    from pathlib import Path

    from berth.session import state_dir_for
    from berth.spec.load import find_stack_file
    from state.store import DiskStore

    if args.state_dir:
        return DiskStore(Path(args.state_dir).resolve() / "state")
    return DiskStore(state_dir_for(find_stack_file(args.file), None) / "state")
