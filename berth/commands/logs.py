"""`berth logs [APP...]`: the output of apps' containers, as state records them, with the
stack's secret values hidden as readiness failures hide them (SecretValues.redact).

Several replicas or apps are merged in time order (by the engine's own timestamps) and
each line is marked `[APP/I@HOST]`; with --follow, lines print as they come. As in
`docker logs` and `kubectl logs`, -f is --follow here: the stack file is then given as
`--file`, or before the command (`berth -f FILE logs -f`).
"""

from __future__ import annotations

import argparse
import queue
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterator

from berth.commands import EXIT_OK, open_workspace

_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Docker's --timestamps prefix: RFC 3339 with nanoseconds, then one space.
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ")


def since_epoch(text: str, now: float | None = None) -> int:
    """--since: a duration ago ("10m", "1h30m", "45s", "2d") or an RFC 3339 time, as the
    Unix time Docker's logs API takes."""
    parts = _AGO.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return int((time.time() if now is None else now) - sum(float(n) * _SECONDS[u] for n, u in parts))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 10m, 2h or 1h30m, or a time like 2026-12-01T10:00:00Z, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as err:
        raise argparse.ArgumentTypeError(f"not a regular expression: {err}") from None


def register(commands: Any) -> None:
    logs = commands.add_parser("logs", help="print apps' container output (all apps when none is named)")
    logs.add_argument("--file", metavar="PATH", help="stack file, or a directory holding berth.toml (default: ./berth.toml)")
    logs.add_argument("--state-dir", metavar="DIR", help="where state is kept (default: .berth/ beside the stack file)")
    logs.add_argument("--no-color", action="store_true", help="plain output, no colour")
    logs.add_argument("apps", nargs="*", metavar="APP", help="the apps to show (default: every app in state)")
    logs.add_argument("--tail", type=int, metavar="N", help="only the last N lines of each replica (default: all)")
    logs.add_argument("-f", "-F", "--follow", action="store_true", help="keep printing new output until Ctrl-C")
    logs.add_argument("--since", type=since_epoch, metavar="WHEN",
                      help="only output since WHEN: a duration ago (10m, 2h) or an RFC 3339 time")
    logs.add_argument("--grep", type=_pattern, metavar="RE", help="only lines matching this regular expression")
    logs.add_argument("-t", "--timestamps", action="store_true", help="start each line with the engine's timestamp")
    logs.set_defaults(run=cmd_logs)


def cmd_logs(args: argparse.Namespace, ui: Any) -> int:
    from state.address import Address
    from state.errors import StateError

    workspace = open_workspace(args)
    try:
        state = workspace.store.read()
        containers = sorted(((Address.parse(k), r) for k, r in (state.resources.items() if state else ())
                             if r.type == "container"), key=lambda pair: pair[0].sort_key())
        known = list(dict.fromkeys(a.app for a, _ in containers))
        for app in args.apps:
            if app not in known:
                raise StateError(f"app {app} has no containers in state"
                                 + (f" (apps with state: {', '.join(sorted(known))})" if known else ""))
        if not containers:
            raise StateError("no app has containers in state: `berth apply` starts them")
        chosen = args.apps or known
        replicas = [(a, r) for a, r in containers if a.app in chosen]
        several = len(replicas) > 1
        streams = []
        for address, resource in replicas:
            provider = workspace.providers.get(resource.host)
            if provider is None:
                raise StateError(f"{address}: host {resource.host} is not in the stack file")
            prefix = f"[{address.app}/{address.index}@{address.host}] " if several else ""
            streams.append((prefix, provider.stream_logs(resource.id, args.tail, args.follow, since=args.since,
                                                         timestamps=True)))
        streams += _watcher_streams(state, workspace.providers, replicas, args)
        show = _shower(_redactor(workspace, ui), args.grep, args.timestamps)
        if args.follow and len(streams) > 1:
            _interleave(streams, show)
        elif len(streams) == 1:
            for prefix, chunks in streams:
                _write(prefix, chunks, show)
        else:
            _merged(streams, show)
        return EXIT_OK
    finally:
        workspace.close()


def _shower(redact: Any, grep: re.Pattern[str] | None, timestamps: bool) -> Any:
    """A line as printed, or None when --grep leaves it out. Matching is on the redacted
    text, so a pattern can never find a secret's value."""

    def show(prefix: str, line: str) -> str | None:
        stamp, text = split_stamp(line)
        text = redact(text)
        if grep is not None and not grep.search(text):
            return None
        return f"{prefix}{stamp + ' ' if timestamps and stamp else ''}{text}\n"

    return show


def split_stamp(line: str) -> tuple[str, str]:
    match = _STAMP.match(line)
    return (match[1], line[match.end():]) if match else ("", line)


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


def _watcher_streams(state: Any, providers: dict[str, Any], replicas: list, args: argparse.Namespace) -> list:
    """The liveness watcher's restarts of the shown replicas, one stream per host that has
    a watcher, each line marked `[watcher@HOST]`: after the replicas' output (the last
    --tail N of them), and with --follow, as they happen."""
    from planner.serving.watcher_log import lines_for_apps
    from providers.types import ProviderError

    hosts = {r.host for _, r in replicas}
    apps = {a.app for a, _ in replicas}
    streams = []
    for key, resource in sorted(state.resources.items()):
        provider = providers.get(resource.host)
        if resource.type != "watcher" or resource.host not in hosts or provider is None:
            continue
        try:
            past = list(lines_for_apps(provider.stream_logs(resource.id, None, False), apps))
        except ProviderError:
            continue  # no watcher there now: the next apply starts one
        if args.tail is not None:
            past = past[-args.tail:] if args.tail > 0 else []
        later = lines_for_apps(_quiet(provider.stream_logs(resource.id, 0, True)), apps) if args.follow else iter(())
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


def _lines(chunks: Any) -> Iterator[str]:
    pending = ""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split("\n")
        yield from whole
    if pending:
        yield pending


def _write(prefix: str, chunks: Any, show: Any) -> None:
    for line in _lines(chunks):
        if (text := show(prefix, line)) is not None:
            sys.stdout.write(text)
            sys.stdout.flush()


def _merged(streams: list[tuple[str, Any]], show: Any) -> None:
    """Several replicas' output so far, in time order by the engine's timestamps (a line
    without one keeps its place after the line before it; a stream with none, the
    watcher's, comes after them all)."""
    rows = []
    for order, (prefix, chunks) in enumerate(streams):
        last = ""
        for n, line in enumerate(_lines(chunks)):
            last = _sortable(split_stamp(line)[0]) or last
            rows.append((last or "\uffff", order, n, prefix, line))
    for *_, prefix, line in sorted(rows):
        if (text := show(prefix, line)) is not None:
            sys.stdout.write(text)
    sys.stdout.flush()


def _sortable(stamp: str) -> str:
    """RFC 3339 UTC stamps as Docker writes them sort as text once the fraction has a fixed
    width; an empty stamp sorts first."""
    if not stamp:
        return ""
    head, _, rest = stamp.partition(".")
    fraction = rest.rstrip("Z")
    return f"{head}.{fraction.ljust(9, '0')}Z" if rest else f"{head.rstrip('Z')}.000000000Z"


def _interleave(streams: list[tuple[str, Any]], show: Any) -> None:
    """Several replicas followed at once: one reader thread each, lines printed whole."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read(prefix: str, chunks: Any) -> None:
        try:
            for line in _lines(chunks):
                if (text := show(prefix, line)) is not None:
                    lines.put(text)
        except Exception as err:  # one replica's stream ending badly must not stop the others
            lines.put(f"{prefix}(log stream ended: {err})\n")
        finally:
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
