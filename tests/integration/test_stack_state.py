"""Issue 17 end to end, through the real `berth` against the real Docker engine: two stack
files in one directory keep their own state (and a state directory of an earlier berth
stays its stack's), an apply whose lock is force-unlocked starts no new step, and a
container renamed or updated behind berth's back is planned back in place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import docker.errors

APP = """
[stack]
name = "{name}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port}
readiness = "/ready"
env = {{ MESSAGE = "{name}" }}
"""


def stack_file(project, name: str, port: str, file: str):
    return project.write(APP.format(name=name, port=port), file)


def ids(project, stack: str) -> dict[str, str]:
    found = project.client.containers.list(all=True, filters={"label": f"berth.stack={stack}"})
    return {c.labels["berth.address"]: c.id for c in found}


def clean_no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr and "internal error" not in result.stdout + result.stderr


def test_two_stack_files_in_one_directory_keep_their_own_state(project):
    project.copy_context("httpd")
    prod = f"{project.stack}-prod"
    staging_toml = str(stack_file(project, project.stack, "{port0}", "staging.toml"))
    prod_toml = str(stack_file(project, prod, "{port1}", "prod.toml"))
    try:
        project.berth("apply", "-f", staging_toml, "--auto-approve")
        staging = ids(project, project.stack)
        assert list(staging) == ["app.web.container[0]@local"]

        planned = json.loads(project.berth("plan", "-f", prod_toml, "--json").stdout)
        words = {c["address"]: c["action"] for c in planned["changes"] if c["action"] != "no-op"}
        assert set(words.values()) == {"create"}, words
        destroy = project.berth("plan", "-f", prod_toml, "--destroy", "--detailed-exitcode", check=False)
        assert destroy.returncode == 0, destroy.stdout + destroy.stderr  # nothing of prod's to destroy

        project.berth("apply", "-f", prod_toml, "--auto-approve")
        assert ids(project, project.stack) == staging
        assert "message: " + prod in project.get(project.ports[1])[1]
        listed = project.berth("state", "list", "-f", staging_toml)
        assert f"state of stack {project.stack} " in listed.stderr and "app.web.container[0]@local" in listed.stdout
        status = project.berth("status", "-f", prod_toml)
        assert f"Stack {prod} " in status.stdout

        project.berth("destroy", "-f", prod_toml, "--auto-approve")
        assert ids(project, prod) == {} and ids(project, project.stack) == staging
        assert "message: " + project.stack in project.get(project.ports[0])[1]
        again = project.berth("plan", "-f", staging_toml, "--detailed-exitcode", check=False)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        for c in project.client.containers.list(all=True, filters={"label": f"berth.stack={prod}"}):
            c.remove(force=True)


def test_a_state_directory_of_an_earlier_berth_stays_its_stacks(project):
    project.copy_context("httpd")
    stack_file(project, project.stack, "{port0}", "berth.toml")
    project.berth("apply", "--auto-approve")
    before = ids(project, project.stack)
    berth_dir = project.path / ".berth"
    shutil.move(berth_dir / "stacks" / project.stack, berth_dir / "state")  # where berth kept it before
    shutil.rmtree(berth_dir / "stacks")

    plan = project.berth("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert str(berth_dir / "state") in project.berth("state", "list").stderr
    project.write(APP.format(name=project.stack, port="{port0}").replace('MESSAGE = "', 'MESSAGE = "v2-'))
    project.berth("apply", "--auto-approve")
    assert ids(project, project.stack) != before and not (berth_dir / "stacks").exists()
    history = json.loads(project.berth("state", "history", "--json").stdout)["versions"]
    assert len(history) >= 3 and history[-1]["note"] == "apply"


def test_an_apply_whose_lock_was_force_unlocked_starts_no_new_step(project):
    project.copy_context("httpd")
    # Two independent apps, one step at a time: a's readiness wait is under way when the
    # lock goes; b's steps come after it.
    project.write("""
        [stack]
        name = "{stack}"

        [apps.a]
        build = "./httpd"
        port = 8000
        host_port = {port0}
        readiness = "/ready"
        env = { READY_DELAY = "5" }

        [apps.b]
        build = "./httpd"
        port = 8000
        host_port = {port1}
        readiness = "/ready"
    """)
    proc = subprocess.Popen(project.argv("apply", "--auto-approve", "--parallelism", "1"), cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "app.a.container[0]@local: Waiting for readiness" in line:
                break
        bare = project.berth("force-unlock", check=False)
        lock_id = bare.stderr.split("berth force-unlock ")[1].split("`")[0]
        project.berth("force-unlock", lock_id, "--force")
        seen.extend(proc.stdout)
        assert proc.wait(timeout=60) == 1, "".join(seen)
    finally:
        proc.kill()
        proc.wait()
    out = "".join(seen)
    assert "no longer holds the lock" in out and "internal error" not in out and "Traceback" not in out, out
    assert "app.b.container[0]@local: Creating" not in out, out
    assert "app.b.container[0]@local" not in ids(project, project.stack), out  # nothing started after
    assert "Apply failed" in out, out


def test_a_rename_or_update_behind_berths_back_is_planned_back_in_place(project):
    project.copy_context("httpd")
    project.write(APP.format(name=project.stack, port="{port0}") + 'cpus = 0.5\nmemory = "64m"\n')
    project.berth("apply", "--auto-approve")
    [container] = project.containers()
    name = container.name

    subprocess.run(["docker", "rename", name, f"{name}-moved"], check=True, capture_output=True)
    plan = project.berth("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"renamed to {name}-moved outside berth" in plan.stdout and "replaced" not in plan.stdout, plan.stdout
    applied = project.berth("apply", "--auto-approve")
    assert "0 added, 1 changed, 0 destroyed" in applied.stdout, applied.stdout
    container.reload()
    assert container.name == name and [c.id for c in project.containers()] == [container.id]

    subprocess.run(["docker", "update", "--cpu-quota", "150000", "--memory", "128m", "--memory-swap", "-1", name],
                   check=True, capture_output=True)
    plan = project.berth("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "cpus was changed to 1.5 outside berth" in plan.stdout and "memory was changed" in plan.stdout, plan.stdout
    assert "replaced" not in plan.stdout, plan.stdout
    applied = project.berth("apply", "--auto-approve")
    assert "0 added, 1 changed, 0 destroyed" in applied.stdout, applied.stdout
    container.reload()
    host = container.attrs["HostConfig"]
    assert (host["CpuQuota"], host["Memory"]) == (50_000, 64 * 2**20) and [c.id for c in project.containers()] == [container.id]
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    assert project.get(project.ports[0], "/ready")[0] == 200
