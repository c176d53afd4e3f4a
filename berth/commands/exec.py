"""`berth exec APP -- CMD...`: run a command in one of an app's containers, on whatever
host runs it, as `docker exec` would there (Kamal's `app exec`). On a terminal it is
interactive with a TTY (`berth exec web -- sh` is a shell); -it asks for that too.

The Docker CLI does the work, pointed at the host's engine (for an SSH host, through the
one connection berth holds), so signals, the terminal and the exit status behave exactly
as they do under `docker exec`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from typing import Any

from berth.commands import common, open_workspace

TTY = -1  # `-it`: argparse reads it as -i with the value "t"


def _index(text: str) -> int:
    if text in ("t", "ti"):
        return TTY
    try:
        index = int(text)
    except ValueError:
        index = -2
    if index < 0:
        raise argparse.ArgumentTypeError(f"expected a replica index (0, 1, ...), not {text!r}")
    return index


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--index", type=_index, default=0, metavar="N", help="the replica (default 0)")
    parser.add_argument("--host", metavar="HOST", help="the host, when the app runs on several")
    parser.add_argument("-t", "--tty", action="store_true", help="interactive, with a TTY (the default on a terminal)")
    parser.add_argument("--no-tty", action="store_true", help="never allocate a TTY, even on a terminal")


def register(commands: Any) -> None:
    run = commands.add_parser("exec", help="run a command in an app's container (a shell on a terminal)",
                              usage="berth exec [-f FILE] APP [-i N] [--host HOST] [-t | --no-tty] -- CMD...")
    common(run)
    _options(run)
    run.add_argument("app", metavar="APP")
    # Everything after APP: its options, then the command (argparse would take the
    # command's own flags as berth's), split by split_command.
    run.add_argument("rest", nargs=argparse.REMAINDER, metavar="-- CMD...")
    run.set_defaults(run=cmd_exec)


def split_command(rest: list[str], args: argparse.Namespace) -> list[str]:
    """berth's options that follow APP, read into args; the command is what is left: all
    after `--`, or (without one) from the first word that is not one of berth's options."""
    parser = argparse.ArgumentParser(prog="berth exec", add_help=False)
    common(parser)
    _options(parser)
    if "--" in rest:
        cut = rest.index("--")
        parser.parse_args(rest[:cut], namespace=args)
        return rest[cut + 1:]
    head = 0
    takes_value = {"-i", "--index", "--host", "-f", "--file", "--state-dir"}
    flags = {"-t", "--tty", "--no-tty", "--no-color"}
    while head < len(rest) and (rest[head] in flags or rest[head] in takes_value or rest[head] in ("-it", "-ti")):
        head += 2 if rest[head] in takes_value else 1
    parser.parse_args(rest[:head], namespace=args)
    return rest[head:]


def cmd_exec(args: argparse.Namespace, ui: Any) -> int:
    from state.errors import StateError

    command = split_command(args.rest, args)
    if not command:
        raise StateError("name the command to run after --: berth exec APP -- sh")
    tty = args.tty or args.index == TTY or (not args.no_tty and sys.stdin.isatty() and sys.stdout.isatty())
    index = 0 if args.index == TTY else args.index
    docker = shutil.which("docker")
    if docker is None:
        raise StateError("berth exec runs the Docker CLI against the host's engine, and there is no `docker` "
                         "on PATH (Debian: apt install docker.io, or Docker's docker-ce-cli)")
    workspace = open_workspace(args)
    try:
        address, resource = _replica(workspace.store.read(), args.app, index, args.host)
        provider = workspace.providers.get(resource.host)
        if provider is None:
            raise StateError(f"{address}: host {resource.host} is not in the stack file")
        interactive = ["-it"] if tty else ["-i"] if not sys.stdin.isatty() else []
        return subprocess.call([docker, "-H", provider.engine_url, "exec", *interactive, resource.id, *command])
    finally:
        workspace.close()


def _replica(state: Any, app: str, index: int, host: str | None) -> tuple[Any, Any]:
    from state.address import Address
    from state.errors import StateError

    found = [(Address.parse(k), r) for k, r in (state.resources.items() if state else ()) if r.type == "container"]
    mine = [(a, r) for a, r in found if a.app == app]
    if not mine:
        known = sorted({a.app for a, _ in found})
        raise StateError(f"app {app} has no containers in state" + (f" (apps with state: {', '.join(known)})" if known else ""))
    hosts = sorted({a.host for a, _ in mine})
    if host is not None and host not in hosts:
        raise StateError(f"app {app} runs on {', '.join(hosts)}, not on {host}")
    chosen = [(a, r) for a, r in mine if a.index == index and (host is None or a.host == host)]
    if not chosen:
        have = ", ".join(str(a.index) for a, _ in sorted(mine, key=lambda p: p[0].sort_key()))
        raise StateError(f"app {app} has no replica {index} (replicas: {have})")
    if len(chosen) > 1:
        raise StateError(f"app {app} has a replica {index} on each of {', '.join(hosts)}: say which with --host")
    return chosen[0]
