"""One command's working set: the loaded stack, its state store, and a provider per host.

The CLI opens a Session, asks it for a plan or an apply, and closes it. Providers are
connected lazily, so commands that only read state never touch a host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.desired import Stack
from planner.plan import Plan
from state.model import State
from state.store import DiskStore

STATE_DIR = ".berth"


def state_dir_for(stack_file: Path, override: str | None) -> Path:
    return Path(override).resolve() if override else stack_file.parent / STATE_DIR


@dataclass
class Session:
    stack: Stack
    state_dir: Path
    store: DiskStore = field(init=False)
    _providers: dict[str, Any] = field(default_factory=dict, init=False)
    _secrets: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = DiskStore(self.state_dir / "state")

    @property
    def secrets(self) -> Any:
        """The stack's secret values (planner.secrets.SecretValues), read once per
        command and kept in memory; the digest key lives in STATE_DIR/secrets.key,
        beside the state store and never in it."""
        if self._secrets is None:
            from planner.secrets import KEY_FILE, SecretKey, SecretValues

            self._secrets = SecretValues(self.stack, SecretKey(self.state_dir / KEY_FILE))
        return self._secrets

    @property
    def providers(self) -> dict[str, Any]:
        if not self._providers:
            from providers.docker_engine import local_engine
            from providers.secret_files import default_root

            hosts = {app.host for app in self.stack.apps.values()} | {"local"}
            for host in sorted(hosts):
                if host == "local":
                    self._providers[host] = local_engine(secrets_root=default_root())
        return self._providers

    def plan(self, state: State | None, *, destroy: bool = False, refresh: bool = True,
             hashes: dict[str, str] | None = None) -> Plan:
        """Diff the stack against state and the hosts. refresh=False contacts no host: the
        hosts are taken to be as state records them. hashes overrides the build contexts'
        content hashes (rollback to images an earlier apply built)."""
        from planner.diff import diff
        from planner.refresh import observe_all, observe_from_state
        from planner.resources import secret_names

        # Every source is read before any host is asked anything; a missing one stops
        # the plan here. Destroy needs no values.
        names = [] if destroy else [n for app in self.stack.apps.values() for n in secret_names(app)]
        digests = self.secrets.digests(names) if names else {}
        if hashes is None:
            hashes = {} if destroy else self.content_hashes()
        if refresh:
            observed = observe_all(self.providers, self.stack.name, state)
        else:
            hosts = {app.host for app in self.stack.apps.values()} | {"local"}
            observed = observe_from_state(state, self.stack.name, hosts)
        plan = diff(self.stack, state, observed, hashes, destroy=destroy, secret_digests=digests)
        if destroy:
            return plan
        from planner.sources import describe

        apps, warnings = describe(self.stack, observed)
        return plan.model_copy(update={"apps": apps, "warnings": [*plan.warnings, *warnings]})

    def content_hashes(self) -> dict[str, str]:
        from planner.refresh import content_hashes

        memo = self._memo()
        try:
            return content_hashes(self.stack, memo)
        finally:
            if memo is not None:
                memo.close()

    def observe(self, state: State | None) -> dict[str, Any]:
        from planner.refresh import observe_all

        return observe_all(self.providers, self.stack.name, state)

    def _memo(self) -> Any:
        """Per-file content hashes, kept between runs; a cache, so failing to open it
        only costs speed."""
        try:
            import diskcache

            return diskcache.Cache(str(self.state_dir / "cache"), size_limit=256 * 2**20)
        except Exception:
            return None

    def apply(self, plan: Plan, state: State, *, parallelism: int, stop: threading.Event, emit: Any,
              config: dict[str, Any] | None = None, note: str | None = None) -> Any:
        from planner.apply import apply_plan

        self.keep_secret_key(plan)
        return apply_plan(plan, self.store, state, self.providers, parallelism=parallelism, stop=stop, emit=emit,
                          config=config, note=note, secrets=self.secrets)

    def keep_secret_key(self, plan: Plan) -> None:
        """Save the digest key before anything made with it is recorded or saved (state,
        a saved plan): a later run must compute the same digests."""
        if any(c.type == "secret" and c.after is not None for c in plan.actions):
            self.secrets.key.save()

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        self.store.close()
