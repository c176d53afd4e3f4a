"""Readiness knows model loading: each probe is told as "connection refused", "answering
503" (llama.cpp and vLLM's /health while the model loads) or "answering 200", with the
time elapsed and the time left; a failure names the last outcome."""

from __future__ import annotations

import threading

import pytest

from providers.readiness import probe_outcome, wait_ready
from providers.types import ReadinessError


class Loading:
    """A provider whose server refuses connections, then answers 503, then 200."""

    def __init__(self, answers: list[tuple[bool, str]]) -> None:
        self.answers = answers

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def container_state(self, container_id: str) -> dict:
        return {"Status": "running", "Running": True, "RestartCount": 0}

    def logs(self, container_id: str, tail: int) -> str:
        return "srv  load_model: loading model '/models/tiny.gguf'"


@pytest.mark.parametrize("ok,seen,told", [
    (False, "connection refused", "connection refused"),  # the local probe's OSError
    (False, "TCP connect: Connection refused", "connection refused"),
    (False, "TCP connect (from gpu-a): Connect failed", "connection refused"),  # an SSH host's tunnel
    # Docker's port proxy with nothing listening in the container (vLLM while it loads)
    (False, "connection reset by peer", "connection refused"),
    (False, "remote end closed connection without response", "connection refused"),
    (False, "no HTTP answer", "connection refused"),  # the same through an SSH host's tunnel
    (False, "HTTP 503", "answering 503"),
    (False, "HTTP 404", "answering 404"),
    (True, "HTTP 200", "answering 200"),
    (False, "timed out", "timed out"),
])
def test_a_probe_is_told_in_a_model_servers_terms(ok: bool, seen: str, told: str) -> None:
    assert probe_outcome(ok, seen) == told


def test_the_wait_hears_each_outcome_with_the_time_left() -> None:
    heard: list[tuple[float, str, float]] = []
    provider = Loading([(False, "connection refused")] * 2 + [(False, "HTTP 503")] * 3 + [(True, "HTTP 200")])
    wait_ready(provider, "c1", 8080, "/health", 30.0, threading.Event(),  # type: ignore[arg-type]
               on_wait=lambda elapsed, outcome, left: heard.append((elapsed, outcome, left)))
    assert [outcome for _, outcome, _ in heard] == ["connection refused"] * 2 + ["answering 503"] * 3
    assert all(29.0 < left <= 30.0 and abs(elapsed + left - 30.0) < 0.05 for elapsed, _, left in heard), heard


def test_a_timeout_names_the_last_outcome() -> None:
    provider = Loading([(False, "connection refused"), (False, "HTTP 503")])
    with pytest.raises(ReadinessError) as caught:
        wait_ready(provider, "c1", 8080, "/health", 0.3, threading.Event())  # type: ignore[arg-type]
    assert "never passed (last: answering 503)" in str(caught.value)
    assert "loading model" in caught.value.log_tail


def test_a_container_that_died_names_the_last_outcome_too() -> None:
    class Died(Loading):
        def container_state(self, container_id: str) -> dict:
            return {"Status": "exited", "ExitCode": 1, "RestartCount": 0}

    import providers.readiness as readiness

    provider = Died([(False, "connection refused")])
    old = readiness.STATE_CHECK_EVERY
    readiness.STATE_CHECK_EVERY = 0.0
    try:
        with pytest.raises(ReadinessError) as caught:
            wait_ready(provider, "c1", 8080, "/health", 5.0, threading.Event())  # type: ignore[arg-type]
    finally:
        readiness.STATE_CHECK_EVERY = old
    assert "exited with code 1 before GET /health passed (last probe: connection refused)" in str(caught.value)
