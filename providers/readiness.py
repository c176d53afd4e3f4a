"""Waiting for a container to become ready, over any Provider.

Polls the published port with backoff (50 ms growing to 1 s) so a fast server is
noticed within tens of milliseconds and a slow model load costs about one probe a
second. A container that exits or restarts while we wait fails at once, with its log.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from providers.base import Provider
from providers.types import Interrupted, ReadinessError

LOG_TAIL = 30
FIRST_DELAY = 0.05
MAX_DELAY = 1.0
STATE_CHECK_EVERY = 1.0  # seconds between container-state checks (an API call each)


def wait_ready(
    provider: Provider,
    container_id: str,
    port: int,
    path: str | None,
    timeout: float,
    cancel: threading.Event,
    on_wait: Callable[[float, str], None] = lambda elapsed, seen: None,
) -> float:
    """Return seconds until the probe passed; raise ReadinessError or Interrupted."""
    start = time.monotonic()
    deadline = start + timeout
    delay = FIRST_DELAY
    next_state_check = start + STATE_CHECK_EVERY
    what = f"GET {path}" if path else "TCP connect"
    seen = "no answer yet"
    while True:
        ok, seen = provider.probe(port, path, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        now = time.monotonic()
        if ok:
            return now - start
        if now >= next_state_check:
            _fail_if_stopped(provider, container_id, what)
            next_state_check = now + STATE_CHECK_EVERY
        if now >= deadline:
            raise ReadinessError(
                f"not ready after {timeout:g}s: {what} on port {port} never passed (last: {seen})",
                provider.logs(container_id, LOG_TAIL),
            )
        on_wait(now - start, seen)
        if cancel.wait(min(delay, max(0.0, deadline - now))):
            raise Interrupted("interrupted while waiting for readiness")
        delay = min(delay * 1.5, MAX_DELAY)


def _fail_if_stopped(provider: Provider, container_id: str, what: str) -> None:
    state = provider.container_state(container_id)
    status = state.get("Status")
    if status in ("exited", "dead", "removed") or state.get("Restarting") or state.get("RestartCount"):
        code = state.get("ExitCode")
        how = f"exited with code {code}" if status != "removed" else "was removed"
        if state.get("Restarting") or state.get("RestartCount"):
            how = f"crashed (exit code {code}) and is restarting"
        raise ReadinessError(
            f"container {how} before {what} passed", provider.logs(container_id, LOG_TAIL)
        )
