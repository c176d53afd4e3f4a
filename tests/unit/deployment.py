"""Deployment: a stack file, its state store and fake hosts, planned and applied through
berth's real pipeline (load, refresh, diff, graph, walk, apply, state after each step),
with no Docker. Each plan or apply opens its own session, as each `berth` command does,
so rewriting the stack file between two calls is what a user editing it does.

    d = Deployment(tmp_path, STACK_TOML, files={"web/Dockerfile": "FROM busybox\\n"})
    d.apply()                  # `berth apply --auto-approve`
    assert not d.plan().has_changes

The engine is reached only through the three functions under "entry points" below; when
the pipeline moves (planner/pipeline.py), only they change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.workspace import Session
from fake_provider import FakeHost
from planner.apply import ApplyResult
from planner.events import Event
from planner.plan import Plan
from state.model import State

STACK_FILE = "berth.toml"


# -- entry points: the only calls into the engine --------------------------------------------


def load(stack_file: Path) -> Any:
    """The Stack the file asks for."""
    from berth.stackfile.load import load_stack

    return load_stack(str(stack_file))


def make_plan(session: Session, state: State | None, *, destroy: bool, refresh: bool) -> Plan:
    """What `berth plan` (and apply, before it asks) computes."""
    return session.plan(state, destroy=destroy, refresh=refresh)


def run_plan(session: Session, plan: Plan, state: State, *, destroy: bool, emit: Any,
             stop: threading.Event, parallelism: int) -> ApplyResult:
    """What `berth apply --auto-approve` does with the plan (a plan without changes is
    walked too: apply_plan then only records what the plan found, as the command does)."""
    from berth.commands import recorded_config_for

    return session.apply(plan, state, parallelism=parallelism, stop=stop, emit=emit,
                         config=recorded_config_for(session.stack, destroy=destroy),
                         note="destroy" if destroy else "apply")


# -- the harness -----------------------------------------------------------------------------


@dataclass
class FakeHostsSession(Session):
    """A Session whose hosts are FakeHosts: a host the stack names but the test did not
    give is an error, not a Docker connection."""

    fakes: dict[str, FakeHost] = field(default_factory=dict)

    def provider(self, host: str) -> Any:
        if host not in self._providers:
            assert host in self.fakes, f"the stack reaches host {host}, which the test gave no FakeHost for"
            self._providers[host] = self.fakes[host]
        return self._providers[host]


class Deployment:
    def __init__(self, root: Path, stack_toml: str, *, files: dict[str, str] | None = None,
                 hosts: dict[str, FakeHost] | None = None) -> None:
        self.root = root
        self.hosts = hosts or {"local": FakeHost("local")}
        self.events: list[Event] = []
        self.last_plan: Plan | None = None
        self.write(stack_toml, files)

    @property
    def local(self) -> FakeHost:
        return self.hosts["local"]

    def write(self, stack_toml: str | None = None, files: dict[str, str] | None = None) -> None:
        """Rewrite the stack file and/or files beside it (build contexts, secret files)."""
        if stack_toml is not None:
            (self.root / STACK_FILE).write_text(stack_toml)
        for name, text in (files or {}).items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def session(self) -> FakeHostsSession:
        return FakeHostsSession(load(self.root / STACK_FILE), self.root / ".berth", fakes=self.hosts)

    @property
    def state(self) -> State | None:
        session = self.session()
        try:
            return session.store.read()
        finally:
            session.close()

    def plan(self, *, destroy: bool = False, refresh: bool = True) -> Plan:
        session = self.session()
        try:
            return make_plan(session, session.store.read(), destroy=destroy, refresh=refresh)
        finally:
            session.close()

    def apply(self, *, destroy: bool = False, stop: threading.Event | None = None,
              parallelism: int = 10) -> ApplyResult:
        session = self.session()
        try:
            state = session.store.read() or State(stack=session.stack.name)
            plan = self.last_plan = make_plan(session, state, destroy=destroy, refresh=True)
            lock = threading.Lock()

            def emit(event: Event) -> None:
                with lock:
                    self.events.append(event)

            return run_plan(session, plan, state, destroy=destroy, emit=emit,
                            stop=stop or threading.Event(), parallelism=parallelism)
        finally:
            session.close()

    def destroy(self) -> ApplyResult:
        return self.apply(destroy=True)


def pending(plan: Plan) -> list[str]:
    """The plan's changes as `WORD ADDRESS (reasons)`, for assertion messages."""
    return [f"{c.action.word} {c.address} ({'; '.join(c.reasons)})" for c in plan.actions]


def failures(result: ApplyResult) -> list[str]:
    return [f"{step}: {outcome.error}" for step, outcome in result.failed]
