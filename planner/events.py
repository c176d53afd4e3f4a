"""Events an apply emits, for whoever watches: the terminal view, --json, tests.

The planner never prints; it calls an `emit` hook with these values. Hooks may be
called from worker threads and must be quick and thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from planner.graph import Step

EventKind = Literal["started", "progress", "waiting", "finished", "failed", "skipped", "not_started"]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    step: Step | None = None
    elapsed: float = 0.0
    message: str = ""
    detail: str = ""  # a failure's log tail and the like
    left: float | None = None  # waiting on a probe: seconds before its readiness_timeout runs out


Emit = Callable[[Event], None]
