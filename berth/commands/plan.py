"""`berth plan`: what apply would change; with --out, saved for `berth apply FILE`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, common, open_workspace, plan_options, plan_opts, say_environment


def register(commands: Any) -> None:
    plan = commands.add_parser("plan", help="show what apply would change")
    common(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (schema in the README)")
    plan.add_argument("--detailed-exitcode", action="store_true", help="exit 0: no changes, 2: changes, 1: error")
    plan.add_argument("--destroy", action="store_true", help="plan the destruction of everything in the stack")
    plan.add_argument("--volumes", action="store_true", help="with --destroy: remove the named volumes too")
    plan.add_argument("--out", metavar="FILE", help="save the plan; `berth apply FILE` applies exactly it")
    plan.add_argument("-v", "--verbose", action="store_true",
                      help="also show what berth made of each platform app (cerebrium.toml, Truss) that is not changing")
    plan_options(plan)
    plan.set_defaults(run=cmd_plan)


def cmd_plan(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.plan_view import plan_document, render_plan
    from planner import pipeline

    if args.volumes and not args.destroy:
        ui.say("Error: --volumes goes with --destroy (only a destroy removes named volumes)", "bold red", err=True)
        return EXIT_ERROR
    opts = plan_opts(args, destroy=args.destroy)
    workspace = open_workspace(args)
    from berth import noop

    noop.before(getattr(args, "noop", None), workspace)
    try:
        plan = pipeline.plan(workspace.context, workspace.store.read(), opts)
    finally:
        workspace.close()
    if args.json:
        print(json.dumps(plan_document(plan), indent=2))
    else:
        say_environment(workspace.stack, ui)
        render_plan(plan, ui, verbose=args.verbose)
    if not plan.has_changes:
        noop.record(getattr(args, "noop", None), workspace, plan)
    if args.out:
        pipeline.save_plan(workspace.context, plan, opts, args.out)
        if not args.json:
            ui.say()
            ui.say(f"Saved the plan to: {args.out}")
            ui.say(f"To perform exactly these actions, run: berth apply {args.out}")
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK
