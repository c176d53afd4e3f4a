"""Replacing a serving app against the real engine (issue 17, items 7-9): a config
Docker refuses leaves the old container serving, replicas are replaced one at a time,
and a replica that fails readiness is stopped, tainted and shown as failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

ONE = """
[stack]
name = "{stack}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "web-v1" }
"""

TWO = """
[stack]
name = "{stack}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
replicas = 2
readiness = "/ready"
env = { MESSAGE = "web-v1", READY_DELAY = "1" }
"""


def ids(project) -> dict[str, str]:
    return {c.labels["berth.address"]: c.id for c in project.containers()}


def test_a_limit_docker_would_refuse_is_refused_at_plan_and_the_old_container_keeps_serving(project):
    project.copy_context("httpd")
    project.write(ONE)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    # env forces a new container; Docker refuses a 1 MB memory limit when it is created,
    # so berth refuses it before anything is touched.
    project.write(ONE.replace("web-v1", "web-v2") + 'memory = "1m"\n')
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "below Docker's minimum of 6 MiB" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    status, body = project.get(project.ports[0])
    assert status == 200 and "message: web-v1" in body
    assert ids(project) == before  # the old one, and nothing left beside it
    assert [c.status for c in project.containers()] == ["running"]
    # Fixed: the next apply replaces it.
    project.write(ONE.replace("web-v1", "web-v2"))
    project.berth("apply", "--auto-approve")
    assert "message: web-v2" in project.get(project.ports[0])[1]
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_two_replicas_are_replaced_one_at_a_time_and_the_app_answers_throughout(project):
    project.copy_context("httpd")
    project.write(TWO)
    project.berth("apply", "--auto-approve")
    ports = project.ports[0], project.ports[0] + 1
    assert all(_answers(p) for p in ports)
    samples: list[tuple[bool, bool]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append((_answers(ports[0]), _answers(ports[1])))
            time.sleep(0.02)

    project.write(TWO.replace("web-v1", "web-v2"))
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = project.berth("apply", "--auto-approve").stdout
    finally:
        stop.set()
        watcher.join(10)
    assert "2 added, 0 changed, 2 destroyed" in out
    down = [i for i, (a, b) in enumerate(samples) if not a and not b]
    assert len(samples) > 20 and not down, f"{len(down)} of {len(samples)} samples had no replica answering"
    assert any(not a or not b for a, b in samples), "no replica was ever replaced while watched"
    for port in ports:
        assert "message: web-v2" in project.get(port)[1]


def test_a_replica_that_fails_readiness_is_stopped_tainted_and_shown_failed(project, docker_client):
    project.copy_context("httpd")
    project.write("""
        [stack]
        name = "{stack}"
        [apps.stuck]
        build = "./httpd"
        port = 8000
        host_port = {port0}
        readiness = "/ready"
        readiness_timeout = 2
        restart = "always"
        env = { NEVER_READY = "1" }
    """)
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1
    assert "boot: NEVER_READY=1: /ready will never exist" in result.stderr
    (container,) = project.containers()
    time.sleep(1)
    info = docker_client.api.inspect_container(container.id)["State"]
    assert not info["Running"] and not info["Restarting"], info
    status = project.berth("status", check=False)
    assert "failed readiness" in status.stdout, status.stdout
    assert "0 of 1 healthy" in status.stdout
    listed = json.loads(project.berth("status", "--json", check=False).stdout)["replicas"]
    assert listed[0]["healthy"] is False
    plan = project.berth("plan", "--no-color").stdout
    assert "app.stuck.container[0]@local must be replaced (tainted" in plan
    project.write(project.path.joinpath("berth.toml").read_text().replace('NEVER_READY = "1"', 'MESSAGE = "fixed"'))
    project.berth("apply", "--auto-approve")
    assert "message: fixed" in project.get(project.ports[0])[1]


# -- a replace that does not get ready brings the old container back ---------------------------


def state_id(project, address: str) -> str:
    shown = json.loads(project.berth("state", "show", address, "--json").stdout)
    return shown["id"]


def test_a_new_container_that_starts_then_dies_leaves_the_old_one_serving(project):
    """The stop-first replace (a fixed host port): the old container is stopped, not
    removed, until the new one passed readiness; the new one here boots and exits."""
    project.copy_context("httpd")
    project.write(ONE)
    project.berth("apply", "--auto-approve")
    (old,) = ids(project).values()
    project.write(ONE.replace('env = { MESSAGE = "web-v1" }', 'env = { MESSAGE = "web-v2", CRASH = "1" }'))
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "(exit code 3)" in result.stderr, result.stderr
    assert f"the new container was removed and the old one ({old[:12]}) started again" in result.stderr
    assert "boot: fatal: out of memory loading shard 3/3 (CRASH=1)" in result.stderr  # the new one's log
    status, body = project.get(project.ports[0])
    assert status == 200 and "message: web-v1" in body
    assert ids(project) == {"app.web.container[0]@local": old}
    assert [c.status for c in project.containers()] == ["running"]
    assert project.containers()[0].name.endswith("-web-0")
    assert state_id(project, "app.web.container[0]@local") == old
    plan = project.berth("plan", "--no-color").stdout
    assert "app.web.container[0]@local must be replaced" in plan and "1 to add, 0 to change, 1 to destroy" in plan
    project.write(ONE.replace("web-v1", "web-v2"))
    project.berth("apply", "--auto-approve")
    assert "message: web-v2" in project.get(project.ports[0])[1]
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_a_command_that_does_not_exist_leaves_the_old_one_serving(project):
    project.copy_context("httpd")
    project.write(ONE)
    project.berth("apply", "--auto-approve")
    (old,) = ids(project).values()
    project.write(ONE + 'command = ["/no/such/server"]\n')
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "/no/such/server" in result.stderr and f"the old one ({old[:12]}) started again" in result.stderr
    assert "message: web-v1" in project.get(project.ports[0])[1]
    assert ids(project) == {"app.web.container[0]@local": old}
    assert state_id(project, "app.web.container[0]@local") == old


def test_kill_9_while_the_new_container_loads_then_one_apply_converges(project):
    """Killed with the old container stopped beside a new one that holds the port but is
    not ready yet: the next apply alone ends with one container, the new config, serving."""
    project.copy_context("httpd")
    project.write(ONE)
    project.berth("apply", "--auto-approve")
    project.write(ONE.replace('env = { MESSAGE = "web-v1" }', 'env = { MESSAGE = "web-v2", READY_DELAY = "3" }'))
    proc = subprocess.Popen(project.argv("apply", "--auto-approve"), cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 60
    seen = []
    for line in proc.stdout:  # the new one runs on the port, the old one is stopped
        seen.append(line)
        if "app.web.container[0]@local: Waiting for readiness" in line or time.monotonic() > deadline:
            break
    proc.kill()
    proc.wait()
    assert any("Waiting for readiness" in line for line in seen), "".join(seen)
    left = {c.name: c.status for c in project.containers()}
    assert len(left) == 2 and sorted(left.values()) == ["exited", "running"], left
    result = project.berth("apply", "--auto-approve")
    assert "Apply complete!" in result.stdout
    (container,) = project.containers()
    assert container.status == "running" and "-next-" not in container.name, container.name
    assert "message: web-v2" in project.get(project.ports[0])[1]
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_plain_progress_says_what_the_probe_sees_when_it_changes(project):
    """The stand-in answers 404 on /ready while it "loads" (llama.cpp answers 503)."""
    project.copy_context("httpd")
    project.write(ONE.replace('env = { MESSAGE = "web-v1" }', 'env = { MESSAGE = "web-v1", READY_DELAY = "3" }'))
    out = project.berth("apply", "--auto-approve").stdout
    loading = [line for line in out.splitlines() if " loading: " in line]
    assert any(line.startswith("web[0] loading: answering 404 (") and line.endswith("s left)") for line in loading), out
    assert len([line for line in loading if "answering 404" in line]) == 1, out  # once, not at every poll


def test_cpus_beyond_the_hosts_is_refused_at_plan_and_the_old_container_keeps_serving(project, docker_client):
    project.copy_context("httpd")
    project.write(ONE)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    ncpu = docker_client.info()["NCPU"]
    project.write(ONE.replace("web-v1", "web-v2") + f"cpus = {ncpu + 1}\n")
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "berth.toml: apps.web.cpus" in result.stderr, result.stderr
    assert f"asks for {ncpu + 1} CPUs, but host local has {ncpu}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert ids(project) == before and "message: web-v1" in project.get(project.ports[0])[1]
    project.write(ONE.replace("web-v1", "web-v2") + f"cpus = {ncpu}\n")
    project.berth("apply", "--auto-approve")
    assert "message: web-v2" in project.get(project.ports[0])[1]
