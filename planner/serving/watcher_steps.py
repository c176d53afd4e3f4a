"""Apply's steps for the liveness watcher: start one and confirm it runs, remove one.

Kept apart from planner.serving.steps, whose handlers call these, so the watcher's steps
and the walker change independently.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from planner.serving import watcher
from providers.base import Provider
from providers.types import ProviderError
from state.address import Address

START_TIMEOUT = 30.0  # seconds for the watcher to say it is watching (python3 starting, the socket answering)


def start(stack: str, address: Address, attrs: dict[str, Any], provider: Provider, stop: threading.Event,
          record: Callable[[str, str], None]) -> str:
    """Run the watcher, recorded as `created`, then `ready` once its first line says it
    is watching; `tainted` (replaced by the next apply) when it exits or stays silent."""
    container_id = provider.run_container(watcher.container_spec(stack, address, attrs))
    record(container_id, "created")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        log = provider.logs(container_id, 20)
        if '"event":"watching"' in log:
            break
        state = provider.container_state(container_id)
        if state.get("Status") not in ("running", "created") or time.monotonic() > deadline or stop.is_set():
            record(container_id, "tainted")
            why = f"it is {state.get('Status')}" if state.get("Status") != "running" else "it did not start watching"
            raise ProviderError(f"liveness watcher on {address.host}: {why} within {START_TIMEOUT:g}s"
                                + (f"\n{log.strip()}" if log.strip() else ""))
        time.sleep(0.2)
    record(container_id, "ready")
    targets = attrs["targets"]
    return f"id={container_id[:12]}, watching {len(targets)} app(s)" if targets else f"id={container_id[:12]}, no app has a liveness path"


def remove(provider: Provider, ids: list[str]) -> None:
    for container_id in ids:
        provider.remove_container(container_id)
