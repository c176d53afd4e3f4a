"""`berth apply` and `berth destroy`: converge the hosts, under the state lock."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any, Callable

from berth.commands import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, common, open_session


def register(commands: Any) -> None:
    for name, helptext in (("apply", "make the hosts match the stack file"), ("destroy", "remove everything the stack made")):
        sub = commands.add_parser(name, help=helptext)
        common(sub)
        sub.add_argument("--auto-approve", action="store_true", help="do not ask for 'yes'")
        sub.add_argument("--parallelism", type=int, default=10, metavar="N", help="steps run at once (default 10)")
        sub.set_defaults(run=cmd_apply, destroy=name == "destroy")


def cmd_apply(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.plan_view import render_plan
    from planner.apply import Recorder, refresh_state
    from state import lock
    from state.model import State

    session = open_session(args)
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
            from berth.ui.apply_view import ApplyView

            ui.say()
            stop = threading.Event()
            with ApplyView(ui) as view, _graceful_interrupt(stop, ui):
                result = session.apply(plan, state, parallelism=max(1, args.parallelism), stop=stop, emit=view)
            view.render_summary(result.counts(), result.interrupted, destroy=args.destroy)
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
