"""`berth apply` and `berth destroy`: converge the hosts, under the state lock."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any, Callable

from berth.commands import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    common,
    make_plan,
    open_session,
    plan_options,
    recorded_config_for,
)


def register(commands: Any) -> None:
    for name, helptext in (("apply", "make the hosts match the stack file (or apply a saved plan)"),
                           ("destroy", "remove everything the stack made")):
        sub = commands.add_parser(name, help=helptext)
        common(sub)
        if name == "apply":
            sub.add_argument("plan_file", nargs="?", metavar="FILE",
                             help="a plan saved with `berth plan --out FILE`: apply exactly it, without asking")
        sub.add_argument("--auto-approve", action="store_true", help="do not ask for 'yes'")
        sub.add_argument("--parallelism", type=int, default=10, metavar="N", help="steps run at once (default 10)")
        plan_options(sub, replace=name == "apply")
        sub.set_defaults(run=cmd_apply, destroy=name == "destroy", plan_file=None)


def cmd_apply(args: argparse.Namespace, ui: Any) -> int:
    from state import lock
    from state.model import State

    if args.plan_file:
        return _apply_saved(args, ui)
    session = open_session(args)
    try:
        with lock.acquire(session.store, "destroy" if args.destroy else "apply") as held:
            _warn_takeover(held, ui)
            state = session.store.read() or State(stack=session.stack.name)
            plan = make_plan(session, state, args, destroy=args.destroy)
            # A targeted run applies part of the configuration: it records none, so
            # `rollback` never mistakes it for the whole.
            config = None if args.target else recorded_config_for(session.stack, destroy=args.destroy)
            note = ("destroy" if args.destroy else "apply") + (" (targeted)" if args.target else "")
            return run_plan(session, plan, state, args, ui, config=config, note=note, confirm=not args.auto_approve)
    finally:
        session.close()


def run_plan(session: Any, plan: Any, state: Any, args: argparse.Namespace, ui: Any, *,
             config: dict[str, Any] | None, note: str, confirm: bool) -> int:
    """Show the plan, ask (unless told not to), walk it; the caller holds the lock."""
    from berth.ui.apply_view import ApplyView
    from berth.ui.plan_view import render_plan
    from planner.apply import Recorder, refresh_state

    render_plan(plan, ui)
    if not plan.has_changes:
        recorder = Recorder(session.store, state, note="refresh" if config is None else note, config=config)
        refresh_state(plan, recorder)
        recorder.record_config()
        return EXIT_OK
    if confirm and not _confirm(ui, args.destroy):
        ui.say("Apply cancelled.", "yellow")
        return EXIT_ERROR
    ui.say()
    stop = threading.Event()
    with ApplyView(ui) as view, _graceful_interrupt(stop, ui):
        result = session.apply(plan, state, parallelism=max(1, args.parallelism), stop=stop, emit=view,
                               config=config, note=note)
    view.render_summary(result.counts(), result.interrupted, destroy=args.destroy)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_ERROR


def _apply_saved(args: argparse.Namespace, ui: Any) -> int:
    """`berth apply FILE`: the saved plan, exactly, if the state is still the one it was
    made from; the stack comes from the plan's recorded configuration."""
    from pathlib import Path

    from berth.workspace import Session, state_dir_for
    from berth.stackfile.load import find_stack_file
    from planner.recorded import stack_from_record
    from planner.savedplan import SavedPlan, SavedPlanError
    from state import lock
    from state.model import State

    if args.target or args.replace or not args.refresh:
        raise SavedPlanError("a saved plan is applied as it was made: --target, --replace and --refresh "
                             "belong to `berth plan --out`")
    saved = SavedPlan.load(args.plan_file)
    stack = stack_from_record(saved.config)
    anchor = find_stack_file(args.file) if args.file else Path(stack.file)
    session = Session(stack, state_dir_for(anchor, args.state_dir))
    try:
        with lock.acquire(session.store, "apply") as held:
            _warn_takeover(held, ui)
            state = session.store.read()
            saved.check(state, session.store.path)
            _check_contexts(session, saved)
            plan = saved.plan
            if plan.destroy:
                args.destroy = True
            config = None if saved.targets else saved.config
            note = f"apply {Path(args.plan_file).name}" + (" (targeted)" if saved.targets else "")
            return run_plan(session, plan, state or State(stack=stack.name), args, ui,
                            config=config, note=note, confirm=False)
    finally:
        session.close()


def _check_contexts(session: Any, saved: Any) -> None:
    """A build the plan holds must still build what was planned: refuse if a context's
    files changed since (the image would carry the planned hash but other contents)."""
    from planner.plan import Action
    from planner.savedplan import SavedPlanError

    builds = [c for c in saved.plan.actions if c.type == "image" and c.action in (Action.CREATE, Action.CREATE_THEN_DELETE)
              and (c.after or {}).get("source") == "build"]
    if not builds:
        return
    hashes = session.content_hashes()
    for change in builds:
        app = change.address.app
        if hashes.get(app) != change.after.get("content_hash"):
            raise SavedPlanError(
                f"stale plan: the build context of app {app} ({change.after.get('context')}) changed since the "
                "plan was made. Make a new plan with `berth plan --out`.")


def _warn_takeover(held: Any, ui: Any) -> None:
    from state import lock

    if held.taken_over:
        ui.say(f"Warning: took over a stale lock: its holder is gone ({lock.describe(held.taken_over)})", "yellow", err=True)


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
