"""`berth hosts` as text: a line per host, then a line per GPU under it."""

from __future__ import annotations

from typing import Any

from berth.ui.console import Consoles


def render_hosts(rows: list[dict[str, Any]], ui: Consoles) -> None:
    width = max(len(row["host"]) for row in rows)
    for row in rows:
        where = row["address"] or "this machine"
        if "error" in row:
            # Reached (Docker answered) but nvidia-smi failed is not "unreachable".
            status = f"{_docker(row)}  GPUs unknown  {_builds(row)}" if row.get("docker") else "unreachable"
            ui.say(f"{row['host']:<{width}}  {where}  {status}", "bold red")
            ui.say(f"{'':<{width}}  {row['error']}", "red")
            continue
        gpus = row["gpus"]
        count = f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}" if gpus else "no GPUs"
        ui.say(f"{row['host']:<{width}}  {where}  {_docker(row)}  {count}  {_builds(row)}", "bold")
        for gpu in gpus:
            ui.say(f"{'':<{width}}    {gpu['index']}  {gpu['name']}  {gpu['memory_mib']} MiB  {gpu['uuid']}")


def _docker(row: dict[str, Any]) -> str:
    """The engine's version and, where it said, its architecture: "Docker 20.10.24 (amd64)"."""
    arch = row.get("architecture")
    return f"Docker {row['docker']}" + (f" ({arch})" if arch else "")


def _builds(row: dict[str, Any]) -> str:
    """Where and with what the host's images are built: its own engine, with the builder
    berth drives (local, or build_on = "host"), or berth's machine, then sent."""
    if row["host"] != "local" and row.get("build_on") != "host":
        return "builds: on local, image sent"
    return f"builds: {row['builder']}"
