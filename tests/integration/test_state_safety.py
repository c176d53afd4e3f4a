"""Issue 17 end to end, through the real `berth` against the real Docker engine: a lost
state is never a fresh start, force-unlock spares a live apply, a read-only state
directory is still read, and `berth logs` hides secret values."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time

import diskcache
import pytest

STACK = """
[stack]
name = "{stack}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "v1" }
"""

SECRET_STACK = """
[stack]
name = "{stack}"

[secrets.token]
env = "S17_TOKEN"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
secret_env = { TOKEN = "token" }
"""


def ids(project) -> dict[str, str]:
    return {c.labels["berth.address"]: c.id for c in project.containers()}


def refused(result, *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr and "internal error" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def test_a_truncated_store_is_an_error_and_nothing_is_recreated(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    db = project.path / ".berth" / "stacks" / project.stack / "cache.db"
    os.truncate(db, 0)
    for args in (("plan",), ("apply", "--auto-approve"), ("state", "list"), ("refresh",)):
        refused(project.berth(*args, check=False), str(db.parent), "0 bytes")
    assert db.stat().st_size == 0 and ids(project) == before


def test_a_deleted_current_state_is_an_error_until_restored_from_history(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    project.write(STACK.replace('"v1"', '"v2"'))
    project.berth("apply", "--auto-approve")
    before = ids(project)
    store = project.path / ".berth" / "stacks" / project.stack
    cache = diskcache.Cache(str(store))
    cache.delete("state")
    cache.close()
    for args in (("plan",), ("apply", "--auto-approve")):
        refused(project.berth(*args, check=False), str(store), "has no current state", "berth state history",
                "berth import")
    assert ids(project) == before  # nothing created beside the running container
    history = json.loads(project.berth("state", "history", "--json").stdout)["versions"]
    last = history[-1]["serial"]
    saved = project.berth("state", "pull", "--serial", str(last)).stdout
    (project.path / "saved.json").write_text(saved)
    project.berth("state", "push", "--force", "saved.json")
    after = json.loads(project.berth("state", "history", "--json").stdout)["versions"]
    assert [v["serial"] for v in after] == [v["serial"] for v in history] + [last + 1]  # appended
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_force_unlock_needs_the_id_and_spares_a_live_apply_unless_forced(project):
    project.copy_context("httpd")
    project.write(STACK.replace('env = { MESSAGE = "v1" }', 'env = { MESSAGE = "v1", READY_DELAY = "6" }'))
    proc = subprocess.Popen(project.argv("apply", "--auto-approve"), cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "Waiting for readiness" in line:
                break
        bare = project.berth("force-unlock", check=False)
        refused(bare, "needs the lock ID")
        lock_id = bare.stderr.split("berth force-unlock ")[1].split("`")[0]
        refused(project.berth("force-unlock", lock_id, check=False), "still running on this machine", "--force")
        refused(project.berth("state", "rm", "app.web", check=False), "is locked by")  # still held
        assert "Removed the lock" in project.berth("force-unlock", lock_id, "--force").stdout
        seen.extend(proc.stdout)
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
        proc.wait()
    assert "no longer holds the lock" in "".join(seen), "".join(seen)


@contextlib.contextmanager
def read_only(directory):
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
        pytest.skip(f"root without mount rights: cannot make {directory} read-only")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True, capture_output=True)


def test_a_read_only_state_directory_still_plans_and_reads(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    with read_only(project.path / ".berth"):
        for args in (("plan", "--refresh=false"), ("plan",), ("state", "list"),
                     ("state", "show", "app.web.container[0]@local"), ("state", "pull"), ("status",)):
            result = project.berth(*args, check=False)
            assert result.returncode == 0, (args, result.stderr)
        assert "app.web.container[0]@local" in project.berth("state", "list").stdout
        project.write(STACK.replace('"v1"', '"v2"'))
        refused(project.berth("apply", "--auto-approve", check=False), "read-only")
        assert "corrupt" not in project.berth("apply", "--auto-approve", check=False).stderr


def test_logs_hide_secret_values_as_readiness_failures_do(project):
    project.copy_context("httpd")
    project.write(SECRET_STACK)
    value = "s17-" + os.urandom(8).hex()
    env = {"S17_TOKEN": value}
    project.berth("apply", "--auto-approve", env=env)
    assert project.get(project.ports[0], f"/echo/{value}")[0] == 404  # httpd logs the URL
    deadline = time.monotonic() + 10
    logs = ""
    while "/echo/" not in logs and time.monotonic() < deadline:
        logs = project.berth("logs", "web", env=env).stdout
    assert "/echo/(sensitive value)" in logs and value not in logs, logs
