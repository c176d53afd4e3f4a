"""The state store: the current State, its earlier versions, and the lock record.

The default store is a diskcache directory (SQLite underneath, eviction off) in `.berth/`
beside the stack file. Every write is one transaction: a reader sees the old state or
the new one, never half of either. The store is an interface (StateStore) so a shared
backend for teams can follow.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from state.errors import StateError
from state.canonical import canonical_json, sha256_hex
from state.model import State

STATE_KEY = "state"
LOCK_KEY = "lock"
HISTORY_PREFIX = "history/"
CONFIG_PREFIX = "config/"  # desired configurations applied, by content hash: stored once each
LATEST_CONFIG_KEY = "config-latest"  # digest of the last one recorded, so no-op applies need not scan history


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class StateStore(Protocol):
    path: str

    def read(self) -> State | None: ...
    def write(self, state: State, *, note: str = "", config: dict[str, Any] | None = None) -> State: ...
    def history(self) -> list[dict[str, Any]]: ...
    def config(self, digest: str) -> dict[str, Any] | None: ...
    def latest_config(self) -> str | None: ...
    def add_lock(self, record: dict[str, Any]) -> bool: ...
    def get_lock(self) -> dict[str, Any] | None: ...
    def replace_lock(self, expected_id: str, record: dict[str, Any]) -> bool: ...
    def delete_lock(self, lock_id: str | None = None) -> bool: ...
    def close(self) -> None: ...


class DiskStore:
    """State kept in a diskcache directory. Opening a directory that does not exist
    creates nothing until the first write or lock, so `plan` leaves no trace."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._cache: Any = None

    def _open(self, create: bool) -> Any:
        if self._cache is None:
            if not create and not Path(self.path).exists():
                return None
            import diskcache

            try:
                self._cache = diskcache.Cache(self.path, eviction_policy="none", size_limit=2**62)
            except (sqlite3.DatabaseError, OSError) as err:
                raise StateError(
                    f"state store {self.path} is corrupt or unreadable ({err}); berth left it as it is. "
                    "Move the directory aside and restore a saved copy with `berth state push FILE`."
                ) from None
        return self._cache

    def _get(self, key: str, create: bool = False) -> Any:
        cache = self._open(create)
        if cache is None:
            return None
        try:
            return cache.get(key)
        except (sqlite3.DatabaseError, OSError) as err:
            raise StateError(f"state store {self.path} is corrupt or unreadable ({err}); berth left it as it is.") from None

    def read(self) -> State | None:
        text = self._get(STATE_KEY)
        if text is None:
            return None
        try:
            return State.model_validate_json(text)
        except ValidationError as err:
            raise StateError(
                f"state in {self.path} is corrupt ({err.error_count()} problems, first: "
                f"{err.errors()[0]['msg']}); it was not changed. Restore it with "
                "`berth state push` or move the directory aside."
            ) from None

    def write(self, state: State, *, note: str = "", config: dict[str, Any] | None = None) -> State:
        """Store `state` as the next serial, keeping the previous one in history. `config`
        is the desired configuration an apply applied (secrets as digests only): the
        history entry names it by digest, and it is stored once however many serials share it."""
        cache = self._open(create=True)
        try:
            with cache.transact():
                current = cache.get(STATE_KEY)
                # Never backwards; a pushed state may carry a higher serial and keeps it.
                serial = max(json.loads(current)["serial"] + 1, state.serial) if current else max(state.serial, 1)
                stored = state.model_copy(update={"serial": serial})
                text = stored.model_dump_json()
                cache.set(STATE_KEY, text)
                entry = {"serial": serial, "time": time.time(), "who": who(), "note": note}
                if config is not None:
                    config_text = canonical_json(config)
                    digest = sha256_hex(config_text)
                    cache.add(f"{CONFIG_PREFIX}{digest}", config_text)
                    cache.set(LATEST_CONFIG_KEY, digest)
                    entry["config"] = digest
                cache.set(f"{HISTORY_PREFIX}{serial:010d}", json.dumps(entry | {"state": text}))
        except (sqlite3.DatabaseError, OSError) as err:
            raise StateError(f"state store {self.path} could not be written: {err}") from None
        return stored

    def history(self) -> list[dict[str, Any]]:
        """Every stored version, oldest first: serial, time, who, note, config (a digest,
        when an apply wrote it) and state (the JSON text of that version)."""
        cache = self._open(create=False)
        if cache is None:
            return []
        try:
            keys = sorted(k for k in cache.iterkeys() if str(k).startswith(HISTORY_PREFIX))
            return [json.loads(cache.get(k)) for k in keys]
        except (sqlite3.DatabaseError, OSError, ValueError, TypeError) as err:
            raise StateError(f"state history in {self.path} is unreadable: {err}") from None

    def latest_config(self) -> str | None:
        """Digest of the configuration the last apply recorded; None when none did."""
        digest = self._get(LATEST_CONFIG_KEY)
        if digest is None and self._get(STATE_KEY) is not None:
            from state.history import latest_config_digest

            return latest_config_digest(self.history())  # a store written before the key existed
        return digest

    def config(self, digest: str) -> dict[str, Any] | None:
        """A recorded desired configuration by the digest a history entry names."""
        text = self._get(f"{CONFIG_PREFIX}{digest}")
        try:
            return json.loads(text) if text is not None else None
        except ValueError as err:
            raise StateError(f"configuration {digest[:12]} in {self.path} is corrupt: {err}") from None

    # The lock record lives beside the state so that one transaction can test and set it.
    def add_lock(self, record: dict[str, Any]) -> bool:
        try:
            return bool(self._open(create=True).add(LOCK_KEY, json.dumps(record)))
        except (sqlite3.DatabaseError, OSError) as err:
            raise StateError(f"state store {self.path} cannot be locked: {err}") from None

    def get_lock(self) -> dict[str, Any] | None:
        text = self._get(LOCK_KEY)
        try:
            return json.loads(text) if text else None
        except ValueError as err:
            raise StateError(f"the lock record in {self.path} is corrupt: {err}") from None

    def replace_lock(self, expected_id: str, record: dict[str, Any]) -> bool:
        cache = self._open(create=True)
        with cache.transact():
            text = cache.get(LOCK_KEY)
            if text is not None and json.loads(text).get("id") != expected_id:
                return False
            cache.set(LOCK_KEY, json.dumps(record))
            return True

    def delete_lock(self, lock_id: str | None = None) -> bool:
        cache = self._open(create=False)
        if cache is None:
            return False
        with cache.transact():
            text = cache.get(LOCK_KEY)
            if text is None or (lock_id is not None and json.loads(text).get("id") != lock_id):
                return False
            cache.delete(LOCK_KEY)
            return True

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
