"""planner.walk on toy string graphs, with real threads."""

from __future__ import annotations

import _thread
import threading
import time

import networkx as nx
import pytest

from planner.walk import Outcome, Status, WalkEvent, walk


def dag(*edges: str, nodes: str = "") -> nx.DiGraph:
    """dag("a>b", "b>c", nodes="x y"): nodes listed first keep their insertion order."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes.split())
    g.add_edges_from(e.split(">") for e in edges)
    return g


class Log:
    """A run() that records start/end of each node, in the order they happened."""

    def __init__(self, work=None):
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.work = work or (lambda node: None)

    def __call__(self, node):
        with self.lock:
            self.lines.append(f"start {node}")
        try:
            return self.work(node)
        finally:
            with self.lock:
                self.lines.append(f"end {node}")

    def ran(self) -> set[str]:
        return {line.split()[1] for line in self.lines}


def walk_catching_ctrl_c(*args, **kwargs):
    try:
        return walk(*args, **kwargs)
    except KeyboardInterrupt:  # would otherwise abort the whole pytest session
        pytest.fail("KeyboardInterrupt escaped walk")


def test_a_node_starts_only_after_all_its_predecessors_finished():
    g = dag("a>b", "a>c", "b>d", "c>d", "d>e", nodes="e d c b a x")
    log = Log(lambda node: time.sleep(0.05 if node == "c" else 0.01))  # c ends after b
    result = walk(g, log)
    assert result.ok and not result.interrupted
    assert list(result.outcomes) == list(g.nodes)
    assert sorted(log.lines) == sorted(f"{w} {n}" for n in g.nodes for w in ("start", "end"))
    for u, v in g.edges:
        assert log.lines.index(f"end {u}") < log.lines.index(f"start {v}"), (u, v)


def test_independent_nodes_run_concurrently():
    barrier = threading.Barrier(2, timeout=2)  # run one at a time, it breaks
    result = walk(dag(nodes="a b"), lambda node: barrier.wait())
    assert result.ok, result.outcomes


def test_parallelism_one_runs_one_at_a_time_in_insertion_order():
    g = dag("x>z", nodes="z y x w")  # z waits for x, then goes before w
    log = Log()
    result = walk(g, log, parallelism=1)
    assert result.ok
    assert log.lines == [f"{what} {n}" for n in "yxzw" for what in ("start", "end")]


def test_parallelism_bounds_the_number_of_running_nodes():
    lock, now, most = threading.Lock(), [0], [0]

    def work(node):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.03)
        with lock:
            now[0] -= 1

    result = walk(dag(nodes=" ".join(f"n{i}" for i in range(10))), work, parallelism=3)
    assert result.ok
    assert most[0] == 3


def test_failure_skips_all_descendants_and_other_branches_go_on():
    g = dag("a>b", "b>c", "c>d", "b>e", "x>y", "y>z", nodes="a b c d e x y z")
    boom = RuntimeError("no such image")

    def work(node):
        if node == "b":
            raise boom
        if node in "xyz":
            time.sleep(0.02)  # still running when b fails
        return node.upper()

    log = Log(work)
    result = walk(g, log)
    assert result.failed == ["b"] and not result.ok and not result.interrupted
    assert result.outcomes["b"].status is Status.FAILED
    assert result.outcomes["b"].error is boom
    for n in "cde":
        assert result.outcomes[n] == Outcome(
            Status.SKIPPED, reason="upstream dependencies failed: b")
    for n in "axyz":
        assert result.outcomes[n].status is Status.OK
        assert result.outcomes[n].value == n.upper()
    assert log.ran() == set("abxyz")


def test_skip_reason_names_every_failed_ancestor():
    g = dag("a>c", "b>c", nodes="a b c")
    result = walk(g, Log(lambda n: (_ for _ in ()).throw(ValueError(n))), parallelism=1)
    assert result.failed == ["a", "b"]
    assert result.outcomes["c"].reason == "upstream dependencies failed: a"  # b not yet run


def test_base_exceptions_from_run_are_failures_not_escapes():
    def work(node):
        raise SystemExit(3)

    result = walk(dag(nodes="a"), work)
    assert result.failed == ["a"]
    assert isinstance(result.outcomes["a"].error, SystemExit)


def test_return_values_and_elapsed_are_kept():
    result = walk(dag("a>b"), lambda n: (time.sleep(0.05), f"value of {n}")[1])
    assert {n: o.value for n, o in result.outcomes.items()} == {
        "a": "value of a", "b": "value of b"}
    assert all(0.05 <= o.elapsed < 1 for o in result.outcomes.values())


def test_stop_lets_running_nodes_finish_and_starts_nothing_more():
    # s and r run together (parallelism 2); s sets stop while r is still busy.
    g = dag("s>t", "r>u", nodes="s r z t u")
    stop, barrier = threading.Event(), threading.Barrier(2, timeout=2)

    def work(node):
        barrier.wait()
        if node == "s":
            stop.set()
            return "s done"
        time.sleep(0.1)  # a slot is free now: z would start if stop were ignored
        return "r done"

    log = Log(work)
    result = walk(g, log, parallelism=2, stop=stop)
    assert not result.interrupted
    assert result.outcomes["s"].value == "s done"
    assert result.outcomes["r"].value == "r done"
    for n in "ztu":
        assert result.outcomes[n] == Outcome(
            Status.NOT_STARTED, reason="stopped before it started")
    assert log.ran() == {"s", "r"}


def test_stop_set_before_the_walk_starts_nothing():
    stop = threading.Event()
    stop.set()
    log = Log()
    result = walk(dag("a>b", nodes="c"), log, stop=stop)
    assert log.lines == []
    assert {o.status for o in result.outcomes.values()} == {Status.NOT_STARTED}


def test_ctrl_c_stops_the_walk_lets_running_finish_and_is_not_reraised():
    g = dag("s>t", nodes="s r z t")
    barrier = threading.Barrier(2, timeout=2)

    def work(node):
        barrier.wait()
        if node == "s":
            _thread.interrupt_main()  # KeyboardInterrupt in the calling thread
            time.sleep(0.15)
            _thread.interrupt_main()  # a second Ctrl-C while running nodes drain
            time.sleep(0.15)
            return "s done"
        time.sleep(0.05)
        return "r done"

    log = Log(work)
    result = walk_catching_ctrl_c(g, log, parallelism=2)
    assert result.interrupted
    assert result.outcomes["s"] == Outcome(Status.OK, "s done",
                                           elapsed=result.outcomes["s"].elapsed)
    assert result.outcomes["r"].value == "r done"
    assert result.outcomes["z"].status is Status.NOT_STARTED
    assert result.outcomes["t"].status is Status.NOT_STARTED
    assert log.ran() == {"s", "r"}


def test_events_come_from_the_calling_thread_in_a_consistent_order():
    g = dag("a>b", "b>c", "a>d", "x>y", nodes="a b c d x y")
    events: list[WalkEvent] = []
    threads: set[int] = set()
    announced = {n: threading.Event() for n in g.nodes}

    def on_event(event):
        threads.add(threading.get_ident())
        events.append(event)
        if event.kind == "started":
            announced[event.node].set()

    def work(node):
        assert announced[node].wait(1), "started is sent when the node starts"
        if node == "b":
            raise RuntimeError("b broke")
        return node

    walk(g, work, on_event=on_event)
    assert threads == {threading.get_ident()}
    kinds = {n: [e.kind for e in events if e.node == n] for n in g.nodes}
    assert kinds == {"a": ["started", "finished"], "b": ["started", "failed"],
                     "c": ["skipped"], "d": ["started", "finished"],
                     "x": ["started", "finished"], "y": ["started", "finished"]}
    seen = [(e.kind, e.node) for e in events]
    for u, v in g.edges:
        if kinds[v][0] == "started":
            assert seen.index(("finished", u)) < seen.index(("started", v))
    assert seen.index(("failed", "b")) < seen.index(("skipped", "c"))
    assert all(e.outcome is None for e in events if e.kind == "started")
    assert all(e.outcome is not None for e in events if e.kind != "started")


def test_a_raising_on_event_does_not_break_the_walk():
    oops = RuntimeError("renderer bug")

    def on_event(event):
        raise oops

    log = Log()
    result = walk(dag("a>b", "b>c"), log, on_event=on_event)
    assert result.ok and log.ran() == {"a", "b", "c"}
    assert result.hook_errors and all(e is oops for e in result.hook_errors)


def test_empty_graph_returns_at_once():
    result = walk(nx.DiGraph(), Log())
    assert result.outcomes == {} and result.ok and not result.interrupted


def test_a_cycle_or_a_bad_parallelism_is_refused_up_front():
    log = Log()
    with pytest.raises(ValueError, match="cycle"):
        walk(dag("a>b", "b>a", nodes="c"), log)
    with pytest.raises(ValueError, match="parallelism"):
        walk(dag(nodes="c"), log, parallelism=0)
    assert log.lines == []
