"""Why a state directory cannot be written (read-only, no space left) and reading one
that cannot: the store's error messages and its read-only fallback, kept apart from
the store itself.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

from state.errors import StateError

# Below this much free space an I/O error is taken to be a full disk.
_FULL_BELOW = 256 * 1024


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_bytes(path: Path) -> int | None:
    try:
        stat = os.statvfs(_existing(path))
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _read_only(path: Path) -> bool:
    where = _existing(path)
    try:
        if os.statvfs(where).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(where, os.W_OK)


def why_unwritable(path: Path, err: BaseException) -> str | None:
    """'read-only' or 'full' when that is what a failed open or write means, else None
    (the store is then corrupt or unreadable)."""
    name = getattr(err, "sqlite_errorname", "") or ""
    code = getattr(err, "errno", None)
    text = str(err).lower()
    if name.startswith("SQLITE_FULL") or code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text:
        return "full"
    if name.startswith("SQLITE_READONLY") or code == errno.EROFS or "readonly database" in text:
        return "read-only"
    if _read_only(path):
        return "read-only"
    free = _free_bytes(path)
    if free is not None and free < _FULL_BELOW:
        return "full"
    return None


def cannot_write(path: str, why: str, err: BaseException) -> StateError:
    if why == "full":
        return StateError(f"state store {path} cannot be written: no space left on its disk ({err}). "
                          "Free some space and run again; the stored state was not changed.")
    return StateError(f"state store {path} is read-only ({err}): berth can read it but not change it. "
                      "Make it writable to apply or change state; plan, status and `berth state list/show/pull` "
                      "work as it is.")


class ReadOnlyCache:
    """The diskcache directory read straight from SQLite, opened read-only: what a store
    on a read-only or full disk can still do. Every write raises `refusal`."""

    def __init__(self, path: str, refusal: StateError) -> None:
        import diskcache

        self.refusal = refusal
        self._disk = diskcache.Disk(path)
        db = os.path.join(path, "cache.db")
        errors = []
        for mode in ("mode=ro", "immutable=1"):  # a WAL database on a read-only disk needs immutable
            try:
                self._sql = sqlite3.connect(f"file:{db}?{mode}", uri=True, check_same_thread=False)
                self._sql.execute("SELECT COUNT(*) FROM Cache").fetchone()
                return
            except sqlite3.DatabaseError as err:
                errors.append(err)
        raise errors[-1]

    def get(self, key: str) -> Any:
        row = self._sql.execute("SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1",
                                (key,)).fetchone()
        return None if row is None else self._disk.fetch(row[0], row[1], row[2], False)

    def iterkeys(self) -> Any:
        for key, raw in self._sql.execute("SELECT key, raw FROM Cache ORDER BY key").fetchall():
            yield self._disk.get(key, raw)

    def transact(self) -> Any:
        raise self.refusal

    def close(self) -> None:
        self._sql.close()


class _CloseWithThread:
    """Closes one SQLite connection when it is freed. Kept in the thread-local storage of
    the thread that opened the connection, it is freed, on that thread, when the thread
    ends; the connection itself would not be: CPython's sqlite3 keeps it in a reference
    cycle (its statement cache refers back to it), which only the garbage collector
    breaks, and until then cache.db-wal stays beside cache.db."""

    __slots__ = ("con",)

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __del__(self) -> None:
        try:
            self.con.close()
        except sqlite3.Error:
            pass


_THREAD_CLOSING: type | None = None


def thread_closing_cache(path: str, **settings: Any) -> Any:
    """A diskcache.Cache whose connection in each thread is closed when that thread ends.
    diskcache opens one connection per thread, and its close() closes only the calling
    thread's: the apply's worker threads write state too. Each connection closed is what
    checkpoints SQLite's write-ahead log into cache.db and removes cache.db-wal, so the
    store is one file once berth exits."""
    global _THREAD_CLOSING
    if _THREAD_CLOSING is None:
        import diskcache

        class ThreadClosingCache(diskcache.Cache):
            @property
            def _con(self) -> sqlite3.Connection:
                con = diskcache.Cache._con.fget(self)  # type: ignore[attr-defined]
                closer = getattr(self._local, "closer", None)
                if closer is None or closer.con is not con:
                    self._local.closer = _CloseWithThread(con)
                return con

        _THREAD_CLOSING = ThreadClosingCache
    return _THREAD_CLOSING(path, **settings)
