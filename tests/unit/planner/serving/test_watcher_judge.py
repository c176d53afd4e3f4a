"""The watcher's decisions (planner.serving.watcher_script.judge) and its log read back
(planner.serving.watcher_log), as data: no Docker, no clock."""

from __future__ import annotations

from planner.serving.watcher_log import describe, last_restarts, lines_for_app
from planner.serving.watcher_script import Memory, judge, published_port, started_epoch

TARGET = {"liveness": "/health", "port": 8000, "threshold": 3, "interval": 1.0, "grace": 60.0}
RUN = "2024-05-01T12:00:00.5Z"
T0 = started_epoch(RUN)


def run(results: list[bool], *, at: float = 1.0, memory: Memory | None = None, started: str = RUN):
    """Feed probe results (at T0 + at, one second apart); returns the memory and events."""
    events = []
    for i, passed in enumerate(results):
        memory, verdict = judge(memory, started, started_epoch(started), T0 + at + i, passed,
                                "HTTP 200" if passed else "HTTP 500", TARGET)
        events.append(verdict.event)
    return memory, events


def test_a_first_pass_arms_the_replica() -> None:
    memory, events = run([True, True])
    assert memory == Memory(RUN, armed=True) and events == ["armed", None]


def test_threshold_failures_in_a_row_restart_it() -> None:
    memory, events = run([True, False, False, False])
    assert events == ["armed", "failing", "failing", "restart"]
    assert memory == Memory(RUN)  # the restart starts a new run: counts start over


def test_a_pass_resets_the_count() -> None:
    _, events = run([True, False, False, True, False, False, True])
    assert "restart" not in events


def test_the_restart_reason_says_what_failed() -> None:
    memory, _ = run([True, False, False])
    _, verdict = judge(memory, RUN, T0, T0 + 9, False, "HTTP 500", TARGET)
    assert (verdict.event, verdict.reason) == ("restart", "liveness /health failed 3 times in a row: HTTP 500")


def test_a_replica_that_never_passed_is_left_alone_during_its_grace() -> None:
    memory, events = run([False] * 50)  # 50 s of failures, grace 60 s: still loading
    assert events == [None] * 50 and not memory.armed and memory.failures == 0


def test_after_the_grace_a_replica_that_never_passed_is_watched() -> None:
    memory, events = run([False] * 3, at=60.0)
    assert events == ["armed", "failing", "restart"]


def test_a_new_run_starts_over() -> None:
    """Restarted by anyone (Docker's policy, berth): its StartedAt changes, so it is
    unarmed again and its failures are forgotten."""
    memory, _ = run([True, False, False])
    later = "2024-05-01T12:05:00Z"
    memory, events = run([False, False, False, False], memory=memory, started=later)
    assert events == [None] * 4 and memory == Memory(later)


def test_published_port_of_the_container_port() -> None:
    ports = [{"IP": "0.0.0.0", "PrivatePort": 8000, "PublicPort": 21001, "Type": "tcp"},
             {"IP": "::", "PrivatePort": 8000, "PublicPort": 21001, "Type": "tcp"},
             {"PrivatePort": 9000, "Type": "tcp"}]
    assert published_port(ports, 8000) == 21001
    assert published_port(ports, 9000) is None and published_port([], 8000) is None


def test_started_epoch_reads_dockers_nanoseconds() -> None:
    assert started_epoch("1970-01-01T00:01:40.123456789Z") == 100.123456
    assert started_epoch("1970-01-01T00:01:40Z") == 100.0


LOG = "\n".join([
    '{"time":"2024-05-01T12:00:00Z","event":"watching","reason":"llm: ..."}',
    'Traceback: something else on stdout',
    '{"time":"2024-05-01T12:01:00Z","event":"restart","address":"app.llm.container[0]@local","app":"llm",'
    '"container":"berth-demo-llm-0","id":"abc","reason":"liveness /health failed 3 times in a row: HTTP 500","restarts":1}',
    '{"time":"2024-05-01T12:02:00Z","event":"failing","address":"app.web.container[0]@local","app":"web",'
    '"container":"berth-demo-web-0","id":"def","reason":"liveness /h failed 1 time in a row: HTTP 500"}',
    '{"time":"2024-05-01T12:03:00Z","event":"restart","address":"app.llm.container[0]@local","app":"llm",'
    '"container":"berth-demo-llm-0","id":"abc","reason":"liveness /health failed 3 times in a row: timed out","restarts":2}',
])


def test_status_reads_the_latest_restart_of_each_container() -> None:
    found = last_restarts(LOG)
    assert list(found) == ["abc"]
    assert (found["abc"]["restarts"], found["abc"]["time"]) == (2, "2024-05-01T12:03:00Z")


def test_logs_show_the_restarts_of_one_app_in_whatever_chunks_they_come() -> None:
    chunks = [LOG[i:i + 37] for i in range(0, len(LOG), 37)]
    lines = list(lines_for_app(chunks, "llm"))
    assert lines == [
        "2024-05-01T12:01:00Z liveness watcher restarted app.llm.container[0]@local (berth-demo-llm-0): "
        "liveness /health failed 3 times in a row: HTTP 500\n",
        "2024-05-01T12:03:00Z liveness watcher restarted app.llm.container[0]@local (berth-demo-llm-0): "
        "liveness /health failed 3 times in a row: timed out\n",
    ]
    assert list(lines_for_app(chunks, "web")) == []  # failing lines are not restarts
    assert describe({"event": "restart-failed", "container": "x", "reason": "gone"}).endswith("could not restart x: gone")
