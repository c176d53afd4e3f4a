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
    locked,
    open_workspace,
    plan_options,
    plan_opts,
    say_environment,
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
        sub.add_argument("--json", action="store_true",
                         help="JSON lines on stdout: the plan, one event per step as it runs, the summary (needs --auto-approve)")
        sub.add_argument("--parallelism", type=int, default=10, metavar="N", help="steps run at once (default 10)")
        plan_options(sub, replace=name == "apply")
        if name == "destroy":
            sub.add_argument("--volumes", action="store_true",
                             help="remove the stack's named volumes too, with their data (kept otherwise)")
        sub.set_defaults(run=cmd_apply, destroy=name == "destroy", plan_file=None)


def cmd_apply(args: argparse.Namespace, ui: Any) -> int:
    from planner import pipeline
    from state.model import State

    if args.json and not (args.auto_approve or args.plan_file):
        from state.errors import StateError

        raise StateError("--json cannot ask for 'yes': add --auto-approve, or apply a saved plan (berth apply FILE --json)")
    if args.plan_file:
        return _apply_saved(args, ui)
    opts = plan_opts(args, destroy=args.destroy)
    workspace = open_workspace(args)
    try:
        with locked(workspace.store, "destroy" if args.destroy else "apply", ui):
            state = workspace.store.read() or State(stack=workspace.stack.name)
            from berth import noop

            noop.before(getattr(args, "noop", None), workspace)
            plan = pipeline.plan(workspace.context, state, opts)
            if plan.has_changes:
                noop.WATCH.active = False  # only a no-op is recorded: the steps' files are not watched
            note = ("destroy" if args.destroy else "apply") + (" (targeted)" if args.target else "")
            code = run_plan(workspace, plan, state, args, ui, config=pipeline.config_to_record(workspace.stack, opts),
                            note=note, confirm=not args.auto_approve)
    finally:
        workspace.close()
    if not plan.has_changes and code == EXIT_OK and not args.destroy:
        noop.record(getattr(args, "noop", None), workspace, plan)  # the lock released: as the next run sees it
    return code


def run_plan(workspace: Any, plan: Any, state: Any, args: argparse.Namespace, ui: Any, *,
             config: dict[str, Any] | None, note: str, confirm: bool) -> int:
    """Show the plan, ask (unless told not to), apply it; the caller holds the lock."""
    from berth.ui.apply_view import ApplyView
    from berth.ui.plan_view import render_plan
    from planner import pipeline

    if getattr(args, "json", False):
        return _run_json(workspace, plan, state, args, config=config, note=note)
    say_environment(workspace.stack, ui)
    render_plan(plan, ui)
    if not plan.has_changes:
        pipeline.apply(workspace.context, plan, workspace.store, state, config=config, note=note)
        return EXIT_OK
    if confirm and not _confirm(ui, args.destroy):
        ui.say("Apply cancelled.", "yellow")
        return EXIT_ERROR
    ui.say()
    stop = threading.Event()
    with ApplyView(ui) as view, _graceful_interrupt(stop, ui):
        result = pipeline.apply(workspace.context, plan, workspace.store, state, parallelism=max(1, args.parallelism),
                                stop=stop, emit=view, config=config, note=note)
    view.render_summary(result.counts(), result.interrupted, destroy=args.destroy)
    from berth.ui.plan_view import kept

    for line in kept(plan):
        ui.say(line, "yellow")
    if result.ok and not args.destroy:
        _endpoints(workspace, plan, ui)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_ERROR


def _run_json(workspace: Any, plan: Any, state: Any, args: argparse.Namespace, *,
              config: dict[str, Any] | None, note: str) -> int:
    """apply --json: no questions, no colour, one JSON object per line."""
    from berth.ui.json_events import JsonEvents
    from berth.ui.plan_view import plan_document
    from planner import pipeline

    events = JsonEvents()
    events.line("plan", plan=plan_document(plan))
    stop = threading.Event()
    with _graceful_interrupt(stop, None):
        result = pipeline.apply(workspace.context, plan, workspace.store, state, parallelism=max(1, args.parallelism),
                                stop=stop, emit=events, config=config, note=note)
    events.summary(result.counts(), ok=result.ok, interrupted=result.interrupted)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_ERROR


def _endpoints(workspace: Any, plan: Any, ui: Any) -> None:
    """Where the apps this apply created or changed now answer (`berth output` lists all)."""
    from berth.ui.endpoints_view import render_endpoints
    from planner.endpoints import endpoints

    touched = {c.address.app for c in plan.actions if c.address.app}
    if touched:
        render_endpoints(endpoints(workspace.stack, workspace.store.read()), ui, only=touched, title="Serving on:")


def _apply_saved(args: argparse.Namespace, ui: Any) -> int:
    """`berth apply FILE`: the saved plan, exactly, if the state is still the one it was
    made from; the stack comes from the plan's recorded configuration."""
    from pathlib import Path

    from berth.stackfile.load import find_stack_file
    from berth.workspace import Workspace, state_dir_for
    from planner import pipeline
    from planner.recorded import stack_from_record
    from planner.savedplan import SavedPlan, SavedPlanError
    from state.model import State

    if args.target or args.replace or not args.refresh:
        raise SavedPlanError("a saved plan is applied as it was made: --target, --replace and --refresh "
                             "belong to `berth plan --out`")
    saved = SavedPlan.load(args.plan_file)
    stack = stack_from_record(saved.config)
    anchor = find_stack_file(args.file) if args.file else Path(stack.file)
    workspace = Workspace(stack, state_dir_for(anchor, args.state_dir))
    try:
        with locked(workspace.store, "apply", ui):
            state = workspace.store.read()
            pipeline.check_saved(workspace.context, saved, state, workspace.store.path)
            plan = saved.plan
            if plan.destroy:
                args.destroy = True
            note = f"apply {Path(args.plan_file).name}" + (" (targeted)" if saved.targets else "")
            return run_plan(workspace, plan, state or State(stack=stack.name), args, ui,
                            config=saved.recorded, note=note, confirm=False)
    finally:
        workspace.close()


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
            if self.ui is not None:  # apply --json: the summary line says it was interrupted
                self.ui.say("\nInterrupt received: starting no new steps, waiting for running ones to finish.", "bold yellow", err=True)

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
