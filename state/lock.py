"""The state lock: one apply at a time per state, with a record naming its holder.

A lock whose holder process is gone from this machine is taken over with a warning, so
a crash or kill -9 never needs a manual unlock; a lock held by a live process, or by
another machine, is refused with the holder's details and the force-unlock command.
While held, the store checks the lock is still this one before every write, so a berth
whose lock was force-unlocked writes no more state.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from state.errors import LockError
from state.store import StateStore, describe, who


def _process_start(pid: int) -> str | None:
    """The kernel's start time of pid, so a reused PID is not mistaken for the holder."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(record: dict[str, Any]) -> bool:
    pid = int(record.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = record.get("pid_start")
    return started is None or _process_start(pid) in (None, started)


def held_here_by_a_live_process(record: dict[str, Any]) -> bool:
    """True when the holder runs on this machine and its process is still alive."""
    return record.get("host") == socket.gethostname() and _alive(record)


@dataclass
class Lock:
    store: StateStore
    record: dict[str, Any]
    taken_over: dict[str, Any] | None = None  # the stale record this lock replaced

    @property
    def id(self) -> str:
        return self.record["id"]

    def release(self) -> None:
        self.store.expect_lock(None)
        self.store.delete_lock(self.id)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(store: StateStore, operation: str) -> Lock:
    pid = os.getpid()
    record = {
        "id": str(uuid.uuid4()),
        "pid": pid,
        "pid_start": _process_start(pid),
        "host": socket.gethostname(),
        "who": who(),
        "since": time.time(),
        "operation": operation,
    }
    if store.add_lock(record):
        store.expect_lock(record["id"])
        return Lock(store, record)
    holder = store.get_lock()
    if holder is None:  # released between our add and get
        return acquire(store, operation)
    if holder.get("host") == record["host"] and not _alive(holder):
        if store.replace_lock(holder["id"], record):
            store.expect_lock(record["id"])
            return Lock(store, record, taken_over=holder)
        return acquire(store, operation)
    raise LockError(
        f"state {store.path} is locked by {describe(holder)}. If no berth is running there, "
        f"run `berth force-unlock {holder.get('id')}`."
    )
