"""Issue 17: nothing berth does loses state. A store that cannot be read, or whose current
state is gone, is an error and never a fresh start; history is append-only; force-unlock
needs the lock ID and spares a live holder; a corrupt lock record can be cleared; a
read-only or full state directory is called what it is, and reading still works."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from berth.cli import main
from state import lock
from state.errors import StateError
from state.model import State
from state.store import DiskStore


def made(path: Path, versions: int = 2) -> DiskStore:
    store = DiskStore(path)
    for n in range(versions):
        store.write(State(stack="s"), note=f"v{n + 1}")
    store.close()
    return DiskStore(path)


def history_notes(path: Path) -> list[tuple[int, str]]:
    store = DiskStore(path)
    try:
        return [(e["serial"], e["note"]) for e in store.history()]
    finally:
        store.close()


def berth(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--no-color"])
    out, err = capsys.readouterr()
    return code, out, err


# -- item 2: a lost state is an error, never a fresh start; history is append-only ------


def test_a_zero_byte_store_is_an_error_never_a_fresh_start(tmp_path: Path) -> None:
    made(tmp_path / "state").close()
    db = tmp_path / "state" / "cache.db"
    os.truncate(db, 0)
    store = DiskStore(tmp_path / "state")
    for attempt in (store.read, store.history, lambda: store.write(State(stack="s")),
                    lambda: store.add_lock({"id": "x"})):
        with pytest.raises(StateError) as caught:
            attempt()
        assert str(tmp_path / "state") in str(caught.value) and "0 bytes" in str(caught.value)
    store.close()
    assert db.stat().st_size == 0  # left as it was: not made a new, empty store


def test_a_deleted_current_state_with_history_left_is_an_error_naming_what_is_left(tmp_path: Path) -> None:
    store = made(tmp_path / "state")
    store._open(create=True).delete("state")
    with pytest.raises(StateError) as caught:
        store.read()
    text = str(caught.value)
    assert str(tmp_path / "state") in text and "serial 2" in text
    for hint in ("berth state history", "berth state pull --serial 2", "berth state push --force", "berth import"):
        assert hint in text, text
    store.close()


def test_an_empty_object_is_a_corrupt_state_not_a_new_one(tmp_path: Path) -> None:
    store = made(tmp_path / "state")
    store._open(create=True).set("state", "{}")
    with pytest.raises(StateError, match="corrupt"):
        store.read()
    with pytest.raises(StateError, match="corrupt"):
        store.write(State(stack="s"))
    store.close()
    assert history_notes(tmp_path / "state") == [(1, "v1"), (2, "v2")]


def test_history_is_append_only_even_when_the_current_state_is_gone(tmp_path: Path) -> None:
    store = made(tmp_path / "state")
    store._open(create=True).delete("state")
    with pytest.raises(StateError):
        store.write(State(stack="s"), note="fresh start")  # an apply that read nothing
    assert store.read(recovering=True) is None  # what `state push --force` restores over
    restored = store.write(State(stack="s"), note="restored", recovering=True)
    store.close()
    assert restored.serial == 3
    assert history_notes(tmp_path / "state") == [(1, "v1"), (2, "v2"), (3, "restored")]


def test_state_pull_serial_then_push_force_restores_a_lost_current_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = made(tmp_path / "state")
    store._open(create=True).delete("state")
    store.close()
    code, _, err = berth(capsys, "state", "list", "--state-dir", str(tmp_path))
    assert code == 1 and "has no current state" in err and "Traceback" not in err
    code, out, _ = berth(capsys, "state", "pull", "--serial", "2", "--state-dir", str(tmp_path))
    assert code == 0 and json.loads(out)["serial"] == 2
    (tmp_path / "saved.json").write_text(out)
    code, out, err = berth(capsys, "state", "push", "--force", str(tmp_path / "saved.json"), "--state-dir", str(tmp_path))
    assert code == 0, err
    assert [s for s, _ in history_notes(tmp_path / "state")] == [1, 2, 3]
    assert berth(capsys, "state", "list", "--state-dir", str(tmp_path))[0] == 0


# -- items 3 and 4: force-unlock ------------------------------------------------------------


def record(pid: int, **more: object) -> dict[str, object]:
    import socket

    return {"id": "lock-1", "pid": pid, "pid_start": lock._process_start(pid), "host": socket.gethostname(),
            "who": "me@here", "since": time.time(), "operation": "apply"} | more


def locked(tmp_path: Path, rec: dict[str, object] | str) -> None:
    store = DiskStore(tmp_path / "state")
    if isinstance(rec, str):
        store._open(create=True).set("lock", rec)
    else:
        assert store.add_lock(rec)
    store.close()


def lock_text(tmp_path: Path) -> str | None:
    store = DiskStore(tmp_path / "state")
    try:
        return store._open(create=True).get("lock")
    finally:
        store.close()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_force_unlock_without_an_id_removes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked(tmp_path, record(dead_pid()))
    code, _, err = berth(capsys, "force-unlock", "--state-dir", str(tmp_path))
    assert code == 1 and "needs the lock ID" in err and "berth force-unlock lock-1" in err
    assert lock_text(tmp_path) is not None


def test_force_unlock_refuses_a_live_holder_on_this_machine_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked(tmp_path, record(os.getpid()))  # this very process: alive
    code, _, err = berth(capsys, "force-unlock", "lock-1", "--state-dir", str(tmp_path))
    assert code == 1 and "still running" in err and "--force" in err and "Traceback" not in err
    assert lock_text(tmp_path) is not None
    code, out, _ = berth(capsys, "force-unlock", "lock-1", "--force", "--state-dir", str(tmp_path))
    assert code == 0 and "Removed the lock" in out
    assert lock_text(tmp_path) is None


def test_force_unlock_removes_the_lock_of_a_holder_that_is_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked(tmp_path, record(dead_pid()))
    code, out, _ = berth(capsys, "force-unlock", "lock-1", "--state-dir", str(tmp_path))
    assert code == 0 and "Removed the lock" in out and lock_text(tmp_path) is None


def test_a_corrupt_lock_record_is_cleared_by_force_unlock_saying_what_it_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made(tmp_path / "state").close()
    locked(tmp_path, "{not json")
    store = DiskStore(tmp_path / "state")
    with pytest.raises(StateError) as caught:
        lock.acquire(store, "apply")
    store.close()
    assert "corrupt" in str(caught.value) and "berth force-unlock" in str(caught.value)
    code, out, err = berth(capsys, "force-unlock", "--state-dir", str(tmp_path))
    assert code == 0, err
    assert "Removed a corrupt lock record" in out and "{not json" in out
    assert lock_text(tmp_path) is None
    store = DiskStore(tmp_path / "state")
    with lock.acquire(store, "apply"):
        pass
    store.close()


def test_an_apply_whose_lock_was_removed_writes_no_more_state(tmp_path: Path) -> None:
    store = made(tmp_path / "state")
    other = DiskStore(tmp_path / "state")
    with lock.acquire(store, "apply") as held:
        store.write(State(stack="s"), note="mine")
        assert other.delete_lock(held.id)  # force-unlock from another terminal
        with pytest.raises(StateError, match="no longer holds"):
            store.write(State(stack="s"), note="after")
    other.close()
    store.close()
    assert [n for _, n in history_notes(tmp_path / "state")] == ["v1", "v2", "mine"]


# -- item 6: read-only and full state directories --------------------------------------------


@contextlib.contextmanager
def read_only(directory: Path):
    """directory made read-only for this process: a read-only bind mount when root (who
    ignores permission bits), else permission bits."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root without mount rights: cannot make {directory} read-only ({mounted.stderr.decode().strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True, capture_output=True)


def test_a_read_only_state_directory_is_read_and_called_read_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from state.model import ResourceState

    big = {f"app.a{i}.image@local": ResourceState(address=f"app.a{i}.image@local", type="image", host="local",
                                                 attributes={"note": "x" * 100}) for i in range(400)}
    store = DiskStore(tmp_path / "state")
    store.write(State(stack="s"), note="v1")
    store.write(State(stack="s", resources=big), note="v2")  # over diskcache's 32 KB: kept in a file
    store.close()
    with read_only(tmp_path):
        store = DiskStore(tmp_path / "state")
        assert store.read().serial == 2 and len(store.read().resources) == 400
        assert len(store.history()) == 2 and store.get_lock() is None
        for attempt in (lambda: store.write(State(stack="s")), lambda: lock.acquire(store, "apply")):
            with pytest.raises(StateError) as caught:
                attempt()
            text = str(caught.value)
            assert "read-only" in text and str(tmp_path / "state") in text and "corrupt" not in text, text
        store.close()
        assert berth(capsys, "state", "list", "--state-dir", str(tmp_path))[0] == 0
        code, out, err = berth(capsys, "state", "pull", "--state-dir", str(tmp_path))
        assert code == 0 and json.loads(out)["serial"] == 2, err
        code, _, err = berth(capsys, "state", "rm", "app.x", "--state-dir", str(tmp_path))
        assert code == 1 and "read-only" in err and "corrupt" not in err


def test_a_full_disk_is_called_full_not_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diskcache

    store = made(tmp_path / "state")

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(diskcache.Cache, "set", full)
    with pytest.raises(StateError) as caught:
        store.write(State(stack="s"))
    store.close()
    text = str(caught.value)
    assert "no space left" in text and str(tmp_path / "state") in text and "corrupt" not in text, text


def test_a_disk_io_error_on_a_disk_with_no_space_is_called_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diskcache

    import state.storage

    made(tmp_path / "state").close()

    def io_error(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(diskcache.Cache, "__init__", io_error)
    monkeypatch.setattr(state.storage, "_free_bytes", lambda path: 0)
    store = DiskStore(tmp_path / "state")
    assert store.read().serial == 2  # read through the read-only path
    with pytest.raises(StateError, match="no space left"):
        store.write(State(stack="s"))
    store.close()
