"""Builds through BuildKit: RUN --mount cache and secrets, each step's own output live
in the apply's output and in a log file, a failing RUN's own last lines, and the legacy
builder's fallback with its warning.

BuildKit's client here is Debian's /usr/bin/docker 20.10 (DOCKER_BUILDKIT=1), found on
PATH; the legacy fallback runs berth with a PATH holding no docker CLI.
"""

from __future__ import annotations

import json
import urllib.request
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = (Path(__file__).resolve().parent / "contexts" / "httpd" / "entry.sh").read_text()


def _context(project, dockerfile: str, name: str = "app") -> Path:
    ctx = project.path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "entry.sh").write_text(ENTRY)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _stack(project, extra: str = "", name: str = "app") -> None:
    project.write(f'''
        [stack]
        name = "{{stack}}"
        [apps.web]
        build = {{ context = "./{name}"{extra} }}
        port = 8000
        host_port = {{port0}}
        readiness = "/ready"
    ''')


SERVE = 'COPY entry.sh /entry.sh\nCMD ["/bin/sh", "/entry.sh"]\n'


def test_a_runs_own_output_is_in_the_apply_output_and_the_log_file(project) -> None:
    marker = "marker-" + secrets.token_hex(6)
    _context(project, f"FROM busybox:latest\nRUN echo {marker}\n" + SERVE)
    _stack(project)
    result = project.berth("apply", "--auto-approve")
    assert marker in result.stdout, result.stdout
    assert "RUN echo" in result.stdout  # the step itself, as BuildKit names it
    logs = sorted((project.path / ".berth" / "logs").glob("build-web-*.log"))
    assert len(logs) == 1, logs
    assert marker in logs[0].read_text()
    assert str(logs[0]) in result.stdout  # its path is printed
    assert project.get(project.ports[0], "/ready")[0] == 200
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_a_failing_run_shows_its_own_last_30_lines_its_instruction_and_exit_code(project) -> None:
    lines = "; ".join(f"echo out-line-{i}" for i in range(1, 41))
    _context(project, f"FROM busybox:latest\nRUN echo before\nRUN {lines}; exit 7\n" + SERVE)
    _stack(project)
    result = project.berth("apply", "--auto-approve", check=False)
    assert result.returncode == 1
    err = result.stderr
    assert "exited with code 7" in err, err
    assert "RUN echo out-line-1;" in err  # the failing instruction
    tail = err[err.index("Last lines of the failing step's output"):]
    shown = [line.strip() for line in tail.splitlines()[1:] if line.strip().startswith("out-line-")]
    assert shown == [f"out-line-{i}" for i in range(11, 41)], tail  # the last 30, one per line, verbatim
    assert "Traceback" not in err and "internal error" not in err


def test_a_cache_mount_is_reused_by_the_next_build(project) -> None:
    # The first build fills the cache mount; the second (one more "package") finds
    # what the first put there and downloads only the new one.
    # The cache's id is the test's own: cache mounts outlive builds (that is the point).
    fetch = ("RUN --mount=type=cache,id=" + project.stack + ",target=/cache sh -c 'for p in {pkgs}; do "
             "if [ -e /cache/$p ]; then echo reused-$p; else echo downloaded-$p; touch /cache/$p; fi; done'\n")
    _context(project, "FROM busybox:latest\n" + fetch.format(pkgs="alpha beta") + SERVE)
    _stack(project)
    first = project.berth("apply", "--auto-approve").stdout
    assert "downloaded-alpha" in first and "downloaded-beta" in first
    _context(project, "FROM busybox:latest\n" + fetch.format(pkgs="alpha beta gamma") + SERVE)
    second = project.berth("apply", "--auto-approve").stdout
    assert "reused-alpha" in second and "reused-beta" in second, second
    assert "downloaded-gamma" in second
    assert "downloaded-alpha" not in second


def test_the_legacy_builder_is_the_fallback_and_warns(project, tmp_path: Path) -> None:
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    _context(project, "FROM busybox:latest\nRUN echo legacy-built\n" + SERVE)
    _stack(project)
    result = project.berth("apply", "--auto-approve", env={"PATH": f"{bare}:{Path(sys.executable).parent}"})
    warnings = [line for line in result.stdout.splitlines() if "legacy builder" in line]
    assert len(warnings) == 1, result.stdout
    assert "docker.io" in warnings[0] and "buildx" in warnings[0]
    assert "legacy-built" in result.stdout
    assert project.get(project.ports[0], "/ready")[0] == 200


def test_a_build_secret_reaches_the_run_and_nothing_else(project) -> None:
    value = "tok-" + secrets.token_hex(16)
    # The stack's name in the Dockerfile: BuildKit's layer cache never keys on a secret's
    # value, so a RUN another test run built would be reused with that run's token.
    _context(project, f"FROM busybox:latest\nRUN echo {project.stack}\n"
                      "RUN --mount=type=secret,id=hf_access_token sha256sum /run/secrets/hf_access_token "
                      "| cut -d' ' -f1 > /token.sha256\n" + SERVE)
    project.write('''
        [stack]
        name = "{stack}"
        [secrets.hf_access_token]
        env = "BERTH_TEST_BUILD_TOKEN"
        [apps.web]
        build = { context = "./app", secrets = ["hf_access_token"] }
        port = 8000
        host_port = {port0}
        readiness = "/ready"
    ''')
    env = {"BERTH_TEST_BUILD_TOKEN": value}
    plan = project.berth("plan", env=env)
    applied = project.berth("apply", "--auto-approve", env=env)
    [image] = project.images()
    # It reached the RUN: the image holds its hash, made inside the build.
    container = project.client.containers.create(image.id, command=["true"])
    try:
        exported = b"".join(container.export())
        digest = project.client.containers.run(image.id, ["cat", "/token.sha256"], remove=True).decode().strip()
    finally:
        container.remove()
    import hashlib

    assert digest == hashlib.sha256(value.encode()).hexdigest()
    assert value.encode() not in exported  # nor anywhere in the image's file system
    history = subprocess.run(["docker", "history", "--no-trunc", image.id], capture_output=True, text=True, check=True)
    assert value not in history.stdout
    assert value not in json.dumps(project.client.api.inspect_image(image.id))  # args, labels, config
    state = project.berth("state", "pull").stdout
    assert value not in state and value not in plan.stdout
    assert value not in applied.stdout + applied.stderr
    for log in (project.path / ".berth").rglob("*.log"):
        assert value not in log.read_text()
    # Same context, same secret names: nothing to build again.
    assert project.berth("plan", "--detailed-exitcode", check=False, env=env).returncode == 0


def test_a_build_secret_must_be_declared(project) -> None:
    _context(project, "FROM busybox:latest\n" + SERVE)
    project.write('''
        [stack]
        name = "{stack}"
        [apps.web]
        build = { context = "./app", secrets = ["hf_acess_token"] }
        port = 8000
    ''')
    result = project.berth("plan", check=False)
    assert result.returncode == 1
    assert "apps.web.build.secrets" in result.stderr and 'unknown secret "hf_acess_token"' in result.stderr, result.stderr


def test_build_target_builds_that_stage_and_cache_from_reaches_the_builder(project) -> None:
    _context(project, "FROM busybox:latest AS base\nRUN echo base-stage\n" + SERVE
                      + "FROM base AS runtime\nRUN echo runtime-stage\n"
                      + "FROM runtime AS test\nRUN echo test-stage; exit 1\n")
    missing = f"{project.stack}-nowhere/cache:latest"
    _stack(project, extra=f', target = "runtime", cache_from = ["{missing}"]')
    result = project.berth("apply", "--auto-approve")
    assert "runtime-stage" in result.stdout and "test-stage" not in result.stdout, result.stdout
    [log] = (project.path / ".berth" / "logs").glob("build-web-*.log")
    assert f"importing cache manifest from {missing}" in log.read_text()  # asked; absent is no failure
    assert project.get(project.ports[0], "/ready")[0] == 200
    # Another target is another image.
    _stack(project, extra=', target = "base"')
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 2


# -- build_on = "host" ----------------------------------------------------------------

ROOT = Path("/run/berth-testhosts")


@pytest.fixture
def th3(project):
    """The test host th3's own engine; afterwards everything of the stack removed from it."""
    import docker

    client = docker.DockerClient(base_url=f"unix://{ROOT / 'th3' / 'docker.sock'}", timeout=60)
    yield client
    for c in client.containers.list(all=True, filters={"label": f"berth.stack={project.stack}"}):
        c.remove(force=True, v=True)
    for image in client.images.list(filters={"label": f"berth.stack={project.stack}"}):
        client.images.remove(image.id, force=True)
    client.close()


def _host_toml(build_on: str = "") -> str:
    return (f'[hosts.th3]\nssh = "root@10.203.3.2"\nidentity_file = "{ROOT / "id_ed25519"}"\n'
            f'known_hosts = "{ROOT / "known_hosts"}"\ndocker_socket = "{ROOT / "th3" / "docker.sock"}"\n{build_on}')


def test_build_on_host_builds_on_the_ssh_host_and_nothing_locally(project, th3) -> None:
    # FROM scratch: the host's engine starts empty and no registry is reachable.
    marker = "on-host-" + secrets.token_hex(6)
    ctx = _context(project, 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                            f"RUN echo {marker}; ls /\n" + SERVE)
    shutil.copy("/bin/busybox", ctx / "busybox")
    (ctx / "ignored.bin").write_bytes(os.urandom(1 << 20))
    (ctx / ".dockerignore").write_text("ignored.bin\n")
    project.write(f'''
        [stack]
        name = "{{stack}}"
        {_host_toml()}
        [apps.web]
        build = "./app"
        build_on = "host"
        host = "th3"
        port = 8000
        host_port = {{port0}}
        readiness = "/ready"
    ''')
    plan = project.berth("plan").stdout
    assert 'build_on     = "host"' in plan and "deliver" not in plan.lower()
    result = project.berth("apply", "--auto-approve")
    assert marker in result.stdout
    assert "Sending image" not in result.stdout
    local = project.client.images.list(filters={"label": f"berth.stack={project.stack}"})
    assert local == []  # nothing built locally, nothing sent back
    [image] = th3.images.list(filters={"label": f"berth.stack={project.stack}"})
    listing = th3.containers.run(image.id, ["ls", "/"], remove=True).decode()
    assert "entry.sh" in listing and "ignored.bin" not in listing  # .dockerignore respected
    with urllib.request.urlopen(f"http://10.203.3.2:{project.ports[0]}/ready", timeout=5) as answer:
        assert answer.status == 200
    # The content-hash skip holds: an unchanged context plans no build on either side.
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    (ctx / "entry.sh").write_text(ENTRY + "\n# changed\n")
    changed = project.berth("plan").stdout
    assert "app.web.image@th3" in changed and "app.web.image@local" not in changed


def test_a_hosts_build_on_default_applies_to_its_apps(project, th3) -> None:
    ctx = _context(project, 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' + SERVE)
    shutil.copy("/bin/busybox", ctx / "busybox")
    project.write(f'''
        [stack]
        name = "{{stack}}"
        {_host_toml('build_on = "host"')}
        [apps.web]
        build = "./app"
        host = "th3"
        port = 8000
        host_port = {{port0}}
    ''')
    project.berth("apply", "--auto-approve")
    assert project.client.images.list(filters={"label": f"berth.stack={project.stack}"}) == []
    assert len(th3.images.list(filters={"label": f"berth.stack={project.stack}"})) == 1


# -- platform apps: the Dockerfiles berth writes -------------------------------------

CEREBRIUM = """
    [deployment]
    name = "{stack}"

    [runtime.python]
    entrypoint = ["python3", "-m", "http.server", "{port0}"]
    port = {port0}
    python_version = "3.11"
    docker_base_image_url = "debian:bookworm-slim"
    use_uv = true
    pre_build_commands = ["echo {stack}"]

    [dependencies.pip]
    six = "latest"
"""


def test_a_platform_apps_rebuild_after_a_requirement_changed_reuses_the_download_cache(project) -> None:
    # uv, as in examples/cerebrium-fastapi: its cache (a BuildKit cache mount) keeps each
    # package, so the rebuild prepares only the one added. (pre_build_commands names the
    # stack: no layer another run built is reused.) (pip caches by HTTP caching
    # headers, which this machine's TLS-inspecting proxy strips: not a portable check.)
    (project.path / "main.py").write_text("def predict():\n    return 1\n")
    project.write(CEREBRIUM, name="cerebrium.toml")
    first = project.berth("apply", "--auto-approve", timeout=600).stdout
    dockerfile = next((project.path / ".berth" / "build").rglob("Dockerfile"))
    assert "RUN --mount=type=cache" in dockerfile.read_text()
    assert re.search(r"\| Installed 1 package", first), first
    project.write(CEREBRIUM + '    idna = "latest"\n', name="cerebrium.toml")
    second = project.berth("apply", "--auto-approve", timeout=600).stdout
    assert re.search(r"\| Resolved 2 packages", second), second
    assert re.search(r"\| Installed 2 packages", second), second  # a new layer: both installed
    # ... but six was not fetched again: uv prepares (downloads) only what its cache lacks
    # (idna, unless an earlier build on this engine fetched it too); without the cache
    # mount it says "Prepared 2 packages".
    assert not re.search(r"\| Prepared 2 packages", second), second
