"""Reading the store's history: what changed between versions, and which desired
configuration was in effect at a serial (for `state history` and `rollback`).

Plain functions over the entries `StateStore.history()` returns (oldest first), so they
are tested as data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Version:
    serial: int
    time: float
    who: str
    note: str
    config: str | None  # digest of the desired configuration an apply recorded, if any
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


def _resources(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(entry.get("state") or "{}").get("resources", {})
    except ValueError:
        return {}


def versions(entries: list[dict[str, Any]]) -> list[Version]:
    """Each entry with what changed since the one before it, by address."""
    out, previous = [], {}
    for entry in entries:
        current = _resources(entry)
        out.append(Version(
            serial=entry["serial"], time=entry.get("time", 0.0), who=entry.get("who", "?"),
            note=entry.get("note", ""), config=entry.get("config"),
            added=tuple(sorted(set(current) - set(previous))),
            removed=tuple(sorted(set(previous) - set(current))),
            changed=tuple(sorted(k for k in set(current) & set(previous) if current[k] != previous[k])),
        ))
        previous = current
    return out


@dataclass(frozen=True)
class Run:
    """One apply (refresh, rollback, state command) as it reads in history: its versions,
    a serial per finished step, taken together. Numbered from 1 in the order they ran;
    history is append-only, so a run's number never changes."""

    number: int
    first: int  # serials
    last: int
    started: float
    ended: float
    who: str
    note: str
    config: str | None  # the configuration it applied, if it recorded one
    added: tuple[str, ...]  # over the whole run: before its first version, after its last
    removed: tuple[str, ...]
    changed: tuple[str, ...]


def runs(entries: list[dict[str, Any]]) -> list[Run]:
    """The history's versions grouped by the run that wrote them. A version with no run
    (written by a berth before runs were recorded, or by one state command) is a run of
    its own."""
    groups: list[list[dict[str, Any]]] = []
    for entry in entries:
        run = entry.get("run")
        if groups and run and groups[-1][-1].get("run") == run:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    out, before = [], {}
    for number, group in enumerate(groups, start=1):
        after = _resources(group[-1])
        config = next((e["config"] for e in reversed(group) if e.get("config")), None)
        out.append(Run(
            number=number, first=group[0]["serial"], last=group[-1]["serial"],
            started=group[0].get("time", 0.0), ended=group[-1].get("time", 0.0),
            who=group[-1].get("who", "?"), note=group[-1].get("note", ""), config=config,
            added=tuple(sorted(set(after) - set(before))), removed=tuple(sorted(set(before) - set(after))),
            changed=tuple(sorted(k for k in set(after) & set(before) if after[k] != before[k])),
        ))
        before = after
    return out


def run_numbered(entries: list[dict[str, Any]], number: int) -> Run | None:
    return next((r for r in runs(entries) if r.number == number), None)


def latest_config_digest(entries: list[dict[str, Any]]) -> str | None:
    for entry in reversed(entries):
        if entry.get("config"):
            return entry["config"]
    return None


def config_at(entries: list[dict[str, Any]], serial: int) -> tuple[int, str] | None:
    """(serial, digest) of the configuration in effect at `serial`: the last one an apply
    recorded at or before it. None when no apply had recorded one by then."""
    found = None
    for entry in entries:
        if entry["serial"] > serial:
            break
        if entry.get("config"):
            found = (entry["serial"], entry["config"])
    return found


def previous_config(entries: list[dict[str, Any]]) -> tuple[int, str] | None:
    """(serial, digest) of the configuration applied before the current one: the latest
    version recording a configuration other than the latest. None when there is none."""
    current = latest_config_digest(entries)
    for entry in reversed(entries):
        if entry.get("config") and entry["config"] != current:
            return entry["serial"], entry["config"]
    return None


def state_at(entries: list[dict[str, Any]], serial: int) -> dict[str, Any] | None:
    for entry in entries:
        if entry["serial"] == serial:
            return json.loads(entry["state"])
    return None
