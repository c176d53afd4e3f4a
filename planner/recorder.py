"""The state as an apply changes it: every record written through to the store at once.

Records are ResourceStates held by Address; State.resources stays keyed by the address's
text (the state format). refresh_state records what a plan found without acting.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from planner.plan import Action, Plan
from state.address import Address
from state.errors import LockLostError
from state.model import ResourceState, State
from state.store import StateStore


class Recorder:
    """The state as the run changes it. Every change is written through to the store
    under one lock, so worker threads never interleave half-made states.

    A write the store refuses because this berth's lock is no longer its own
    (LockLostError: force-unlocked, or taken by another) sets `stop`, so the walk starts
    no new step: nothing more can be recorded, and another berth may be changing the
    hosts now. The error is kept in `lock_lost` and raised to the step that wrote."""

    def __init__(self, store: StateStore, state: State, note: str, config: dict[str, Any] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.store = store
        self.state = state
        self.note = note
        self.config = config  # the desired configuration this run applies, recorded with each write
        self.stop = stop
        self.run = uuid.uuid4().hex[:12]  # every version this run writes carries it (state history's rows)
        self.lock_lost: LockLostError | None = None
        self._lock = threading.Lock()

    def get(self, address: Address) -> ResourceState | None:
        with self._lock:
            return self.state.resources.get(str(address))

    def put(self, resource: ResourceState) -> None:
        with self._lock:
            key = str(resource.address)
            if self.state.resources.get(key) == resource:
                return
            resources = dict(self.state.resources) | {key: resource}
            self._write(resources)

    def drop(self, address: Address, ids: list[str] | None = None) -> None:
        """Forget address; with ids, only if state holds one of them (a duplicate
        container removed under the same address must not drop the real one)."""
        key = str(address)
        with self._lock:
            current = self.state.resources.get(key)
            if current is None or (ids is not None and current.id not in ids):
                return
            resources = {k: v for k, v in self.state.resources.items() if k != key}
            self._write(resources)

    def merge(self, puts: list[ResourceState], drops: list[Address]) -> None:
        """put() each of puts and drop() each of drops, written as one state version
        (none when nothing differs)."""
        with self._lock:
            resources = dict(self.state.resources)
            for address in drops:
                resources.pop(str(address), None)
            resources |= {str(r.address): r for r in puts}
            if resources != self.state.resources:
                self._write(resources)

    def record_config(self) -> None:
        """Write a state version naming this run's configuration if the last one recorded
        differs, so that an apply which changed nothing on the hosts (probes, fields only
        berth reads) still leaves its configuration for `rollback`."""
        from planner.recorded import record_digest

        if self.config is None:
            return
        with self._lock:
            if self.store.latest_config() != record_digest(self.config):
                self._write(dict(self.state.resources))

    def _write(self, resources: dict[str, ResourceState]) -> None:
        try:
            self.state = self.store.write(self.state.model_copy(update={"resources": resources}),
                                          note=self.note, config=self.config, run=self.run)
        except LockLostError as err:
            self.lock_lost = self.lock_lost or err
            if self.stop is not None:
                self.stop.set()
            raise


def refresh_state(plan: Plan, recorder: Recorder) -> None:
    """Record what the plan found without acting: adopted IDs, forgotten resources. All
    of it in one state version: it is one finding, and a write per resource made a cold
    apply of N apps write N versions (each the whole state) before its first step."""
    puts: list[ResourceState] = []
    drops: list[Address] = []
    for change in plan.changes:
        if change.action is not Action.NOOP:
            continue
        if change.after is None:
            drops.append(change.address)
            continue
        prev = recorder.get(change.address)
        puts.append(ResourceState(
            address=change.address, type=change.type, host=change.address.host,
            id=change.ids[0] if change.ids else (prev.id if prev else ""),
            status=prev.status if prev else "ready", attributes=change.after,
        ))
    recorder.merge(puts, drops)
