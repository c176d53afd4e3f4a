"""`berth output`: where each app answers (its replicas, its gateway URLs), read from
state: no host is contacted, as Terraform's `output` reads only state."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_OK, common, open_workspace

FORMAT_VERSION = 1


def register(commands: Any) -> None:
    output = commands.add_parser("output", help="per app: the URLs it serves on (gateway, predict, each replica)")
    common(output)
    output.add_argument("--json", action="store_true", help="print them as one JSON object")
    output.set_defaults(run=cmd_output)


def cmd_output(args: argparse.Namespace, ui: Any) -> int:
    from planner.endpoints import endpoints

    workspace = open_workspace(args)
    try:
        found = endpoints(workspace.stack, workspace.store.read())
    finally:
        workspace.close()
    if args.json:
        print(json.dumps({"format_version": FORMAT_VERSION, "stack": workspace.stack.name,
                          "apps": [app.as_dict() for app in found]}, indent=2))
        return EXIT_OK
    from berth.ui.endpoints_view import render_endpoints

    render_endpoints(found, ui)
    return EXIT_OK
