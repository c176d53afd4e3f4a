"""The liveness watcher's log as data: its JSON lines (planner.serving.watcher_script.say),
read back for `berth status` (restarts per replica) and `berth logs` (why a replica
restarted)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

# What `berth logs APP` shows of the watcher: what it did to a replica, not each probe.
SHOWN = ("restart", "restart-failed")


def events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The watcher's events, in order; anything else in its output is skipped."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            yield event


def last_restarts(text: str) -> dict[str, dict[str, Any]]:
    """Per container ID, the watcher's latest restart of it: time, reason and `restarts`
    (how many times this watcher restarted it in all)."""
    found: dict[str, dict[str, Any]] = {}
    for event in events(text.splitlines()):
        if event["event"] == "restart" and event.get("id"):
            found[event["id"]] = event
    return found


def describe(event: dict[str, Any]) -> str:
    """One event as `berth logs` prints it."""
    verb = {"restart": "restarted", "restart-failed": "could not restart"}.get(event["event"], event["event"])
    who = event.get("address") or event.get("container", "?")
    name = f" ({event['container']})" if event.get("container") and event.get("address") else ""
    return f"{event.get('time', '')} liveness watcher {verb} {who}{name}: {event.get('reason', '')}"


def lines_for_app(chunks: Iterable[str], app: str) -> Iterator[str]:
    """The watcher's output as text chunks → described lines about `app`'s replicas."""
    return lines_for_apps(chunks, {app})


def lines_for_apps(chunks: Iterable[str], apps: set[str]) -> Iterator[str]:
    """The watcher's output as text chunks → described lines about these apps' replicas."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split("\n")
        for event in events(whole):
            if event["event"] in SHOWN and event.get("app") in apps:
                yield describe(event) + "\n"
    for event in events([pending]):
        if event["event"] in SHOWN and event.get("app") in apps:
            yield describe(event) + "\n"
