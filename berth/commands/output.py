"""`berth output`: where each app answers (its replicas, its gateway URLs), read from
state: no host is contacted, as Terraform's `output` reads only state."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from berth.commands import EXIT_OK, common, open_workspace

FORMAT_VERSION = 1


def register(commands: Any) -> None:
    output = commands.add_parser("output", help="per app: the URLs it serves on (gateway, predict, each replica)")
    common(output)
    output.add_argument("--json", action="store_true", help="print them as one JSON object")
    output.set_defaults(run=cmd_output)


def cmd_output(args: argparse.Namespace, ui: Any) -> int:
    from planner.endpoints import endpoints, gateway_cas

    workspace = open_workspace(args)
    try:
        state = workspace.store.read()
        found = endpoints(workspace.stack, state)
        cas = _write_cas(workspace.state_dir, workspace.stack.name, gateway_cas(state))
    finally:
        workspace.close()
    if args.json:
        print(json.dumps({"format_version": FORMAT_VERSION, "stack": workspace.stack.name,
                          "apps": [app.as_dict() for app in found], "gateway_ca": cas}, indent=2))
        return EXIT_OK
    from berth.ui.endpoints_view import render_endpoints

    render_endpoints(found, ui)
    for host, path in cas.items():
        ui.say(f"gateway CA ({host}): {path}  (curl --cacert {path} ...)")
    return EXIT_OK


def _write_cas(state_dir: Path, stack: str, cas: dict[str, str]) -> dict[str, str]:
    """Each gateway CA root (a public certificate, kept in state) as a file beside the
    state, for clients to trust: the paths, by host. Rewritten when it changed (a new
    gateway container makes a new CA)."""
    paths = {}
    for host, pem in sorted(cas.items()):
        path = state_dir / "gateway-ca" / f"{stack}-{host}.crt"
        if not path.is_file() or path.read_text() != pem:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pem)
        paths[host] = str(path)
    return paths
