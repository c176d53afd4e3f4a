"""`berth refresh`: read the hosts, show the drift, write what is there into state."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_OK, common, open_session


def register(commands: Any) -> None:
    refresh = commands.add_parser("refresh", help="read the hosts and write what is there into state (drift shown first)")
    common(refresh)
    refresh.set_defaults(run=cmd_refresh)


def cmd_refresh(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.state_view import render_findings
    from planner.drift import drift
    from state import lock

    session = open_session(args)
    try:
        with lock.acquire(session.store, "refresh") as held:
            if held.taken_over:
                ui.say(f"Warning: took over a stale lock: its holder is gone ({lock.describe(held.taken_over)})", "yellow", err=True)
            state = session.store.read()
            if state is None:
                ui.say("No state yet: nothing to refresh.")
                return EXIT_OK
            refreshed, findings = drift(state, session.observe(state))
            render_findings(findings, ui)
            if refreshed.resources != state.resources:
                stored = session.store.write(refreshed, note="refresh")
                ui.say(f"State updated to what the hosts have: serial {stored.serial}.", "bold")
            return EXIT_OK
    finally:
        session.close()
