"""The console script leaves its heap frozen for the exit (berth.cli._before_exit): the
interpreter's last garbage collection would walk every object the command made and every
module it imported, 0.1 s of CPU after the command is done. Atexit handlers still run,
and a main() called in-process (as tests do) freezes nothing."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STACK = '[stack]\nname = "frozen"\n\n[apps.web]\nimage = "busybox:1.36"\nport = 8080\nhost_port = 18123\n'


def test_the_console_script_freezes_the_heap_before_exit_and_atexit_still_runs(tmp_path: Path):
    (tmp_path / "berth.toml").write_text(STACK)
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, file=sys.stderr))\n"
            "from berth.cli import main\n"
            "sys.argv = ['berth', 'validate']\n"
            "sys.exit(main())\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert "frozen True" in done.stderr


def test_main_called_in_process_freezes_nothing(tmp_path: Path, monkeypatch):
    from berth.cli import main

    (tmp_path / "berth.toml").write_text(STACK)
    monkeypatch.chdir(tmp_path)
    before = gc.get_freeze_count()
    assert main(["validate"]) == 0
    assert gc.get_freeze_count() == before


def test_a_connection_a_worker_thread_opened_is_closed_when_the_thread_ends(tmp_path: Path):
    """The state store's connections must close without the exit's garbage collection:
    the heap is frozen. A write from a worker thread (as an apply's steps write state)
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
