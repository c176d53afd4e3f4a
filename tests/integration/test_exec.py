"""`berth exec`: a command in an app's replica, locally and on an SSH host (through the
connection berth holds), with the command's own output and exit status."""

from __future__ import annotations

import subprocess

from test_ssh_hosts import hosts, remote  # noqa: F401 (fixtures)

APP = '[apps.web]\nimage = "busybox:latest"\nport = 8000\nreplicas = 2\nhost_port = {port0}\n' \
      'command = ["httpd", "-f", "-p", "8000"]\nenv = { WHO = "web" }\n'


def run(project, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(project.argv("exec", *args), cwd=project.path, capture_output=True, text=True,
                          input=input, timeout=60, stdin=None if input is not None else subprocess.DEVNULL)


def test_exec_runs_in_the_replica_asked_for_and_keeps_its_exit_status(project):
    project.write('[stack]\nname = "{stack}"\n' + APP)
    project.berth("apply", "--auto-approve")
    ids = {c.labels["berth.address"]: c.id for c in project.containers()}
    first = run(project, "web", "--", "hostname")
    assert first.returncode == 0 and ids["app.web.container[0]@local"].startswith(first.stdout.strip())
    second = run(project, "web", "-i", "1", "--", "sh", "-c", "echo $WHO; exit 7")
    assert second.returncode == 7 and second.stdout == "web\n"
    assert ids["app.web.container[1]@local"].startswith(run(project, "web", "-i", "1", "hostname").stdout.strip())
    assert run(project, "web", "--", "cat", input="piped\n").stdout == "piped\n"
    missing = run(project, "web", "-i", "2", "--", "true")
    assert missing.returncode == 1 and "app web has no replica 2 (replicas: 0, 1)" in missing.stderr
    nothing = run(project, "web")
    assert nothing.returncode == 1 and "name the command to run after --" in nothing.stderr


def test_exec_on_an_ssh_host(project, remote):  # noqa: F811
    th3 = remote["th3"]
    project.write('[stack]\nname = "{stack}"\n' + th3.toml() + APP.replace("replicas = 2\n", 'host = "th3"\n'))
    project.berth("apply", "--auto-approve", timeout=300)
    (container,) = th3.stack_containers(project.stack).values()
    found = run(project, "web", "--host", "th3", "--", "hostname")
    assert found.returncode == 0 and container.id.startswith(found.stdout.strip()), found.stderr
    wrong = run(project, "web", "--host", "local", "--", "true")
    assert wrong.returncode == 1 and "app web runs on th3, not on local" in wrong.stderr
