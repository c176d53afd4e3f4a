"""One command's workspace: the state directory and its store, a provider per host, and
the secret digest key; the planner is handed them as a planner.pipeline.Context.

A state directory keeps one state per stack, in STATE_DIR/stacks/NAME, so that two stack
files beside each other (staging.toml, prod.toml) never share one. A state directory
written by an earlier berth keeps its only state in STATE_DIR/state: that stays the
state of the stack it records, read and written where it is (no migration step).

Providers are connected lazily, so commands that only read state never touch a host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.desired import Stack
from state.store import DiskStore

STATE_DIR = ".berth"
STACKS = "stacks"  # STATE_DIR/stacks/NAME: each stack's store
LEGACY_STORE = "state"  # STATE_DIR/state: the one store of a state directory before stacks/


def state_dir_for(stack_file: Path, override: str | None) -> Path:
    return Path(override).resolve() if override else stack_file.parent / STATE_DIR


def _store_name(stack: str) -> str:
    """A directory name for the stack's store: the name itself (stack names are
    [a-z0-9_-]), shortened with a digest past what a file system takes."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stack) or "_"
    if len(safe) <= 100 and safe not in (".", ".."):
        return safe
    return f"{safe[:80]}-{hashlib.sha256(stack.encode()).hexdigest()[:16]}"


def store_path(state_dir: Path, stack: str) -> Path:
    """Where the stack's state is kept in state_dir: its own STACKS/NAME store, unless the
    single store of an earlier berth (LEGACY_STORE) records this stack, or cannot be read
    (its error is then what the user sees, never a fresh state beside it)."""
    from state.store import recorded_stack

    own = state_dir / STACKS / _store_name(stack)
    legacy = state_dir / LEGACY_STORE
    if own.exists() or not legacy.exists():
        return own
    return legacy if recorded_stack(legacy) in (stack, None) else own


def stores_in(state_dir: Path) -> list[Path]:
    """Every store in state_dir: the earlier single one, then each stack's."""
    stacks = state_dir / STACKS
    found = [state_dir / LEGACY_STORE] if (state_dir / LEGACY_STORE).is_dir() else []
    return found + (sorted(p for p in stacks.iterdir() if p.is_dir()) if stacks.is_dir() else [])


@dataclass
class Workspace:
    stack: Stack
    state_dir: Path
    store: DiskStore = field(init=False)
    _providers: dict[str, Any] = field(default_factory=dict, init=False)
    _secret_key: Any = field(default=None, init=False, repr=False)
    _context: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = DiskStore(store_path(self.state_dir, self.stack.name), stack=self.stack.name)

    @property
    def secret_key(self) -> Any:
        """The key secret digests are made with (planner.secrets.SecretKey), kept in
        STATE_DIR/secrets.key, beside the state store and never in it."""
        if self._secret_key is None:
            from planner.secrets import KEY_FILE, SecretKey

            self._secret_key = SecretKey(self.state_dir / KEY_FILE)
        return self._secret_key

    @property
    def context(self) -> Any:
        """What the planner works with (planner.pipeline.Context), made once per command,
        so each secret value is read once and kept in memory."""
        if self._context is None:
            from planner.pipeline import Context
            from planner.secrets import SecretValues

            secrets = SecretValues(self.stack, self.secret_key)
            self._context = Context(self.stack, self.provider, secrets, cache_dir=self.state_dir / "cache",
                                    stacks_beside=self._stacks_beside)
        return self._context

    def _stacks_beside(self) -> list[str]:
        """The other stacks whose state this state directory holds resources of."""
        from state.errors import StateError

        own = Path(self.store.path).resolve()
        names = []
        for path in stores_in(self.state_dir):
            if path.resolve() == own:
                continue
            store = DiskStore(path)
            try:
                state = store.read()
            except StateError:  # unreadable: its own command says so
                continue
            finally:
                store.close()
            if state is not None and state.resources and state.stack != self.stack.name:
                names.append(state.stack)
        return names

    @property
    def providers(self) -> dict[str, Any]:
        """A provider for local and each [hosts.NAME]; SSH hosts connect on first use."""
        from providers.base import LOCAL_HOST

        for host in (LOCAL_HOST, *self.stack.hosts):
            self.provider(host)
        return self._providers

    def provider(self, host: str) -> Any:
        """The provider of one host, opened on first use; SSH hosts connect lazily."""
        if host not in self._providers:
            from providers import open_provider
            from providers.base import BUILD_HOST

            config = self.stack.hosts.get(host)
            ssh = config.model_dump(exclude={"build_on"}) if config else None  # build_on is the planner's
            self._providers[host] = open_provider(host, ssh,
                                                  builder=lambda: self.provider(BUILD_HOST))
            self._providers[host].build_log_dir = self.state_dir / "logs"  # build-APP-TIMESTAMP.log
        return self._providers[host]

    def close(self) -> None:
        from berth import noop

        noop.closing(self)  # a watched plan's last look at its SSH hosts, on their connections
        self._write_stats()
        for provider in self._providers.values():
            provider.close()
        self.store.close()

    def _write_stats(self) -> None:
        """BERTH_SSH_STATS=FILE: per SSH host, connections and channels opened and image
        bytes sent, as JSON (the fan-out benchmark reads it); with those the no-op fast
        path opened before it fell back to this full plan."""
        import json
        import os

        path = os.environ.get("BERTH_SSH_STATS")
        if path:
            from berth import noop

            stats = {h: p.stats() for h, p in self._providers.items() if hasattr(p, "stats")}
            for host, conn in noop.DIALED.items():
                for key, count in conn.stats.items():
                    stats.setdefault(host, {})[key] = stats.get(host, {}).get(key, 0) + count
            with open(path, "w") as f:
                json.dump(stats, f, indent=2)
