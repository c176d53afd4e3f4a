"""A running stack and a stack file edited into something berth must refuse (issue 17 items
5, 7 and 11): the real `berth` says which file, key and line, exits 1, and the container
that was serving is the same one, still serving."""

from __future__ import annotations

import pytest

STACK = """
    [stack]
    name = "{stack}"
    [apps.files]
    image = "busybox:latest"
    command = "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 8000 -h /w"
    port = 8000
    host_port = {port0}
    readiness = "/"
"""


def serving(project) -> str:
    [container] = project.containers()
    assert container.status == "running" and project.get(project.ports[0]) == (200, "hi\n")
    return container.id


def test_an_emptied_stack_file_is_refused_and_destroy_still_removes_the_stack(project):
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = serving(project)
    project.file.write_text("")  # `: > berth.toml`
    for command in (("plan",), ("apply", "--auto-approve")):
        done = project.berth(*command, check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "the stack file declares no apps; `berth destroy` removes the stack" in done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert serving(project) == before
    project.write('[stack]\nname = "{stack}"\n')
    project.berth("destroy", "--auto-approve")
    assert project.containers() == []


@pytest.mark.parametrize(("edit", "where"), [
    pytest.param(("port = 8000\n", "port = 8000\nmemory = 1\n"), "berth.toml:8: apps.files.memory", id="memory-1"),
    pytest.param(("port = 8000\n", "port = 8000\ncpus = inf\n"), "berth.toml:8: apps.files.cpus", id="cpus-inf"),
    pytest.param(("port = 8000\n", 'port = 8000\nenv = { BIG = "' + "x" * 200_000 + '" }\n'),
                 "berth.toml:8: apps.files.env.BIG", id="env-200-KB"),
    pytest.param(("[apps.files]", "[apps.files" + "x" * 300 + "]"), "berth.toml:4: apps.files" + "x" * 300,
                 id="app-name-300"),
    pytest.param(("port = 8000\n", 'port = 8000\nvolumes = ["x"]\n'), "berth.toml:8: apps.files.volumes[0]",
                 id="volume-no-path"),
    pytest.param(("port = 8000\n", 'port = 8000\nulimits = { open_files = 1 }\n'), "berth.toml:8: apps.files.ulimits",
                 id="ulimit-unknown"),
    pytest.param(("port = 8000\n", 'port = 8000\nipc = "none"\n'), "berth.toml:8: apps.files.ipc", id="ipc-none"),
    pytest.param(("port = 8000\n", 'port = 8000\nvolumes = ["/nonexistent/berth/models:/models:ro"]\n'),
                 "berth.toml:8: apps.files.volumes[0]: host path /nonexistent/berth/models does not exist on host local",
                 id="host-path-missing"),
])
def test_a_value_docker_would_refuse_never_reaches_the_running_container(project, edit, where):
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = serving(project)
    project.file.write_text(project.file.read_text().replace(*edit))
    done = project.berth("apply", "--auto-approve", check=False)
    assert done.returncode == 1 and where in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert serving(project) == before


def test_a_host_port_another_container_publishes_is_refused_at_plan_and_the_app_keeps_serving(project, docker_client):
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = serving(project)
    squatter = docker_client.containers.run("busybox:latest", ["sleep", "300"], detach=True, remove=True,
                                            ports={"9000/tcp": project.ports[1]}, labels={"berth-test.squatter": "1"})
    try:
        project.write(STACK.replace("host_port = {port0}", "host_port = {port1}"))
        for command in (("plan",), ("apply", "--auto-approve")):
            done = project.berth(*command, check=False)
            assert done.returncode == 1, done.stdout + done.stderr
            assert (f"apps.files.host_port: host port {project.ports[1]} on local is already published by container "
                    f"{squatter.name}, which is not this stack's") in done.stderr, done.stderr
        assert serving(project) == before, "nothing was stopped"
    finally:
        squatter.remove(force=True)
    project.berth("apply", "--auto-approve")
    assert project.get(project.ports[1]) == (200, "hi\n")
