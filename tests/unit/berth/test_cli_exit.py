"""The state store's SQLite connections close without the interpreter's last garbage
collection: CPython's sqlite3 keeps each connection in a reference cycle, and diskcache
opens one per thread and closes only the caller's, so a worker thread's is closed as that
thread ends (state.storage.thread_closing_cache)."""

from __future__ import annotations

import gc
from pathlib import Path


def test_a_connection_a_worker_thread_opened_is_closed_when_the_thread_ends(tmp_path: Path):
    """The state store's connections must close without waiting for a garbage collection.
    A write from a worker thread (as an apply's steps write state)
    leaves no write-ahead log once the thread has ended and the main thread closed its
    own, and the store holds what was written."""
    import threading

    from state.storage import thread_closing_cache

    cache = thread_closing_cache(str(tmp_path / "store"))
    gc.disable()  # only the thread's end may close its connection here
    try:
        worker = threading.Thread(target=lambda: cache.set("state", "written by a worker"))
        worker.start()
        worker.join()
        assert cache.get("state") == "written by a worker"
        cache.close()
        assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["cache.db"]
    finally:
        gc.enable()
