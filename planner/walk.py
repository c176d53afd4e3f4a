"""The walker: runs the nodes of any DAG in dependency order on a bounded thread pool.

It knows nothing of Docker or plans; nodes are any hashable values. What holds:
- an edge u -> v means v depends on u: v starts only once every predecessor finished ok;
  ready nodes start in the graph's node insertion order, at most `parallelism` at once;
- a node whose `run` raises is failed (the exception kept in Outcome.error) and every
  node downstream of it is skipped at once, naming its ancestors failed by then;
  independent branches go on. Nothing `run` raises escapes a worker thread or `walk`;
- once `stop` is set, or Ctrl-C reaches the calling thread, no new node starts; running
  nodes finish and are recorded, the rest are not_started (no event). Ctrl-C is not
  re-raised (nor is the caller's `stop` set): the result says interrupted=True and the
  caller picks the exit code;
- `on_event` is called only from the calling thread: "started" on submit, then
  "finished"/"failed" on collection; "skipped" as marked. It must not raise: if it does,
  the exception is caught, kept in WalkResult.hook_errors, and the walk goes on unchanged.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # networkx costs 0.1 s to import: a no-op apply never walks
    import networkx as nx

Node = Hashable
_TICK = 0.1  # seconds the calling thread blocks at a time, so Ctrl-C is seen promptly


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream node failed
    NOT_STARTED = "not_started"  # stop was set, or Ctrl-C, before it could start


@dataclass(frozen=True)
class Outcome:
    status: Status
    value: object = None
    error: BaseException | None = None
    reason: str = ""
    elapsed: float = 0.0  # wall time of its run, seconds


@dataclass(frozen=True)
class WalkEvent:
    kind: Literal["started", "finished", "failed", "skipped"]
    node: Node
    outcome: Outcome | None  # None for "started"


@dataclass(frozen=True)
class WalkResult:
    outcomes: dict[Node, Outcome]  # every node, in graph insertion order
    interrupted: bool
    hook_errors: tuple[BaseException, ...] = ()  # raised by on_event, caught

    @property
    def failed(self) -> list[Node]:
        return [n for n, o in self.outcomes.items() if o.status is Status.FAILED]

    @property
    def ok(self) -> bool:
        return all(o.status is Status.OK for o in self.outcomes.values())


def _timed(fut: Future, run: Callable[[Node], object], node: Node) -> None:
    """Worker side: run one node into `fut` unless it was cancelled first; whatever
    `run` raises becomes a failed Outcome."""
    if not fut.set_running_or_notify_cancel():
        return
    t0 = time.monotonic()
    try:
        fut.set_result(Outcome(Status.OK, value=run(node), elapsed=time.monotonic() - t0))
    except BaseException as e:  # noqa: BLE001 - nothing may escape a worker
        fut.set_result(Outcome(Status.FAILED, error=e, reason=str(e) or type(e).__name__,
                               elapsed=time.monotonic() - t0))


def walk(
    graph: nx.DiGraph,
    run: Callable[[Node], object],
    *,
    parallelism: int = 10,
    stop: threading.Event | None = None,
    on_event: Callable[[WalkEvent], None] | None = None,
) -> WalkResult:
    """Run `run(node)` for every node of the DAG `graph`; see the module docstring."""
    if parallelism < 1:
        raise ValueError(f"parallelism must be at least 1, got {parallelism}")
    import networkx as nx

    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("graph has a cycle: " + repr(nx.find_cycle(graph)))
    order = {n: i for i, n in enumerate(graph.nodes)}
    waiting_on = {n: graph.in_degree(n) for n in graph.nodes}
    ready = [(order[n], n) for n, k in waiting_on.items() if k == 0]  # a heap
    done: dict[Node, Outcome] = {}
    running: dict[Future, Node] = {}  # our own futures, tracked before submit
    announced: set[Node] = set()  # nodes whose "started" event went out
    hook_errors: list[BaseException] = []
    interrupted = False

    def emit(kind, node, outcome=None) -> None:
        nonlocal interrupted
        if kind == "started":
            announced.add(node)
        if on_event is None:
            return
        try:
            on_event(WalkEvent(kind, node, outcome))
        except KeyboardInterrupt:
            interrupted = True
        except Exception as e:  # noqa: BLE001 - a hook's bug must not break bookkeeping
            hook_errors.append(e)

    def record(node: Node, outcome: Outcome) -> None:
        done[node] = outcome
        if outcome.status is Status.OK:
            emit("finished", node, outcome)
            for succ in graph.successors(node):
                waiting_on[succ] -= 1
                if waiting_on[succ] == 0:
                    heapq.heappush(ready, (order[succ], succ))
            return
        emit("failed", node, outcome)
        for d in sorted(nx.descendants(graph, node), key=order.__getitem__):
            if d not in done:
                up = nx.ancestors(graph, d)
                culprits = [a for a in graph.nodes if a in up and a in done
                            and done[a].status is Status.FAILED]
                done[d] = Outcome(Status.SKIPPED, reason="upstream dependencies failed: "
                                  + ", ".join(map(str, culprits)))
                emit("skipped", d, done[d])

    pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="walk")
    try:
        while True:
            try:
                while ready and len(running) < parallelism and not (
                        interrupted or (stop is not None and stop.is_set())):
                    node = heapq.heappop(ready)[1]
                    fut = Future()
                    running[fut] = node
                    pool.submit(_timed, fut, run, node)
                    emit("started", node)
                if not running:
                    break
                finished, _ = wait(running, timeout=_TICK, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: order[running[f]]):
                    node = running[fut]
                    if node not in done:
                        if node not in announced:  # Ctrl-C came between submit and emit
                            emit("started", node)
                        record(node, fut.result())
                    del running[fut]
            except KeyboardInterrupt:  # stop starting; keep draining, even on more Ctrl-C
                interrupted = True
                for fut in [f for f in running if f.cancel()]:  # queued, not yet begun
                    del running[fut]
    finally:  # normally every node is collected by now; a bug must not wait on workers
        pool.shutdown(wait=False, cancel_futures=True)
    not_started = Outcome(Status.NOT_STARTED, reason="stopped before it started")
    return WalkResult(
        outcomes={n: done.get(n, not_started) for n in graph.nodes},
        interrupted=interrupted,
        hook_errors=tuple(hook_errors),
    )
