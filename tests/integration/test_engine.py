"""The engine end to end: the real `berth` command against the real Docker engine.

Each test writes a stack, runs berth as a user would, and checks the engine itself
(container IDs, labels, what answers on the published ports), not berth's word for it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

STACK = """
[stack]
name = "{stack}"

[apps.api]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "api-v1" }

[apps.web]
build = "./httpd"
port = 8000
host_port = {port1}
readiness = "/ready"
env = { MESSAGE = "web-v1" }
"""


def ids(project) -> dict[str, str]:
    """berth.address label -> container ID, read from the engine."""
    return {c.labels["berth.address"]: c.id for c in project.containers()}


def plan_exit(project) -> int:
    return project.berth("plan", "--detailed-exitcode", check=False).returncode


def test_create_serve_then_noop_keeps_every_container(project):
    project.copy_context("httpd")
    project.write(STACK)
    out = project.berth("apply", "--auto-approve").stdout
    assert "Apply complete! Resources: 4 added, 0 changed, 0 destroyed." in out
    assert project.get(project.ports[0])[1].count("message: api-v1") == 1
    assert "message: web-v1" in project.get(project.ports[1])[1]
    before = ids(project)
    assert set(before) == {"app.api.container[0]@local", "app.web.container[0]@local"}
    # Labels the design promises on every container.
    for c in project.containers():
        assert c.labels["berth.stack"] == project.stack
        assert c.labels["berth.app"] in ("api", "web")
        assert len(c.labels["berth.config-hash"]) == 64

    assert plan_exit(project) == 0
    second = project.berth("apply", "--auto-approve").stdout
    assert "No changes." in second
    assert ids(project) == before
    listed = project.berth("state", "list").stdout.split()
    assert listed == ["app.api.image@local", "app.api.container[0]@local",
                      "app.web.image@local", "app.web.container[0]@local"]


def test_changing_one_app_replaces_only_it(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    project.write(STACK.replace("web-v1", "web-v2"))
    plan = project.berth("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2
    assert '~ env' in plan.stdout and "# forces replacement" in plan.stdout
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in plan.stdout
    project.berth("apply", "--auto-approve")
    after = ids(project)
    assert after["app.api.container[0]@local"] == before["app.api.container[0]@local"]
    assert after["app.web.container[0]@local"] != before["app.web.container[0]@local"]
    assert "message: web-v2" in project.get(project.ports[1])[1]
    assert plan_exit(project) == 0


def test_update_in_place_keeps_the_container(project, docker_client):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    project.write(STACK.replace('env = { MESSAGE = "web-v1" }',
                                'env = { MESSAGE = "web-v1" }\nrestart = "always"\nmemory = "64m"\ncpus = 0.5'))
    out = project.berth("apply", "--auto-approve").stdout
    assert "0 added, 1 changed, 0 destroyed" in out
    assert ids(project) == before
    host = docker_client.api.inspect_container(before["app.web.container[0]@local"])["HostConfig"]
    assert host["RestartPolicy"]["Name"] == "always"
    assert host["Memory"] == 64 * 2**20
    assert host["CpuQuota"] == 50_000
    assert plan_exit(project) == 0


def test_depends_on_starts_the_dependent_after_readiness(project, docker_client):
    project.copy_context("httpd")
    project.write("""
        [stack]
        name = "{stack}"
        [apps.web]
        build = "./httpd"
        port = 8000
        host_port = {port1}
        depends_on = ["model"]
        [apps.model]
        build = "./httpd"
        port = 8000
        host_port = {port0}
        readiness = "/ready"
        env = { READY_DELAY = "2" }
    """)
    out = project.berth("apply", "--auto-approve").stdout.splitlines()
    ready = next(i for i, line in enumerate(out) if line.startswith("app.model.container[0]@local: Ready"))
    creating = next(i for i, line in enumerate(out) if line.startswith("app.web.container[0]@local: Creating"))
    assert ready < creating
    started = {c.labels["berth.app"]: docker_client.api.inspect_container(c.id)["State"]["StartedAt"]
               for c in project.containers()}
    assert started["web"] > started["model"]  # ISO timestamps compare as text

    # Destroy runs in reverse: the dependent goes first.
    out = project.berth("destroy", "--auto-approve").stdout.splitlines()
    web_gone = next(i for i, line in enumerate(out) if line.startswith("app.web.container[0]@local: Destruction complete"))
    model_going = next(i for i, line in enumerate(out) if line.startswith("app.model.container[0]@local: Destroying"))
    assert web_gone < model_going


def test_readiness_timeout_shows_the_log_and_taints(project):
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
        env = { NEVER_READY = "1" }
        [apps.fine]
        build = "./httpd"
        port = 8000
        host_port = {port1}
        readiness = "/ready"
        [apps.after]
        build = "./httpd"
        port = 8000
        host_port = {port2}
        depends_on = ["stuck"]
    """)
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1
    assert "Error: app.stuck.container[0]@local: not ready after 2s: GET /ready" in result.stderr
    assert "boot: NEVER_READY=1: /ready will never exist" in result.stderr  # the container's own log
    assert "Skipped: create app.after.container[0]@local (upstream dependencies failed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert project.get(project.ports[1], "/ready")[0] == 200  # the independent branch finished
    plan = project.berth("plan", "--no-color").stdout
    assert "app.stuck.container[0]@local must be replaced (tainted" in plan
    assert "app.after.container[0]@local will be created" in plan


def test_a_tcp_probe_is_not_fooled_by_dockers_port_proxy(project):
    """Nothing listens on the app's port in the container (the server is on 9000), yet
    Docker's userland proxy accepts connections on the published port: the TCP probe
    must still fail, not route traffic to a server that is not there."""
    project.copy_context("httpd")
    project.write("""
        [stack]
        name = "{stack}"
        [apps.wrong_port]
        build = "./httpd"
        port = 8000
        host_port = {port0}
        readiness_timeout = 2
        env = { PORT = "9000" }
    """)
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"not ready after 2s: TCP connect on port {project.ports[0]} never passed (last: TCP connect: closed at once "
            "(nothing listens in the container))") in result.stderr
    assert "boot: test server starting on port 9000" in result.stderr


def test_crash_fails_fast_with_the_log(project):
    project.copy_context("httpd")
    project.write("""
        [stack]
        name = "{stack}"
        [apps.oom]
        build = "./httpd"
        port = 8000
        host_port = {port0}
        readiness = "/ready"
        env = { CRASH = "1" }
    """)
    started = time.monotonic()
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1
    assert time.monotonic() - started < 60  # not the 600 s readiness_timeout
    assert "container crashed (exit code 3)" in result.stderr or "exited with code 3" in result.stderr
    assert "out of memory loading shard 3/3" in result.stderr


def test_drift_is_planned_back(project, docker_client):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    docker_client.api.remove_container(before["app.api.container[0]@local"], force=True)
    docker_client.api.stop(before["app.web.container[0]@local"], timeout=0)
    plan = project.berth("plan").stdout
    assert "app.api.container[0]@local will be created (container no longer exists on the host)" in plan
    assert "app.web.container[0]@local must be replaced (container is exited)" in plan
    project.berth("apply", "--auto-approve")
    assert project.get(project.ports[0], "/ready")[0] == 200
    assert project.get(project.ports[1], "/ready")[0] == 200
    assert plan_exit(project) == 0


def test_no_perpetual_diff_from_engine_defaults(project):
    """An image's own USER, WORKDIR and ENV, and the engine's added env (PATH), are not
    berth's to compare: after apply, plan must be empty."""
    context = project.copy_context("httpd")
    (context / "Dockerfile").write_text(
        "FROM busybox:latest\nCOPY entry.sh /entry.sh\nRUN mkdir -m 777 /www\nENV EXTRA=1\nWORKDIR /tmp\n"
        "USER nobody\nSTOPSIGNAL SIGTERM\nCMD [\"/bin/sh\", \"/entry.sh\"]\n"
    )
    project.write(STACK.replace('[apps.api]', '[apps.api]\ncommand = "exec sh /entry.sh"'))
    project.berth("apply", "--auto-approve")
    assert plan_exit(project) == 0


def test_replicas_scale_up_and_down(project):
    project.copy_context("httpd")
    project.write(STACK.replace('[apps.web]', '[apps.web]\nreplicas = 2').replace("{port1}", "{port2}"))
    project.berth("apply", "--auto-approve")
    assert {project.get(p, "/ready")[0] for p in (project.ports[2], project.ports[3])} == {200}
    names = sorted(c.name for c in project.containers())
    assert names == [f"berth-{project.stack}-api-0", f"berth-{project.stack}-web-0", f"berth-{project.stack}-web-1"]
    project.write(STACK.replace("{port1}", "{port2}"))
    out = project.berth("apply", "--auto-approve").stdout
    assert "0 added, 0 changed, 1 destroyed" in out
    assert project.get(project.ports[3], "/ready")[0] == 0


def test_image_by_reference(project):
    project.write("""
        [stack]
        name = "{stack}"
        [apps.files]
        image = "busybox:latest"
        command = "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 8000 -h /w"
        port = 8000
        host_port = {port0}
        readiness = "/"
    """)
    project.berth("apply", "--auto-approve")
    assert project.get(project.ports[0]) == (200, "hi\n")
    assert plan_exit(project) == 0
    project.berth("destroy", "--auto-approve")
    assert project.containers() == []
    assert project.client.images.get("busybox:latest")  # a user's image is never removed


def test_destroy_leaves_nothing_labelled(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    assert project.labelled()
    out = project.berth("destroy", "--auto-approve").stdout
    assert "Destroy complete! Resources: 4 destroyed." in out
    assert project.labelled() == []
    assert project.berth("state", "list").stdout == ""
    assert "No changes. No objects need to be destroyed." in project.berth("destroy", "--auto-approve").stdout


def test_kill_9_mid_apply_then_apply_converges(project):
    project.copy_context("httpd")
    project.write(STACK.replace('env = { MESSAGE = "api-v1" }', 'env = { MESSAGE = "api-v1", READY_DELAY = "4" }'))
    proc = subprocess.Popen(project.argv("apply", "--auto-approve"), cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # kill it while it waits for the slow app's readiness
        if "app.api.container[0]@local: Waiting for readiness" in line or time.monotonic() > deadline:
            break
    proc.kill()
    proc.wait()
    result = project.berth("apply", "--auto-approve")
    assert "took over a stale lock" in result.stderr
    assert "Apply complete!" in result.stdout
    assert plan_exit(project) == 0
    assert {c.labels["berth.address"] for c in project.containers()} == {
        "app.api.container[0]@local", "app.web.container[0]@local"}


def test_lock_refuses_a_second_apply_and_ctrl_c_saves_state(project):
    project.copy_context("httpd")
    project.write(STACK.replace('env = { MESSAGE = "api-v1" }', 'env = { MESSAGE = "api-v1", READY_DELAY = "30" }'))
    proc = subprocess.Popen(project.argv("apply", "--auto-approve"), cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    for line in proc.stdout:
        if "app.api.container[0]@local: Waiting for readiness" in line:
            break
    second = project.berth("apply", "--auto-approve", check=False)
    assert second.returncode == 1
    assert f"(pid {proc.pid})" in second.stderr and "berth force-unlock" in second.stderr

    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 130
    assert "Interrupt received" in rest and "Apply interrupted; state saved" in rest
    # The interrupted container is in state, readiness unconfirmed: the next plan re-checks
    # it rather than recreating it.
    assert "app.api.container[0]@local" in project.berth("state", "list").stdout
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    assert plan_exit(project) == 0


def test_plan_json_schema(project):
    project.copy_context("httpd")
    project.write(STACK)
    doc = json.loads(project.berth("plan", "--json").stdout)
    assert doc["format_version"] == 1 and doc["stack"] == project.stack
    assert doc["summary"] == {"add": 4, "change": 0, "destroy": 0}
    by_address = {c["address"]: c for c in doc["changes"]}
    web = by_address["app.web.container[0]@local"]
    assert web["action"] == "create" and web["type"] == "container" and web["before"] is None
    assert web["after"]["host_port"] == project.ports[1] and web["after"]["env"] == {"MESSAGE": "web-v1"}
    assert by_address["app.web.image@local"]["after"]["source"] == "build"


def test_bad_input_is_a_clear_error_and_touches_nothing(project):
    project.copy_context("httpd")
    project.write(STACK.replace("port = 8000\nhost_port = {port1}", "prot = 8000\nhost_port = {port1}"))
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1
    assert "berth.toml:14: apps.web.prot: unknown key" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.containers() == [] and not (project.path / ".berth").exists()


def test_state_show(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    shown = project.berth("state", "show", "app.web.container[0]@local").stdout
    assert 'container "app.web.container[0]@local"' in shown
    assert f"host_port         = {project.ports[1]}" in shown
    assert ids(project)["app.web.container[0]@local"] in shown
    missing = project.berth("state", "show", "app.nope.container[0]@local", check=False)
    assert missing.returncode == 1 and "no resource" in missing.stderr
