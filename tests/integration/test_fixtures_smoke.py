"""The integration fixtures and the httpd test context, proven with plain docker-py.

These run before (and without) the berth CLI: if they fail, the engine, the busybox base
or the fixtures are broken, not berth.
"""

from __future__ import annotations

import time


def build_httpd(project):
    """Build contexts/httpd the way berth will: labelled with the project's stack."""
    context = project.copy_context("httpd")
    image, _ = project.client.images.build(
        path=str(context),
        tag=f"berth-smoke/{project.stack}:httpd",
        labels={"berth.stack": project.stack},
        rm=True,
    )
    return image


def run_httpd(project, port, **env):
    return project.client.containers.run(
        f"berth-smoke/{project.stack}:httpd",
        detach=True,
        environment=env,
        ports={f"{env.get('PORT', '8000')}/tcp": port},
        labels={"berth.stack": project.stack},
    )


def poll(check, timeout=15.0, interval=0.1):
    """Call check() until it returns something truthy; return that, or the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_httpd_context_becomes_ready_after_its_delay(project):
    build_httpd(project)
    port = project.ports[0]
    container = run_httpd(project, port, READY_DELAY="2", MESSAGE="hello from the smoke test")

    assert poll(lambda: project.get(port, "/health")[0] == 200), container.logs().decode()
    # Alive but still "loading weights": readiness must say no for now...
    assert project.get(port, "/ready")[0] == 404
    # ...and yes once the delay has passed.
    assert poll(lambda: project.get(port, "/ready")[0] == 200), container.logs().decode()

    status, body = project.get(port, "/")
    assert status == 200
    assert f"host: {container.id[:12]}" in body
    assert "message: hello from the smoke test" in body

    logs = container.logs().decode()
    assert "boot: test server starting on port 8000" in logs
    assert "url:/ready" in logs  # each request is logged, so berth logs has something

    # The entry script traps SIGTERM: a stop must not sit out Docker's 10 s grace period.
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 5
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert "shutdown: SIGTERM" in container.logs().decode()


def test_httpd_context_crash_exits_3_with_boot_lines(project):
    build_httpd(project)
    container = run_httpd(project, project.ports[0], CRASH="1")

    assert container.wait(timeout=30)["StatusCode"] == 3
    logs = container.logs().decode()
    assert "boot: loading weights shard 1/3" in logs
    assert "boot: loading weights shard 2/3" in logs
    assert "fatal: out of memory" in logs


def test_project_fills_placeholders_finds_and_removes_its_stack(project):
    # write(): placeholders filled, TOML's own braces and indentation handled.
    path = project.write(
        """
        [stack]
        name = "{stack}"
        [apps.web]
        build = "./httpd"
        port = 9000
        host_port = {port3}
        env = { NEVER_READY = "1", PORT = "9000" }
        """
    )
    text = path.read_text()
    assert f'name = "{project.stack}"' in text
    assert f"host_port = {project.ports[3]}" in text
    assert 'env = { NEVER_READY = "1", PORT = "9000" }' in text
    assert text.startswith("\n[stack]")
    assert len(project.ports) == 20 and len(set(project.ports)) == 20

    # berth(): -f goes right after the subcommand words.
    d = str(project.path)
    assert project.argv("plan", "--no-color")[1:] == ["plan", "-f", d, "--no-color"]
    assert project.argv("state", "list")[1:] == ["state", "list", "-f", d]
    assert project.argv("apply", "plan.out")[1:] == ["apply", "-f", d, "plan.out"]
    assert project.argv("plan", "-f", "elsewhere")[1:] == ["plan", "-f", "elsewhere"]
    assert project.argv("logs", "web", "-f")[1:] == ["logs", "--file", d, "web", "-f"]

    # NEVER_READY on a custom port: alive, never ready.
    image = build_httpd(project)
    port = project.ports[3]
    container = run_httpd(project, port, NEVER_READY="1", PORT="9000")
    assert poll(lambda: project.get(port, "/health")[0] == 200), container.logs().decode()
    time.sleep(1)
    assert project.get(port, "/ready")[0] == 404

    # containers() / labelled() see exactly this stack; cleanup() (the teardown) empties it.
    assert [c.id for c in project.containers()] == [container.id]
    assert {x.id for x in project.labelled()} == {container.id, image.id}
    project.cleanup()
    assert project.labelled() == []
    assert not project.client.images.list(name=f"berth-smoke/{project.stack}")
