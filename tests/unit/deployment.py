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

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.workspace import Workspace
from unit.fake_provider import FakeHost
from planner import pipeline
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


def make_plan(workspace: Workspace, state: State | None, *, destroy: bool, refresh: bool,
              volumes: bool = False) -> Plan:
    """What `berth plan` (and apply, before it asks) computes; volumes: `--volumes`."""
    return pipeline.plan(workspace.context, state,
                         pipeline.PlanOpts(destroy=destroy, refresh=refresh, remove_volumes=volumes))


def run_plan(workspace: Workspace, plan: Plan, state: State, *, destroy: bool, emit: Any,
             stop: threading.Event, parallelism: int) -> ApplyResult:
    """What `berth apply --auto-approve` does with the plan (a plan without changes only
    records what the plan found, as the command does)."""
    opts = pipeline.PlanOpts(destroy=destroy)
    return pipeline.apply(workspace.context, plan, workspace.store, state, parallelism=parallelism,
                          stop=stop, emit=emit, config=pipeline.config_to_record(workspace.stack, opts),
                          note="destroy" if destroy else "apply")


# -- the harness -----------------------------------------------------------------------------


class MemoryStore:
    """A StateStore in memory, written as DiskStore writes (the next serial, never
    backwards; a history entry per write; configurations by digest), the state kept as
    its JSON text so every read parses what a write serialised."""

    def __init__(self) -> None:
        self.path = "memory"
        self.text: str | None = None
        self.entries: list[dict[str, Any]] = []
        self.configs: dict[str, str] = {}
        self.latest: str | None = None
        self.lock: str | None = None
        self._guard = threading.Lock()

    def read(self) -> State | None:
        return State.model_validate_json(self.text) if self.text is not None else None

    def write(self, state: State, *, note: str = "", config: dict[str, Any] | None = None,
              run: str | None = None) -> State:
        with self._guard:
            current = self.read()
            serial = max(current.serial + 1, state.serial) if current else max(state.serial, 1)
            stored = state.model_copy(update={"serial": serial})
            self.text = stored.model_dump_json()
            entry = {"serial": serial, "time": time.time(), "who": "test", "note": note} | ({"run": run} if run else {})
            if config is not None:
                config_text = json.dumps(config, sort_keys=True, separators=(",", ":"))
                digest = hashlib.sha256(config_text.encode()).hexdigest()
                self.configs.setdefault(digest, config_text)
                self.latest = entry["config"] = digest
            self.entries.append(entry | {"state": self.text})
            return stored

    def history(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.entries]

    def config(self, digest: str) -> dict[str, Any] | None:
        return json.loads(self.configs[digest]) if digest in self.configs else None

    def latest_config(self) -> str | None:
        return self.latest

    def add_lock(self, record: dict[str, Any]) -> bool:
        with self._guard:
            if self.lock is not None:
                return False
            self.lock = json.dumps(record)
            return True

    def get_lock(self) -> dict[str, Any] | None:
        return json.loads(self.lock) if self.lock else None

    def replace_lock(self, expected_id: str, record: dict[str, Any]) -> bool:
        with self._guard:
            if self.lock is not None and json.loads(self.lock).get("id") != expected_id:
                return False
            self.lock = json.dumps(record)
            return True

    def delete_lock(self, lock_id: str | None = None) -> bool:
        with self._guard:
            if self.lock is None or (lock_id is not None and json.loads(self.lock).get("id") != lock_id):
                return False
            self.lock = None
            return True

    def close(self) -> None:
        pass


@dataclass
class FakeHostsWorkspace(Workspace):
    """A Workspace whose hosts are FakeHosts (a host the stack names but the test did not
    give is an error, not a Docker connection) and whose store is in memory when given one;
    content hashes are memoised in the state directory, as the CLI does."""

    fakes: dict[str, FakeHost] = field(default_factory=dict)
    memory: MemoryStore | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.memory is not None:
            self.store = self.memory

    def provider(self, host: str) -> Any:
        if host not in self._providers:
            assert host in self.fakes, f"the stack reaches host {host}, which the test gave no FakeHost for"
            self._providers[host] = self.fakes[host]
        return self._providers[host]


class Deployment:
    def __init__(self, root: Path, stack_toml: str | None, *, files: dict[str, str] | None = None,
                 hosts: dict[str, FakeHost] | None = None, on_disk: bool = False, stack: Any = None) -> None:
        """stack_toml: the berth.toml to write; or None with `stack`, a planner.desired.Stack
        used as it is (the plan cases' apps), loaded from no file."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.hosts = hosts or {"local": FakeHost("local")}
        self.hosts.setdefault("local", FakeHost("local"))
        for fake in self.hosts.values():  # images for SSH hosts are built locally, then sent
            if fake.host != "local" and fake.builder is None:
                fake.builder = self.hosts["local"]
        self.events: list[Event] = []
        self.last_plan: Plan | None = None
        # on_disk: the real DiskStore in ROOT/.berth, as the CLI keeps it; else in memory
        self.memory = None if on_disk else MemoryStore()
        self.given_stack = stack
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

    def session(self) -> FakeHostsWorkspace:
        stack = self.given_stack if self.given_stack is not None else load(self.root / STACK_FILE)
        return FakeHostsWorkspace(stack, self.root / ".berth", fakes=self.hosts, memory=self.memory)

    @property
    def state(self) -> State | None:
        session = self.session()
        try:
            return session.store.read()
        finally:
            session.close()

    def plan(self, *, destroy: bool = False, refresh: bool = True, volumes: bool = False) -> Plan:
        session = self.session()
        try:
            return make_plan(session, session.store.read(), destroy=destroy, refresh=refresh, volumes=volumes)
        finally:
            session.close()

    def apply(self, *, destroy: bool = False, stop: threading.Event | None = None,
              parallelism: int = 10, volumes: bool = False) -> ApplyResult:
        session = self.session()
        try:
            state = session.store.read() or State(stack=session.stack.name)
            plan = self.last_plan = make_plan(session, state, destroy=destroy, refresh=True, volumes=volumes)
            lock = threading.Lock()

            def emit(event: Event) -> None:
                with lock:
                    self.events.append(event)

            return run_plan(session, plan, state, destroy=destroy, emit=emit,
                            stop=stop or threading.Event(), parallelism=parallelism)
        finally:
            session.close()

    def destroy(self, *, volumes: bool = False) -> ApplyResult:
        return self.apply(destroy=True, volumes=volumes)


def pending(plan: Plan) -> list[str]:
    """The plan's changes as `WORD ADDRESS (reasons)`, for assertion messages."""
    return [f"{c.action.word} {c.address} ({'; '.join(c.reasons)})" for c in plan.actions]


def failures(result: ApplyResult) -> list[str]:
    return [f"{step}: {outcome.error}" for step, outcome in result.failed]
