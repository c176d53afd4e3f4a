"""The `berth` command line: parse arguments, run one command, map outcomes to exit codes.

Start-up stays fast: this module imports only the standard library at the top; each
command imports what it uses (docker, networkx and rich never load for --version).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Callable

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", metavar="PATH", help="stack file, or a directory holding berth.toml (default: ./berth.toml)")
    parser.add_argument("--state-dir", metavar="DIR", help="where state is kept (default: .berth/ beside the stack file)")
    parser.add_argument("--no-color", action="store_true", help="plain output, no colour")


def build_parser() -> argparse.ArgumentParser:
    from berth import __version__

    parser = argparse.ArgumentParser(
        prog="berth",
        description="Deploy model servers onto Docker hosts: plan shows what would change, apply makes it so.",
    )
    parser.add_argument("--version", action="version", version=f"berth {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    plan = commands.add_parser("plan", help="show what apply would change")
    _common(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (schema in the README)")
    plan.add_argument("--detailed-exitcode", action="store_true", help="exit 0: no changes, 2: changes, 1: error")
    plan.add_argument("--destroy", action="store_true", help="plan the destruction of everything in the stack")
    plan.set_defaults(run=cmd_plan)

    for name, helptext in (("apply", "make the hosts match the stack file"), ("destroy", "remove everything the stack made")):
        sub = commands.add_parser(name, help=helptext)
        _common(sub)
        sub.add_argument("--auto-approve", action="store_true", help="do not ask for 'yes'")
        sub.add_argument("--parallelism", type=int, default=10, metavar="N", help="steps run at once (default 10)")
        sub.set_defaults(run=cmd_apply, destroy=name == "destroy")

    state = commands.add_parser("state", help="read the stored state")
    state_commands = state.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)
    state_list = state_commands.add_parser("list", help="one address per line")
    _common(state_list)
    state_list.set_defaults(run=cmd_state_list)
    state_show = state_commands.add_parser("show", help="attributes of one resource")
    _common(state_show)
    state_show.add_argument("address")
    state_show.add_argument("--json", action="store_true")
    state_show.set_defaults(run=cmd_state_show)

    unlock = commands.add_parser("force-unlock", help="remove a state lock left by a berth that is not running")
    _common(unlock)
    unlock.add_argument("lock_id", nargs="?", help="the lock ID from the error message (default: whatever lock is held)")
    unlock.set_defaults(run=cmd_force_unlock)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from berth.ui.console import make_consoles

    ui = make_consoles(args.no_color)
    try:
        return args.run(args, ui)
    except KeyboardInterrupt:
        ui.say("Interrupted.", "yellow", err=True)
        return EXIT_INTERRUPTED
    except Exception as err:  # every expected failure is rendered below; this is the last guard
        return _render_error(err, ui)


def _render_error(err: Exception, ui: Any) -> int:
    from planner.diagnostics import DiagnosticsError
    from providers.types import ProviderError
    from state.address import AddressError
    from state.errors import StateError

    if isinstance(err, DiagnosticsError):
        for diagnostic in err.diagnostics:
            ui.say(f"Error: {diagnostic}", "bold red", err=True)
    elif isinstance(err, (StateError, ProviderError, AddressError)):
        ui.say(f"Error: {err}", "bold red", err=True)
    else:
        if os.environ.get("BERTH_DEBUG"):
            raise err
        ui.say(f"Error: internal error: {type(err).__name__}: {err} (set BERTH_DEBUG=1 for the traceback)", "bold red", err=True)
    return EXIT_ERROR


def _session(args: argparse.Namespace) -> Any:
    from berth.session import Session, state_dir_for
    from berth.spec.load import load_stack

    stack = load_stack(args.file)
    from pathlib import Path

    return Session(stack, state_dir_for(Path(stack.file), args.state_dir))


def _store(args: argparse.Namespace) -> Any:
    """The state store alone, for commands that never need the stack's hosts."""
    from berth.session import state_dir_for
    from berth.spec.load import find_stack_file
    from state.store import DiskStore

    if args.state_dir:
        from pathlib import Path

        return DiskStore(Path(args.state_dir).resolve() / "state")
    return DiskStore(state_dir_for(find_stack_file(args.file), None) / "state")


def cmd_plan(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.plan_view import plan_document, render_plan

    session = _session(args)
    try:
        plan = session.plan(session.store.read(), destroy=args.destroy)
    finally:
        session.close()
    if args.json:
        print(json.dumps(plan_document(plan), indent=2))
    else:
        render_plan(plan, ui)
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK


def cmd_apply(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.apply_view import ApplyView
    from berth.ui.plan_view import render_plan
    from planner.apply import Recorder, refresh_state
    from state import lock
    from state.model import State

    session = _session(args)
    try:
        with lock.acquire(session.store, "destroy" if args.destroy else "apply") as held:
            if held.taken_over:
                ui.say(f"Warning: took over a stale lock: its holder is gone ({lock.describe(held.taken_over)})", "yellow", err=True)
            state = session.store.read() or State(stack=session.stack.name)
            plan = session.plan(state, destroy=args.destroy)
            render_plan(plan, ui)
            if not plan.has_changes:
                refresh_state(plan, Recorder(session.store, state, note="refresh"))
                return EXIT_OK
            if not args.auto_approve and not _confirm(ui, args.destroy):
                ui.say("Apply cancelled.", "yellow")
                return EXIT_ERROR
            ui.say()
            stop = threading.Event()
            with ApplyView(ui) as view, _graceful_interrupt(stop, ui):
                result = session.apply(plan, state, parallelism=max(1, args.parallelism), stop=stop, emit=view)
            view.render_summary(result.counts(), result.interrupted)
            if result.interrupted:
                return EXIT_INTERRUPTED
            return EXIT_OK if result.ok else EXIT_ERROR
    finally:
        session.close()


def _confirm(ui: Any, destroy: bool) -> bool:
    ui.say()
    ui.say("Do you really want to destroy all resources of this stack?" if destroy else "Do you want to perform these actions?", "bold")
    ui.say("  Only 'yes' will be accepted to approve.")
    ui.out.print("\n  Enter a value: ", end="", markup=False)
    try:
        answer = input()
    except EOFError:
        answer = ""
    return answer.strip() == "yes"


class _graceful_interrupt:
    """The first Ctrl-C (or SIGTERM) stops new steps and lets running ones end; berth then
    saves state and exits 130. Running waits for readiness end at once."""

    def __init__(self, stop: threading.Event, ui: Any) -> None:
        self.stop, self.ui = stop, ui
        self.previous: dict[int, Callable[..., Any] | int | None] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.ui.say("\nInterrupt received: starting no new steps, waiting for running ones to finish.", "bold yellow", err=True)

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def cmd_state_list(args: argparse.Namespace, ui: Any) -> int:
    store = _store(args)
    try:
        state = store.read()
    finally:
        store.close()
    for address in state.sorted_addresses() if state else []:
        print(address)
    return EXIT_OK


def cmd_state_show(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.plan_view import value_text
    from state.address import Address

    key = str(Address.parse(args.address))
    store = _store(args)
    try:
        state = store.read()
    finally:
        store.close()
    resource = state.resources.get(key) if state else None
    if resource is None:
        ui.say(f"Error: no resource {key} in state", "bold red", err=True)
        return EXIT_ERROR
    if args.json:
        print(resource.model_dump_json(indent=2))
        return EXIT_OK
    fields = {"id": resource.id, "host": resource.host, "status": resource.status} | resource.attributes
    width = max(len(k) for k in fields)
    ui.say(f"# {key}:")
    ui.say(f'{resource.type} "{key}" {{')
    for name, value in fields.items():
        ui.say(f"    {name:<{width}} = {value_text(value)}")
    ui.say("}")
    return EXIT_OK


def cmd_force_unlock(args: argparse.Namespace, ui: Any) -> int:
    from state.lock import describe

    store = _store(args)
    try:
        holder = store.get_lock()
        if holder is None:
            ui.say("The state is not locked.")
            return EXIT_OK
        if args.lock_id and holder.get("id") != args.lock_id:
            ui.say(f"Error: the lock held is {holder.get('id')}, not {args.lock_id}: {describe(holder)}", "bold red", err=True)
            return EXIT_ERROR
        store.delete_lock(holder.get("id"))
        ui.say(f"Removed the lock held by {describe(holder)}.", "green")
        return EXIT_OK
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
