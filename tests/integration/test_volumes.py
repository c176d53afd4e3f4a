"""Container keys and named volumes against the real engine: shm_size, ipc, ulimits,
entrypoint, stop_timeout and volumes as `docker inspect` shows them; a file written to a
named volume survives a replace and `destroy`, and is gone after `destroy --volumes`; a
host path missing on an SSH test host is refused at plan time, at its key."""

from __future__ import annotations

import docker
import docker.errors
import pytest

from test_ssh_hosts import app, hosts, remote  # noqa: F401 - fixtures

STACK = """
[stack]
name = "{stack}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "MSG" }
volumes = ["data:/data", "{dir}/models:/models:ro"]
shm_size = "128m"
ipc = "shareable"
ulimits = { nofile = 4096, core = -1 }  # memlock = -1 needs a host whose engine may raise it
entrypoint = ["/bin/sh", "/entry.sh"]
stop_timeout = 3
"""


def _web(project):
    [container] = [c for c in project.containers() if c.labels.get("berth.app") == "web"]
    return container


def test_container_keys_reach_the_engine_and_a_named_volume_outlives_replace_and_destroy(project):
    project.copy_context("httpd")
    (project.path / "models").mkdir()
    (project.path / "models" / "weights.txt").write_text("w\n")
    project.write(STACK.replace("MSG", "one"))
    project.berth("apply", "--auto-approve")
    assert project.get(project.ports[0], "/ready")[0] == 200

    web = _web(project)
    host = web.attrs["HostConfig"]
    assert host["ShmSize"] == 128 * 2**20
    assert host["IpcMode"] == "shareable"
    assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in host["Ulimits"]) == [
        ("core", -1, -1), ("nofile", 4096, 4096)]
    assert web.attrs["Config"]["Entrypoint"] == ["/bin/sh", "/entry.sh"]
    assert web.attrs["Config"]["StopTimeout"] == 3
    volume = f"berth-{project.stack}-data"
    mounts = {m["Destination"]: m for m in web.attrs["Mounts"]}
    assert (mounts["/data"]["Type"], mounts["/data"]["Name"], mounts["/data"]["RW"]) == ("volume", volume, True)
    assert (mounts["/models"]["Type"], mounts["/models"]["Source"], mounts["/models"]["RW"]) == (
        "bind", str(project.path / "models"), False)
    assert web.exec_run(["cat", "/models/weights.txt"]).output == b"w\n"
    labels = project.client.volumes.get(volume).attrs["Labels"]
    assert labels["berth.stack"] == project.stack and labels["berth.address"] == "volume.data@local"
    assert "volume.data@local" in project.berth("state", "list").stdout
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0

    assert web.exec_run(["sh", "-c", "echo kept > /data/file"]).exit_code == 0
    project.write(STACK.replace("MSG", "two"))
    plan = project.berth("plan", "--no-color").stdout
    assert "volume.data@local" not in plan  # nothing to do for the volume
    project.berth("apply", "--auto-approve")
    replaced = _web(project)
    assert replaced.id != web.id
    assert replaced.exec_run(["cat", "/data/file"]).output == b"kept\n"

    destroyed = project.berth("destroy", "--auto-approve")
    assert "kept: volume.data@local (destroy --volumes removes it)" in destroyed.stdout
    assert project.containers() == []
    project.client.volumes.get(volume)  # still there, data and all
    assert "volume.data@local" in project.berth("state", "list").stdout

    planned = project.berth("plan", "--destroy", "--volumes", "--no-color").stdout
    assert "volume.data@local will be destroyed" in planned
    project.berth("destroy", "--volumes", "--auto-approve")
    with pytest.raises(docker.errors.NotFound):
        project.client.volumes.get(volume)


def test_changing_shm_size_replaces_and_the_plan_says_why(project):
    project.copy_context("httpd")
    (project.path / "models").mkdir()
    project.write(STACK.replace("MSG", "one"))
    project.berth("apply", "--auto-approve")
    project.write(STACK.replace("MSG", "one").replace('"128m"', '"256m"'))
    plan = project.berth("plan", "--no-color").stdout
    assert "app.web.container[0]@local must be replaced" in plan
    assert "~ shm_size" in plan and "134217728 -> 268435456  # forces replacement" in plan
    alone = project.berth("plan", "--volumes", check=False)
    assert alone.returncode == 1 and "--volumes goes with --destroy" in alone.stderr


def test_a_host_path_missing_on_an_ssh_host_is_a_plan_time_error(project, remote):
    th1 = remote["th1"]
    project.write(f"""
        [stack]
        name = "{{stack}}"

        [apps.web]
        image = "busybox:latest"
        port = 8000
        host = "th1"
        volumes = ["/srv/berth-no-such-dir-{{stack}}:/models:ro"]

    """ + th1.toml())
    result = project.berth("plan", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "berth.toml:9: apps.web.volumes[0]: host path /srv/berth-no-such-dir-" in out, out
    assert "does not exist on host th1" in out and "Traceback" not in out


def test_a_named_volume_on_an_ssh_host_lives_on_that_hosts_engine(project, remote):
    th1 = remote["th1"]
    project.copy_context("httpd")
    volume = f"berth-{project.stack}-data"
    base = f'[stack]\nname = "{{stack}}"\n' + th1.toml()
    try:
        project.write(base + app("web", "th1", "{port0}", "one", volumes='["data:/data"]'))
        project.berth("apply", "--auto-approve")
        labels = th1.client.volumes.get(volume).attrs["Labels"]
        assert labels["berth.address"] == "volume.data@th1"
        with pytest.raises(docker.errors.NotFound):
            project.client.volumes.get(volume)  # on th1's engine, not the local one
        [web] = th1.stack_containers(project.stack).values()
        assert web.exec_run(["sh", "-c", "echo kept > /data/file"]).exit_code == 0
        assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0  # listed over SSH
        project.write(base + app("web", "th1", "{port0}", "two", volumes='["data:/data"]'))
        project.berth("apply", "--auto-approve")
        [replaced] = th1.stack_containers(project.stack).values()
        assert replaced.id != web.id and replaced.exec_run(["cat", "/data/file"]).output == b"kept\n"
        assert "kept: volume.data@th1" in project.berth("destroy", "--auto-approve").stdout
        th1.client.volumes.get(volume)
        project.berth("destroy", "--volumes", "--auto-approve")
        with pytest.raises(docker.errors.NotFound):
            th1.client.volumes.get(volume)
    finally:  # the remote fixture removes containers and images, not volumes
        for container in th1.stack_containers(project.stack).values():
            container.remove(force=True, v=True)
        for found in th1.client.volumes.list(filters={"label": f"berth.stack={project.stack}"}):
            found.remove(force=True)
