"""`berth plan`: what apply would change."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_CHANGES, EXIT_OK, common, open_session


def register(commands: Any) -> None:
    plan = commands.add_parser("plan", help="show what apply would change")
    common(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (schema in the README)")
    plan.add_argument("--detailed-exitcode", action="store_true", help="exit 0: no changes, 2: changes, 1: error")
    plan.add_argument("--destroy", action="store_true", help="plan the destruction of everything in the stack")
    plan.set_defaults(run=cmd_plan)


def cmd_plan(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.plan_view import plan_document, render_plan

    session = open_session(args)
    try:
        plan = session.plan(session.store.read(), destroy=args.destroy)
    finally:
        session.close()
    if args.json:
        print(json.dumps(plan_document(plan), indent=2))
    else:
        render_plan(plan, ui)
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK
