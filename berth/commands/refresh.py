"""`berth refresh`: read the hosts, show the drift, write what is there into state."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_OK, common, locked, open_workspace


def register(commands: Any) -> None:
    refresh = commands.add_parser("refresh", help="read the hosts and write what is there into state (drift shown first)")
    common(refresh)
    refresh.set_defaults(run=cmd_refresh)


def cmd_refresh(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.state_view import render_findings
    from planner import pipeline

    workspace = open_workspace(args)
    try:
        with locked(workspace.store, "refresh", ui):
            state = workspace.store.read()
            if state is None:
                ui.say("No state yet: nothing to refresh.")
                return EXIT_OK
            findings, stored = pipeline.refresh(workspace.context, workspace.store, state)
            render_findings(findings, ui)
            if stored is not None:
                ui.say(f"State updated to what the hosts have: serial {stored.serial}.", "bold")
            return EXIT_OK
    finally:
        workspace.close()
