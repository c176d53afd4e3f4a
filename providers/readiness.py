"""Waiting for a container to become ready, over any Provider: the polling, and the
verdict on what a TCP probe saw.

Each probe's outcome is told in a model server's terms (probe_outcome): "connection
refused" (nothing listens yet), "answering 503" (llama.cpp and vLLM's /health while the
model loads; any other status likewise) and "answering 200"; on_wait hears it with the
elapsed time and the time left before readiness_timeout, and a failure names the last.

Polls the published port with backoff: from 20 ms up to 40 ms for the first 20 s, so
a server that starts in seconds is noticed within about 40 ms (bench/ measures it: median
29 ms from the server's first 200 to berth's "Ready" line; 74 ms at 50-100 ms polling),
then up to 1 s, so a model loading for minutes costs about one probe a second. A probe
is one local connect, or one channel of the host's SSH connection. A
container that exits or restarts while we wait fails at once, with its log.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Callable

from providers.base import Provider
from providers.types import Interrupted, ReadinessError

LOG_TAIL = 30
LOG_FETCH = 400  # lines read to find LOG_TAIL useful ones among the probe's own access logs
FIRST_DELAY = 0.02
FAST_MAX_DELAY = 0.04
FAST_PHASE = 20.0  # seconds of quick polling before backing off to MAX_DELAY
MAX_DELAY = 1.0
STATE_CHECK_EVERY = 1.0  # seconds between container-state checks (an API call each)
# Docker's userland port proxy accepts a connection on a published port even when nothing
# listens in the container, then closes it at once (under a millisecond, measured). So a
# TCP probe passes only when the connection stays open this long, or the server speaks.
TCP_HOLD = 0.25


def wait_ready(
    provider: Provider,
    container_id: str,
    port: int,
    path: str | None,
    timeout: float,
    cancel: threading.Event,
    on_wait: Callable[[float, str, float], None] = lambda elapsed, outcome, left: None,
) -> float:
    """Return seconds until the probe passed; raise ReadinessError or Interrupted.
    on_wait(elapsed, outcome, seconds left) after every probe that did not pass."""
    start = time.monotonic()
    deadline = start + timeout
    delay = FIRST_DELAY
    next_state_check = start + STATE_CHECK_EVERY
    what = f"GET {path}" if path else "TCP connect"
    seen = "no answer yet"
    while True:
        ok, raw = provider.probe(port, path, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        seen = probe_outcome(ok, raw)
        now = time.monotonic()
        if ok:
            return now - start
        if now >= next_state_check:
            _fail_if_stopped(provider, container_id, what, path, seen)
            next_state_check = now + STATE_CHECK_EVERY
        if now >= deadline:
            raise ReadinessError(
                f"not ready after {timeout:g}s: {what} on port {port} never passed (last: {seen})",
                useful_tail(provider.logs(container_id, LOG_FETCH), path),
            )
        on_wait(now - start, seen, max(0.0, deadline - now))
        if cancel.wait(min(delay, max(0.0, deadline - now))):
            raise Interrupted("interrupted while waiting for readiness")
        delay = min(delay * 1.5, FAST_MAX_DELAY if now - start < FAST_PHASE else MAX_DELAY)


def probe_outcome(ok: bool, seen: str) -> str:
    """A probe's result as a model server's loading reads: "answering 503" for any HTTP
    status (200 once it passes), "connection refused" for a port nothing listens on yet:
    a refusal, the SSH host's "Connect failed" for its tunnel, and what Docker's port
    proxy does when nothing listens in the container (it takes the connection and drops
    it: "connection reset by peer", or no HTTP answer at all); anything else (a timeout,
    a TCP probe's connection closed at once) as the probe said it."""
    match = re.match(r"HTTP (\d{3})\b", seen)
    if match:
        return f"answering {match.group(1)}"
    lowered = seen.lower()
    if not ok and any(words in lowered for words in NOTHING_LISTENS):
        return "connection refused"
    return seen


NOTHING_LISTENS = ("refused", "connect failed", "connection reset", "remote end closed connection", "no http answer")


def tcp_verdict(recv: Callable[[int], bytes]) -> tuple[bool, str]:
    """Judge a TCP probe's open connection, given its recv with TCP_HOLD as timeout."""
    try:
        data = recv(1)
    except TimeoutError:  # held open, silent: a server is there, waiting for a request
        return True, "TCP connect succeeded"
    except OSError as err:
        return False, f"TCP connect: {err.strerror or err}"
    if data:
        return True, "TCP connect succeeded"
    return False, "TCP connect: closed at once (nothing listens in the container)"


def useful_tail(log: str, path: str | None, keep: int = LOG_TAIL) -> str:
    """The last `keep` lines worth reading: the probe's own access-log lines (a request
    for the readiness path) are dropped, and a run of lines that differ only in numbers
    (ports, timestamps: one per probe) is folded into its last line with a count.
    Otherwise a server that never became ready shows only berth's probes."""
    lines = [line for line in log.splitlines() if not _is_probe_request(line, path)]
    folded: list[str] = []
    run_shape, run_length = None, 0
    for line in lines:
        shape = re.sub(r"\d+", "0", line)
        if shape == run_shape:
            run_length += 1
            folded[-1] = f"{line}   (and {run_length - 1} more like it)"
        else:
            run_shape, run_length = shape, 1
            folded.append(line)
    return "\n".join(folded[-keep:])


def _is_probe_request(line: str, path: str | None) -> bool:
    if not path or path == "/":
        return False
    return any(form in line for form in (f"GET {path} ", f"GET {path}?", f"url:{path}", f'"{path}"'))


def _fail_if_stopped(provider: Provider, container_id: str, what: str, path: str | None, seen: str) -> None:
    state = provider.container_state(container_id)
    status = state.get("Status")
    if status in ("exited", "dead", "removed") or state.get("Restarting") or state.get("RestartCount"):
        code = state.get("ExitCode")
        how = f"exited with code {code}" if status != "removed" else "was removed"
        if state.get("Restarting") or state.get("RestartCount"):
            how = f"crashed (exit code {code}) and is restarting"
        raise ReadinessError(
            f"container {how} before {what} passed (last probe: {seen})", useful_tail(provider.logs(container_id, LOG_FETCH), path)
        )
