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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from state.canonical import canonical_json, sha256_hex
from state.errors import CorruptLockError, LockLostError, StateError
from state.model import State
from state.storage import ReadOnlyCache, cannot_write, thread_closing_cache, why_unwritable

# berth/noop.py reads these two rows straight from the SQLite file (diskcache's Cache
# table: key, raw, filename, value), without diskcache; tests/unit/berth/test_noop.py
# holds the two to the same layout.
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

    def read(self, *, recovering: bool = False) -> State | None: ...
    def write(self, state: State, *, note: str = "", config: dict[str, Any] | None = None,
              recovering: bool = False, run: str | None = None) -> State: ...
    def history(self) -> list[dict[str, Any]]: ...
    def config(self, digest: str) -> dict[str, Any] | None: ...
    def latest_config(self) -> str | None: ...
    def add_lock(self, record: dict[str, Any]) -> bool: ...
    def get_lock(self) -> dict[str, Any] | None: ...
    def replace_lock(self, expected_id: str, record: dict[str, Any]) -> bool: ...
    def delete_lock(self, lock_id: str | None = None) -> bool: ...
    def lock_text(self) -> str | None: ...
    def expect_lock(self, lock_id: str | None) -> None: ...
    def close(self) -> None: ...


class DiskStore:
    """State kept in a diskcache directory. Opening a directory that does not exist
    creates nothing until the first write or lock, so `plan` leaves no trace.

    `stack`: the stack this store belongs to. A state recorded for another stack is
    never read as this one's, nor written over: a plan made from it would change that
    stack's resources."""

    def __init__(self, path: str | os.PathLike[str], stack: str | None = None) -> None:
        self.path = str(path)
        self.stack = stack
        self._cache: Any = None
        self._expected_lock: str | None = None  # set while this store's owner holds the lock
        # The text this store last wrote and its serial and stack: a write that finds exactly
        # that text current needs not parse it again (an apply writes once per step, and
        # parsing the whole state each time made a cold apply's writes quadratic).
        self._written: tuple[str, int, str] | None = None

    def _open(self, create: bool) -> Any:
        if self._cache is None:
            directory = Path(self.path)
            if not create and not directory.exists():
                return None
            db = directory / "cache.db"
            if db.is_file() and db.stat().st_size == 0:
                # SQLite would take an empty file for a new database: the state and its history
                # would silently start again from nothing.
                raise StateError(
                    f"state store {self.path} is empty (cache.db is 0 bytes): its state and history are "
                    "gone, and berth will not start a new state over them. Restore a saved copy: move the "
                    "directory aside, then `berth state push FILE` (from `berth state pull`), and adopt "
                    "containers still running with `berth import`.")
            try:
                self._cache = thread_closing_cache(self.path, eviction_policy="none", size_limit=2**62)
            except (sqlite3.DatabaseError, OSError) as err:
                why = why_unwritable(directory, err)
                if why is None:
                    raise StateError(
                        f"state store {self.path} is corrupt or unreadable ({err}); berth left it as it is. "
                        "Move the directory aside and restore a saved copy with `berth state push FILE`."
                    ) from None
                refusal = cannot_write(self.path, why, err)
                if not db.is_file():
                    if create:
                        raise refusal from None
                    return None  # never written, and cannot be: no state
                try:
                    self._cache = ReadOnlyCache(self.path, refusal)
                except sqlite3.DatabaseError as err2:
                    raise StateError(f"state store {self.path} is {why} and cannot be read either ({err2}); "
                                     "berth left it as it is.") from None
        if create and isinstance(self._cache, ReadOnlyCache):
            raise self._cache.refusal
        return self._cache

    def _get(self, key: str, create: bool = False) -> Any:
        cache = self._open(create)
        if cache is None:
            return None
        try:
            return cache.get(key)
        except (sqlite3.DatabaseError, OSError) as err:
            raise StateError(f"state store {self.path} is corrupt or unreadable ({err}); berth left it as it is.") from None

    def read(self, *, recovering: bool = False) -> State | None:
        """The current state; None for a store never written. A store whose current state
        is gone or corrupt while history is kept raises, never reads as a new stack;
        recovering=True (a `state push --force` restoring it) reads that as None."""
        text = self._get(STATE_KEY)
        if text is None:
            if recovering:
                return None
            self._refuse_if_history()
            return None
        try:
            state = self._parse(text)
        except StateError:
            if recovering:
                return None
            raise
        self._check_stack(state.stack)
        return state

    def _check_stack(self, recorded: str) -> None:
        if self.stack and recorded and recorded != self.stack:
            raise StateError(
                f"state in {self.path} is the state of stack {recorded!r}, not of {self.stack!r}: berth plans no "
                f"change to another stack's resources. Run berth with {recorded!r}'s stack file (-f), or "
                "keep each stack's state in its own --state-dir.")

    def _parse(self, text: Any) -> State:
        problem = None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or "lineage" not in data or "serial" not in data:
                problem = "it has no lineage or serial"
            else:
                return State.model_validate(data)
        except (ValueError, TypeError) as err:
            problem = f"not JSON: {err}"
        except ValidationError as err:
            problem = f"{err.error_count()} problems, first: {err.errors()[0]['msg']}"
        raise StateError(
            f"state in {self.path} is corrupt ({problem}); it was not changed. Restore it with "
            "`berth state push --force FILE` (see `berth state history` and `berth state pull --serial N`) "
            "or move the directory aside.")

    def _last_history_serial(self) -> tuple[int, int] | None:
        """(count, last serial) of the history kept, None when there is none."""
        cache = self._open(create=False)
        if cache is None:
            return None
        try:
            serials = [int(str(k)[len(HISTORY_PREFIX):]) for k in cache.iterkeys() if str(k).startswith(HISTORY_PREFIX)]
        except (sqlite3.DatabaseError, OSError, ValueError) as err:
            raise StateError(f"state history in {self.path} is unreadable: {err}") from None
        return (len(serials), max(serials)) if serials else None

    def _refuse_if_history(self) -> None:
        kept = self._last_history_serial()
        if kept is None:
            return
        count, last = kept
        raise StateError(
            f"state store {self.path} has no current state, but its history keeps {count} version(s), the latest "
            f"serial {last}: berth will not start a new state over them. See them with `berth state history`, "
            f"restore one with `berth state pull --serial {last} > saved.json` then `berth state push --force "
            "saved.json`, and adopt containers still running with `berth import`.")

    def write(self, state: State, *, note: str = "", config: dict[str, Any] | None = None,
              recovering: bool = False, run: str | None = None) -> State:
        """Store `state` as the next serial, keeping the previous one in history. `config`
        is the desired configuration an apply applied (secrets as digests only): the
        history entry names it by digest, and it is stored once however many serials share it.
        `run` names the apply (or refresh, rollback) the version belongs to: one run writes
        a version per finished step, and `state history` shows them as one.
        History is append-only: a serial already in it is never written again. A current
        state gone or corrupt with history kept is refused unless `recovering` (state push
        --force), which writes after the last serial in history."""
        self._check_stack(state.stack)
        cache = self._open(create=True)
        try:
            with cache.transact():
                self._check_lock(cache)
                current = cache.get(STATE_KEY)
                previous = None
                if current is not None and self._written is not None and current == self._written[0]:
                    previous = self._written[1]
                    self._check_stack(self._written[2])
                elif current is not None:
                    try:
                        parsed = self._parse(current)
                        previous = parsed.serial
                    except StateError:
                        if not recovering:
                            raise
                    else:
                        self._check_stack(parsed.stack)
                if previous is None:
                    kept = self._last_history_serial()
                    if kept is not None and not recovering:
                        self._refuse_if_history()
                    previous = kept[1] if kept else None
                # Never backwards; a pushed state may carry a higher serial and keeps it.
                serial = max(previous + 1, state.serial) if previous else max(state.serial, 1)
                stored = state.model_copy(update={"serial": serial})
                text = stored.model_dump_json()
                cache.set(STATE_KEY, text)
                entry = {"serial": serial, "time": time.time(), "who": who(), "note": note}
                if run:
                    entry["run"] = run
                if config is not None:
                    config_text = canonical_json(config)
                    digest = sha256_hex(config_text)
                    cache.add(f"{CONFIG_PREFIX}{digest}", config_text)
                    cache.set(LATEST_CONFIG_KEY, digest)
                    entry["config"] = digest
                if not cache.add(f"{HISTORY_PREFIX}{serial:010d}", json.dumps(entry | {"state": text})):
                    raise StateError(f"state store {self.path} already has a version with serial {serial} in its "
                                     "history; berth does not overwrite history, and wrote nothing.")
        except (sqlite3.DatabaseError, OSError) as err:
            why = why_unwritable(Path(self.path), err)
            if why is not None:
                raise cannot_write(self.path, why, err) from None
            raise StateError(f"state store {self.path} could not be written: {err}") from None
        self._written = (text, serial, stored.stack)
        return stored

    def expect_lock(self, lock_id: str | None) -> None:
        """While set, every write first checks that the lock is still `lock_id`: a berth
        whose lock was force-unlocked writes no more state over another's."""
        self._expected_lock = lock_id

    def _check_lock(self, cache: Any) -> None:
        if self._expected_lock is None:
            return
        text = cache.get(LOCK_KEY)
        try:
            holder = json.loads(text) if text else None
        except ValueError:
            holder = None
        if not isinstance(holder, dict) or holder.get("id") != self._expected_lock:
            now = f"it is now held by {describe(holder)}" if isinstance(holder, dict) else "it was removed"
            raise LockLostError(
                f"this berth no longer holds the lock on {self.path} ({now}, by `berth force-unlock`?), "
                "so it writes no more state. Run `berth plan` when the other berth is done.")

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
        cache = self._open(create=True)
        try:
            return bool(cache.add(LOCK_KEY, json.dumps(record)))
        except (sqlite3.DatabaseError, OSError) as err:
            why = why_unwritable(Path(self.path), err)
            if why is not None:
                raise cannot_write(self.path, why, err) from None
            raise StateError(f"state store {self.path} cannot be locked: {err}") from None

    def lock_text(self) -> str | None:
        """The lock record as stored, even when it is not a valid record."""
        text = self._get(LOCK_KEY)
        return None if text is None else str(text)

    def get_lock(self) -> dict[str, Any] | None:
        text = self._get(LOCK_KEY)
        if not text:
            return None
        try:
            record = json.loads(text)
            problem = None if isinstance(record, dict) and record.get("id") else "no lock ID in it"
        except ValueError as err:
            problem = str(err)
        if problem:
            raise CorruptLockError(f"the lock record in {self.path} is corrupt ({problem}): no berth can hold it. "
                                   "Clear it with `berth force-unlock`.")
        return record

    def replace_lock(self, expected_id: str, record: dict[str, Any]) -> bool:
        cache = self._open(create=True)
        with cache.transact():
            text = cache.get(LOCK_KEY)
            if text is not None and _lock_id(text) != expected_id:
                return False
            cache.set(LOCK_KEY, json.dumps(record))
            return True

    def delete_lock(self, lock_id: str | None = None) -> bool:
        cache = self._open(create=False)
        if cache is None:
            return False
        with cache.transact():
            text = cache.get(LOCK_KEY)
            if text is None or (lock_id is not None and _lock_id(text) != lock_id):
                return False
            cache.delete(LOCK_KEY)
            return True

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def recorded_stack(path: str | os.PathLike[str]) -> str | None:
    """The stack whose state the store at `path` keeps: its current state's, else (that
    gone) its latest history entry's; "" when it keeps neither (nothing written yet);
    None when it cannot be read (empty, corrupt), so that it is nobody else's either."""
    store = DiskStore(path)
    try:
        state = store._get(STATE_KEY)
        if state is None:
            entries = store.history()
            if not entries:
                return ""
            return json.loads(entries[-1]["state"]).get("stack") or None
        return json.loads(state).get("stack") or None
    except (StateError, ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        store.close()


def _lock_id(text: str) -> str | None:
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record.get("id") if isinstance(record, dict) else None


def describe(record: dict[str, Any]) -> str:
    """A lock record as messages name its holder."""
    since = datetime.fromtimestamp(record.get("since", 0), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"{record.get('who', '?')} (pid {record.get('pid', '?')}) since {since}, "
        f"for {record.get('operation', '?')}, lock ID {record.get('id', '?')}"
    )
