"""`berth hosts`: each host of the stack with its Docker version and GPUs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_ERROR, EXIT_OK, common, open_workspace


def register(commands: Any) -> None:
    hosts = commands.add_parser("hosts", help="list the stack's hosts: Docker version and GPUs")
    common(hosts)
    hosts.add_argument("--json", action="store_true", help="print the hosts as JSON")
    hosts.set_defaults(run=cmd_hosts)


def cmd_hosts(args: argparse.Namespace, ui: Any) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from berth.ui.hosts_view import render_hosts
    from providers.types import ProviderError

    workspace = open_workspace(args)
    from providers.base import LOCAL_HOST

    names = [LOCAL_HOST, *workspace.stack.hosts]

    def facts(name: str) -> dict[str, Any]:
        config = workspace.stack.hosts.get(name)
        row: dict[str, Any] = {"host": name, "address": f"{config.user}@{config.address}:{config.port}" if config else None}
        try:
            provider = workspace.provider(name)
            row["docker"] = provider.docker_version()
            row["architecture"] = provider.architecture()  # what images built for it must be
            row["builder"] = provider.builder().describe()  # what builds against its engine
            row["build_on"] = config.build_on if config else "local"
            row["gpus"] = [vars(gpu) for gpu in provider.gpus()]
        except ProviderError as err:
            row["error"] = str(err)
        return row

    try:
        try:  # opened here, in order: the SSH providers are built on the local one
            for name in names:
                workspace.provider(name)
        except ProviderError:
            pass
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            rows = list(pool.map(facts, names))
    finally:
        workspace.close()
    if args.json:
        print(json.dumps({"format_version": 1, "hosts": rows}, indent=2))
    else:
        render_hosts(rows, ui)
    return EXIT_ERROR if any("error" in row for row in rows) else EXIT_OK
