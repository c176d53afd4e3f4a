"""`apply --json`: the run as JSON lines on stdout, one event per line, for machines
(Terraform's `apply -json`): the plan first, then each step as it starts, makes
progress, finishes or fails, then the summary. Thread-safe, as ApplyView is."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from planner.events import Event

FORMAT_VERSION = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonEvents:
    def __init__(self, out: Any = None) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._probe: dict[Any, str] = {}  # per step, the probe outcome last written

    def line(self, event: str, **fields: Any) -> None:
        with self._lock:
            self._out.write(json.dumps({"format_version": FORMAT_VERSION, "event": event, "time": _now()} | fields) + "\n")
            self._out.flush()

    def __call__(self, event: Event) -> None:
        if event.step is None:
            return
        if event.kind == "waiting":  # a probe's answer: a line when it changes, not every poll
            with self._lock:
                if self._probe.get(event.step) == event.message:
                    return
                self._probe[event.step] = event.message
        fields: dict[str, Any] = {"step": str(event.step.kind), "address": str(event.step.address)}
        if event.kind in ("finished", "failed", "waiting") or event.elapsed:
            fields["elapsed"] = round(event.elapsed, 3)
        if event.message:
            fields["message"] = event.message
        if event.detail.strip():
            fields["detail"] = event.detail.rstrip().splitlines()
        self.line(event.kind, **fields)

    def summary(self, counts: dict[str, int], *, ok: bool, interrupted: bool) -> None:
        self.line("summary", ok=ok, interrupted=interrupted, elapsed=round(time.monotonic() - self._started, 3),
                  added=counts["added"], changed=counts["changed"], destroyed=counts["destroyed"])
