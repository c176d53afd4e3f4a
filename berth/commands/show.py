"""`berth show [PLANFILE]`: a saved plan as `berth plan` showed it, or with no file the
stack's state, each resource in the plan's own block form (Terraform's `show`). Nothing
is contacted: the file, or the stored state, is all it reads."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_OK, common, open_store

FORMAT_VERSION = 1


def register(commands: Any) -> None:
    show = commands.add_parser("show", help="a saved plan, or the state, in the plan's own format")
    common(show)
    show.add_argument("plan_file", nargs="?", metavar="PLANFILE", help="a plan saved with `berth plan --out`")
    show.add_argument("--json", action="store_true", help="as JSON: the plan's schema, or the state's resources")
    show.set_defaults(run=cmd_show)


def cmd_show(args: argparse.Namespace, ui: Any) -> int:
    if args.plan_file:
        from berth.ui.plan_view import plan_document, render_plan
        from planner.savedplan import SavedPlan

        plan = SavedPlan.load(args.plan_file).plan
        if args.json:
            print(json.dumps(plan_document(plan), indent=2))
        else:
            render_plan(plan, ui)
        return EXIT_OK
    store = open_store(args)
    try:
        state = store.read()
    finally:
        store.close()
    from berth.ui.plan_view import value_text
    from planner.resources import masked

    resources = [state.resources[key] for key in state.sorted_addresses()] if state else []
    if args.json:
        print(json.dumps({
            "format_version": FORMAT_VERSION, "stack": store.stack, "serial": state.serial if state else 0,
            "lineage": state.lineage if state else None,
            "resources": [{"address": str(r.address), "type": r.type, "host": r.host, "id": r.id, "status": r.status,
                           "attributes": masked(r.attributes)} for r in resources],
        }, indent=2))
        return EXIT_OK
    if not resources:
        ui.say("The state is empty: nothing was applied yet." if state is None or not state.resources else "")
        return EXIT_OK
    ui.say(f"# state of stack {store.stack}, serial {state.serial} ({store.path})", "dim")
    for resource in resources:
        fields = {"id": resource.id, "host": resource.host, "status": resource.status} | resource.attributes
        width = max(len(k) for k in fields)
        ui.say(f"\n# {resource.address}:")
        ui.say(f'{resource.type} "{resource.address}" {{')
        for name, value in fields.items():
            if value in (None, [], {}, ""):
                continue
            ui.say(f"    {name:<{width}} = {value_text(value, name)}")
        ui.say("}")
    return EXIT_OK
