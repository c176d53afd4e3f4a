"""The other stacks of a host's shared gateway: what this stack's plan must not clash with.

A gateway serves every stack that asks for its port on a host (planner.serving.gateway).
Such stacks must agree on what is the gateway's (its TLS mode, its admin port) and must
not claim what is one stack's (an app's path /APP/, a domain). Pure: the plan asks the
gateway for its stacks' summaries (compose_script.summary) and passes them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planner.desired import Stack
from planner.diagnostics import Diagnostic


def clashes(stack: Stack, host: str, peers: dict[str, dict[str, Any]]) -> list[Diagnostic]:
    """Problems of stack's gateway on host beside the other stacks' (by name: summary)."""
    file = Path(stack.file).name
    port = stack.gateway_port
    mine = {name: app for name, app in stack.apps.items() if app.host == host}
    problems = []
    for other, summary in sorted(peers.items()):
        if other == stack.name:
            continue
        where = f"the gateway on {host} port {port}, which this stack shares with stack {other}"
        if (summary.get("tls_mode") or None) != stack.gateway_tls:
            problems.append(Diagnostic(
                f"{where}, serves {_tls(summary.get('tls_mode'))} for {other}, and this stack asks for "
                f"{_tls(stack.gateway_tls)}", file=file, key="gateway.tls",
                detail="stacks sharing a gateway use one TLS mode: set the same tls, or another gateway port"))
        if summary.get("admin_port") not in (None, stack.gateway_admin_port):
            problems.append(Diagnostic(
                f"{where}, has its admin API on port {summary['admin_port']}, and this stack asks for "
                f"{stack.gateway_admin_port}", file=file, key="gateway.admin_port",
                detail="stacks sharing a gateway use one admin port: set the same, or leave it out in both"))
        for name in sorted(set(mine) & set(summary.get("apps") or ())):
            problems.append(Diagnostic(
                f"/{name}/ on {where}, is already stack {other}'s app {name}", file=file, key=f"apps.{name}",
                detail="app names are paths on a shared gateway: rename the app, or use another gateway port"))
        theirs = set(summary.get("domains") or ())
        for name, app in mine.items():
            for domain in sorted(set(app.domains) & theirs):
                problems.append(Diagnostic(
                    f"domain {domain} on {where}, is already routed to stack {other}", file=file,
                    key=f"apps.{name}.domains", detail="a domain routes to one app: remove it from one stack"))
    return problems


def _tls(mode: str | None) -> str:
    return "plain HTTP" if not mode else f'tls = "{mode}"' if mode != "secrets" else "tls = { cert, key }"
