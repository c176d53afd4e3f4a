"""`berth logs APP`: the output of an app's containers, as state records them, with the
stack's secret values hidden as readiness failures hide them (SecretValues.redact)."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from typing import Any

from berth.commands import EXIT_OK, common, open_workspace


def register(commands: Any) -> None:
    logs = commands.add_parser("logs", help="print an app's container output")
    common(logs)
    logs.add_argument("app", metavar="APP")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines of each replica (default: all)")
    logs.add_argument("-F", "--follow", action="store_true", help="keep printing new output until Ctrl-C")
    logs.set_defaults(run=cmd_logs)


def cmd_logs(args: argparse.Namespace, ui: Any) -> int:
    from state.address import Address
    from state.errors import StateError

    workspace = open_workspace(args)
    try:
        state = workspace.store.read()
        replicas = sorted((
            (Address.parse(k), r) for k, r in (state.resources.items() if state else ())
            if r.type == "container" and Address.parse(k).app == args.app
        ), key=lambda pair: pair[0].sort_key()) if state else []
        if not replicas:
            known = sorted({Address.parse(k).app for k in state.resources}) if state else []
            raise StateError(f"app {args.app} has no containers in state"
                             + (f" (apps with state: {', '.join(known)})" if known else ""))
        streams = []
        for address, resource in replicas:
            provider = workspace.providers.get(resource.host)
            if provider is None:
                raise StateError(f"{address}: host {resource.host} is not in the stack file")
            prefix = f"[{address.index}@{address.host}] " if len(replicas) > 1 else ""
            streams.append((prefix, provider.stream_logs(resource.id, args.tail, args.follow)))
        streams += _watcher_streams(state, workspace.providers, {r.host for _, r in replicas}, args)
        redact = _redactor(workspace, ui)
        if len(streams) == 1 or not args.follow:
            for prefix, chunks in streams:
                _write(prefix, chunks, redact)
        else:
            _interleave(streams, redact)
        return EXIT_OK
    finally:
        workspace.close()


def _redactor(workspace: Any, ui: Any) -> Any:
    """The redaction apply gives a readiness failure's log lines, over every secret of the
    stack: each value is read now, and one that cannot be read is said to be shown."""
    from planner.resources import secret_names
    from planner.secrets import SecretUnavailable

    secrets = workspace.context.secrets
    stack = workspace.stack
    names = {*stack.secrets, *(n for app in stack.apps.values() for n in secret_names(app))}
    for name in sorted(names):
        try:
            secrets.value(name)
        except SecretUnavailable as err:
            ui.say(f"Warning: {err}; its value is not hidden from this output", "yellow", err=True)
    return secrets.redact


def _watcher_streams(state: Any, providers: dict[str, Any], hosts: set[str], args: argparse.Namespace) -> list:
    """The liveness watcher's restarts of the app's replicas, one stream per host that
    has a watcher, each line marked `[watcher@HOST]`: printed after the replicas' output
    (the last --tail N of them), and with --follow, as they happen."""
    from planner.serving.watcher_log import lines_for_app
    from providers.types import ProviderError

    streams = []
    for key, resource in sorted(state.resources.items()):
        provider = providers.get(resource.host)
        if resource.type != "watcher" or resource.host not in hosts or provider is None:
            continue
        try:
            past = list(lines_for_app(provider.stream_logs(resource.id, None, False), args.app))
        except ProviderError:
            continue  # no watcher there now: the next apply starts one
        if args.tail is not None:
            past = past[-args.tail:] if args.tail > 0 else []
        later = lines_for_app(_quiet(provider.stream_logs(resource.id, 0, True)), args.app) if args.follow else iter(())
        streams.append((f"[{key}] ", _chain(past, later)))
    return streams


def _chain(first: list[str], then: Any) -> Any:
    yield from first
    yield from then


def _quiet(chunks: Any) -> Any:
    """A watcher's stream that ends (it was replaced) ends quietly: the app's output goes on."""
    from providers.types import ProviderError

    try:
        yield from chunks
    except ProviderError:
        return


def _write(prefix: str, chunks: Any, redact: Any) -> None:
    pending = ""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            sys.stdout.write(f"{prefix}{redact(line)}\n")
        sys.stdout.flush()
    if pending:
        sys.stdout.write(f"{prefix}{redact(pending)}\n")


def _interleave(streams: list[tuple[str, Any]], redact: Any) -> None:
    """Several replicas followed at once: one reader thread each, lines printed whole."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read(prefix: str, chunks: Any) -> None:
        pending = ""
        try:
            for chunk in chunks:
                pending += chunk
                *whole, pending = pending.split("\n")
                for line in whole:
                    lines.put(f"{prefix}{redact(line)}\n")
        except Exception as err:  # one replica's stream ending badly must not stop the others
            lines.put(f"{prefix}(log stream ended: {err})\n")
        finally:
            if pending:
                lines.put(f"{prefix}{redact(pending)}\n")
            lines.put(None)

    for prefix, chunks in streams:
        threading.Thread(target=read, args=(prefix, chunks), daemon=True).start()
    open_streams = len(streams)
    while open_streams:
        line = lines.get()
        if line is None:
            open_streams -= 1
            continue
        sys.stdout.write(line)
        sys.stdout.flush()
