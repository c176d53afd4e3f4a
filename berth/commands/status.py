"""`berth status`: per app and replica, what its host and its probes say right now."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_ERROR, EXIT_OK, common, open_workspace


FORMAT_VERSION = 1  # an object since issue 20; before, a bare array of rows


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="per app: host, container state, readiness and liveness now, image, since")
    common(status)
    status.add_argument("--json", action="store_true", help="as one JSON object (each replica under \"replicas\")")
    status.add_argument("--parallelism", type=int, default=16, metavar="N", help="containers checked at once (default 16)")
    status.set_defaults(run=cmd_status)


def cmd_status(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.state_view import render_status
    from planner.endpoints import host_address
    from planner.health import check

    workspace = open_workspace(args)
    try:
        rows = check(workspace.store.read(), workspace.providers, list(workspace.stack.apps),
                     parallelism=max(1, args.parallelism),
                     address_of=lambda host: host_address(workspace.stack, host))
    finally:
        workspace.close()
    if args.json:
        print(json.dumps({"format_version": FORMAT_VERSION, "stack": workspace.stack.name,
                          "environment": workspace.stack.environment,
                          "healthy": all(row.healthy for row in rows),
                          "replicas": [row.as_dict() for row in rows]}, indent=2))
    else:
        env = f", environment {workspace.stack.environment}" if workspace.stack.environment else ""
        ui.say(f"Stack {workspace.stack.name} (state in {workspace.store.path}{env})\n", "bold")
        render_status(rows, ui)
    return EXIT_OK if all(row.healthy for row in rows) else EXIT_ERROR
