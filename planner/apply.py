"""Apply: walk a plan's step graph against the providers, writing state as steps finish.
What each step does is planner.steps' handler table (serving's from planner.serving.steps).

Each finished step is recorded in state and written to the store at once, so a run
that dies at any point leaves a state the next plan converges from: a container is
recorded as `created` the moment it exists, `ready` once its probe passed, `tainted`
if the probe failed.

Secret values come from a SecretValues (read from their sources, in memory) and go only
to the host's secret file or a container's secret env; every event message passes
through its redact(), so a container log quoting a value is not shown with it.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from planner import steps
from planner.serving import steps as serving_steps
from planner.weights import steps as weights_steps
from planner.events import Emit, Event
from planner.graph import Step, StepKind, build_graph
from planner.plan import Action, Plan
from planner.recorder import Recorder, refresh_state
from planner.walk import Outcome, Status, WalkEvent, walk
from providers.base import Provider
from providers.types import Interrupted
from state.address import Address
from state.model import State
from state.store import StateStore

if TYPE_CHECKING:
    from planner.secrets import SecretValues

__all__ = ["ApplyResult", "Recorder", "apply_plan", "refresh_state"]
HANDLER_MODULES = (steps, serving_steps, weights_steps)  # what fills the handler table, checked complete here
steps.check_complete()


@dataclass
class ApplyResult:
    state: State
    outcomes: dict[Step, Outcome] = field(default_factory=dict)
    actions: dict[Address, Action] = field(default_factory=dict)  # per address, as planned
    interrupted: bool = False
    lock_lost: str | None = None  # why the walk stopped starting steps: the lock was no longer ours

    @property
    def failed(self) -> list[tuple[Step, Outcome]]:
        return [(s, o) for s, o in self.outcomes.items() if o.status is Status.FAILED]

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.lock_lost and all(o.status is Status.OK for o in self.outcomes.values())

    def counts(self) -> dict[str, int]:
        """Terraform's closing line, counting what happened on the hosts: a resource is
        added once the step that makes it finished, destroyed once the step that removes
        it finished, changed once its update step finished. So a replace stopped or failed
        half-way counts its removal, and an interrupted destroy what it removed."""
        finished: dict[Address, set[StepKind]] = {address: set() for address in self.actions}
        kinds: dict[Address, set[StepKind]] = {address: set() for address in self.actions}
        for step, outcome in self.outcomes.items():
            kinds.setdefault(step.address, set()).add(step.kind)
            if outcome.status is Status.OK:
                finished.setdefault(step.address, set()).add(step.kind)

        def done(address: Address, wanted: frozenset[StepKind]) -> bool:
            # every step of those kinds finished; a change with none of them: every step
            relevant = kinds[address] & wanted or kinds[address]
            return bool(relevant) and relevant <= finished[address]

        counts = {"added": 0, "changed": 0, "destroyed": 0}
        for address, action in self.actions.items():
            if action is Action.REPLACE and kinds[address] == {K.CREATE, K.WAIT}:
                # A container's replace keeps the old one until the new one is ready
                # (planner.steps.replace_wait): the old one is destroyed once the wait
                # passed; a wait that failed removed the new one again (an interrupt did not).
                wait = next(o for s, o in self.outcomes.items() if s.address == address and s.kind == K.WAIT)
                undone = wait.status is Status.FAILED and not isinstance(wait.error, Interrupted)
                counts["added"] += K.CREATE in finished[address] and not undone
                counts["destroyed"] += K.WAIT in finished[address]
                continue
            if action is Action.UPDATE:
                first = [s for s in self.outcomes if s.address == address][:1]
                counts["changed"] += bool(first) and self.outcomes[first[0]].status is Status.OK
                continue
            if action is Action.CREATE or action.is_replace:
                counts["added"] += done(address, MAKES)
            if action is Action.DELETE:
                counts["destroyed"] += done(address, REMOVES)
            elif action.is_replace:  # a container's replace step removes the old one itself
                counts["destroyed"] += done(address, REMOVES | {K.CREATE})
        return counts


K = StepKind
# The step that makes a resource exist on its host, and the one that removes it.
MAKES = frozenset({K.CREATE, K.ROLL_START, K.BUILD, K.DELIVER, K.PULL, K.SYNC_SECRET, K.GATEWAY_START,
                   K.WATCHER_START})
REMOVES = frozenset({K.REMOVE, K.ROLL_SWITCH, K.REMOVE_IMAGE, K.PRUNE_IMAGE, K.REMOVE_SECRET, K.GATEWAY_REMOVE,
                     K.WATCHER_REMOVE})


def apply_plan(
    plan: Plan,
    store: StateStore,
    state: State,
    providers: dict[str, Provider],
    *,
    parallelism: int = 10,
    stop: threading.Event | None = None,
    emit: Emit,
    config: dict[str, Any] | None = None,
    note: str | None = None,
    secrets: SecretValues | None = None,
) -> ApplyResult:
    """secrets: the stack's secret values, needed when the plan writes a secret file or
    creates a container with secret_env; the digest of each value is checked against
    the plan's, so a value that changed since the plan was shown is not applied."""
    stop = stop or threading.Event()
    if secrets is not None:
        emit = _redacting(emit, secrets)
    recorder = Recorder(store, state.model_copy(update={"stack": plan.stack}),
                        note=note or ("destroy" if plan.destroy else "apply"), config=config, stop=stop)
    refresh_state(plan, recorder)
    graph = build_graph(plan)
    runner = steps.StepContext(plan.stack, graph, providers, recorder, stop, emit, secrets)

    def on_walk_event(event: WalkEvent) -> None:
        outcome = event.outcome
        elapsed = outcome.elapsed if outcome else 0.0
        match event.kind:
            case "started":
                emit(Event("started", event.node))
            case "finished":
                emit(Event("finished", event.node, elapsed, message=outcome.value or ""))
            case "failed":
                err = outcome.error
                emit(Event("failed", event.node, elapsed, message=_message(err), detail=getattr(err, "log_tail", "")))
            case "skipped":
                kind = "not_started" if outcome.status is Status.NOT_STARTED else "skipped"
                emit(Event(kind, event.node, message=outcome.reason))

    result = walk(graph, runner.run, parallelism=parallelism, stop=stop, on_event=on_walk_event)
    if recorder.lock_lost is None:
        recorder.record_config()
    return ApplyResult(
        state=recorder.state, outcomes=result.outcomes,
        actions={c.address: c.action for c in plan.actions},
        # a lost lock stopped the walk: a failure, not the user's interrupt
        interrupted=result.interrupted or (stop.is_set() and recorder.lock_lost is None),
        lock_lost=str(recorder.lock_lost) if recorder.lock_lost else None,
    )


def _redacting(emit: Emit, secrets: SecretValues) -> Emit:
    def redacted(event: Event) -> None:
        emit(dataclasses.replace(event, message=secrets.redact(event.message), detail=secrets.redact(event.detail)))

    return redacted


def _message(err: BaseException | None) -> str:
    from providers.types import ProviderError
    from state.errors import StateError

    if isinstance(err, (ProviderError, StateError)):  # a state write refused (lock lost, disk full) says why
        return str(err)
    return f"internal error: {type(err).__name__}: {err}"
