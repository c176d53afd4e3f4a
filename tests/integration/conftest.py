"""Fixtures for integration tests: the real `berth` command against the real Docker engine.

Every test under tests/integration is marked `integration`. A test takes `project`: a
fresh directory, a unique stack name and a block of free host ports, with helpers to
write berth.toml, copy a build context from contexts/, run `berth` and look at what it
made. Whatever carries the label berth.stack=<that stack> is removed after the test, so
tests never leak containers or images into each other or onto the machine.

    def test_apply_then_noop(project):
        project.copy_context("httpd")
        project.write('''
            [stack]
            name = "{stack}"
            [apps.web]
            build = "./httpd"
            port = 8000
            host_port = {port0}
            readiness = "/ready"
        ''')
        project.berth("apply", "--auto-approve")
        assert project.get(project.ports[0], "/ready")[0] == 200
        assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

HERE = Path(__file__).resolve().parent
CONTEXTS = HERE / "contexts"
# The console script installed beside the interpreter running pytest (.venv/bin/berth).
BERTH = Path(sys.executable).parent / "berth"

PORTS_PER_TEST = 20
# Below Linux's ephemeral range (32768+), where the kernel picks ports for outgoing
# connections and Docker for unpinned published ports: a port free now stays free.
PORT_RANGE = (20000, 32000)
# Lock files that keep two pytest processes (xdist, two checkouts) off the same block.
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "berth-test-ports"

# A leading subcommand word: `plan`, `state`, `list`, `force-unlock`.
_COMMAND_WORD = re.compile(r"[a-z][a-z-]*\Z")
_PLACEHOLDER = re.compile(r"\{(stack|dir|port\d+)\}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration `integration` (deselect: -m 'not integration')."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The engine berth will talk to (DOCKER_HOST honoured). Fails, never skips, when absent."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
        pytest.fail(
            f"the Docker engine does not answer ({exc}).\n"
            "Run `bash scripts/setup.sh`: it installs and starts dockerd and builds the "
            "local busybox:latest base the test images use.",
            pytrace=False,
        )
    yield client
    client.close()


@dataclass
class Project:
    """One test's stack: a directory, a unique name, a block of free host ports."""

    path: Path
    stack: str
    ports: list[int]
    client: docker.DockerClient
    _locks: list = field(default_factory=list, repr=False)

    @property
    def file(self) -> Path:
        return self.path / "berth.toml"

    def render(self, text: str) -> str:
        """Replace {stack}, {dir} and {port0}..{port19}; other braces (TOML inline tables) stay."""

        def value(match: re.Match) -> str:
            key = match.group(1)
            if key == "stack":
                return self.stack
            if key == "dir":
                return str(self.path)
            index = int(key[4:])
            if index >= len(self.ports):
                raise KeyError(f"{{{key}}}: a test has only {len(self.ports)} ports, {{port0}}..")
            return str(self.ports[index])

        return _PLACEHOLDER.sub(value, textwrap.dedent(text))

    def write(self, toml_text: str, name: str = "berth.toml") -> Path:
        """Write the stack file (placeholders filled in, indentation removed); returns its path."""
        target = self.path / name
        target.write_text(self.render(toml_text))
        return target

    def copy_context(self, name: str, as_name: str | None = None) -> Path:
        """Copy tests/integration/contexts/NAME to <project>/AS_NAME (default NAME): build = "./NAME"."""
        return Path(shutil.copytree(CONTEXTS / name, self.path / (as_name or name)))

    def argv(self, *args: str) -> list[str]:
        """berth's argv, with `-f <project dir>` right after the subcommand words.

        `("plan", "--no-color")` -> `berth plan -f DIR --no-color`;
        `("state", "list")` -> `berth state list -f DIR`; `("logs", "web")` -> `berth logs --file DIR
        web` (its -f is --follow; APP... is a list, so the file goes before it). Arguments that already name a
        stack file (-f/--file) are left as they are. At most two leading words count as
        the subcommand, so `-f` never lands after a `--` or inside a command to run.
        """
        logs = args[:1] == ("logs",)  # its -f is --follow: the file goes as --file
        if ("-f" in args and not logs) or "--file" in args or any(a.startswith("--file=") for a in args):
            return [str(BERTH), *args]
        n = 0
        while n < min(1 if logs else 2, len(args)) and _COMMAND_WORD.match(args[n]):
            n += 1
        return [str(BERTH), *args[:n], "--file" if logs else "-f", str(self.path), *args[n:]]

    def berth(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `berth ARGS` with -f pointing at this project; check=True asserts exit code 0."""
        argv = self.argv(*args)
        # Wide, colourless output, so assertions on rich's text do not depend on wrapping.
        full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
        try:
            result = subprocess.run(
                argv,
                cwd=self.path,
                env=full_env,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            # On a timeout the captured output is bytes even in text mode.
            raise AssertionError(
                _describe(argv, f"killed after {timeout} s", _text(exc.stdout), _text(exc.stderr))
            ) from None
        if check and result.returncode != 0:
            raise AssertionError(
                _describe(argv, f"exit code {result.returncode}", result.stdout, result.stderr)
            )
        return result

    def containers(self) -> list:
        """Every container (running or not) labelled berth.stack=<stack>, and the shared
        gateways on this test's ports (labelled berth.gateway-port: no one stack's)."""
        found = self.client.containers.list(all=True, filters={"label": self._label})
        # Every test's gateways: one another worker removes between the list and its inspect
        # is skipped, not an error (ignore_removed).
        shared = self.client.containers.list(all=True, filters={"label": "berth.gateway-port"}, ignore_removed=True)
        return found + [c for c in shared if c.labels.get("berth.gateway-port") in {str(p) for p in self.ports}]

    def images(self) -> list:
        return self.client.images.list(filters={"label": self._label})

    def labelled(self) -> list:
        """Containers, then images, carrying berth.stack=<stack>: [] once all is destroyed."""
        return [*self.containers(), *self.images()]

    def get(self, port: int, path: str = "/", timeout: float = 5) -> tuple[int, str]:
        """GET http://127.0.0.1:PORT/PATH -> (status, body); status 0 when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return 0, ""

    def cleanup(self) -> None:
        """Force-remove everything of this stack on the engine (the fixture's teardown)."""
        problems: list[str] = []

        def remove(kind: str, things: list, **kwargs) -> None:
            for thing in things:
                try:
                    thing.remove(**kwargs)
                except docker.errors.NotFound:
                    pass  # gone already (auto-removed, or a parent of an image removed before)
                except docker.errors.APIError as exc:
                    problems.append(f"{kind} {thing.id[:19]}: {exc}")

        remove("container", self.containers(), force=True, v=True)
        # Images berth labelled, plus any tagged with the (unique) stack name, in case
        # something tagged an image without labelling it.
        images = {i.id for i in self.images()}
        # The engine's plain list, not images.list(): that inspects each image after listing,
        # and one another test (another worker) removes in between is an ImageNotFound here.
        for image in self.client.api.images():
            if any(self.stack in tag for tag in image.get("RepoTags") or ()):
                images.add(image["Id"])
        for image_id in sorted(images):
            try:
                self.client.images.remove(image_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                problems.append(f"image {image_id[:19]}: {exc}")
        remove("network", self.client.networks.list(filters={"label": self._label}))
        remove("volume", self.client.volumes.list(filters={"label": self._label}), force=True)
        # The shared gateways' volumes (their routes and CA) on this test's ports.
        remove("volume", [v for v in self.client.volumes.list() if v.name in {f"berth-gateway-{p}" for p in self.ports}],
               force=True)
        for lock in self._locks:
            lock.close()
        self._locks.clear()
        if problems:
            raise AssertionError(f"could not clean up stack {self.stack}:\n" + "\n".join(problems))

    @property
    def _label(self) -> str:
        return f"berth.stack={self.stack}"


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _describe(argv: list[str], outcome: str, stdout: str, stderr: str) -> str:
    return (
        f"`{' '.join(argv)}` failed: {outcome}\n"
        f"--- stdout ---\n{stdout.rstrip()}\n"
        f"--- stderr ---\n{stderr.rstrip()}"
    )


def _port_free(port: int) -> bool:
    # Docker publishes on 0.0.0.0, so that is the address that must be bindable.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _reserve_ports() -> tuple[list[int], list]:
    """A block of PORTS_PER_TEST free ports, held by a lock file until the test ends."""
    PORT_LOCK_DIR.mkdir(exist_ok=True)
    first_blocks = range(PORT_RANGE[0], PORT_RANGE[1], PORTS_PER_TEST)
    for base in random.sample(first_blocks, len(first_blocks)):
        lock = open(PORT_LOCK_DIR / f"{base}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                continue  # another test holds this block
            raise
        ports = list(range(base, base + PORTS_PER_TEST))
        if all(_port_free(p) for p in ports):
            return ports, [lock]
        lock.close()
    pytest.fail(f"no block of {PORTS_PER_TEST} free ports in {PORT_RANGE}")


@pytest.fixture
def project(tmp_path: Path, docker_client: docker.DockerClient) -> Project:
    """A fresh stack directory; everything labelled with its stack name is removed after."""
    ports, locks = _reserve_ports()
    proj = Project(
        path=tmp_path,
        stack="t" + secrets.token_hex(4),
        ports=ports,
        client=docker_client,
        _locks=locks,
    )
    try:
        yield proj
    finally:
        proj.cleanup()


class RequestLoop:
    """Requests to one URL, one after another, until the block ends: what a client sees
    while berth changes the app behind it. Any status but 200, or a connection error, is
    a failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    self.bodies.append(response.read().decode("utf-8", "replace"))
                    self.ok += 1
            except urllib.error.HTTPError as err:
                self.failures.append(f"HTTP {err.code}: {err.read()[:200]!r}")
            except OSError as err:  # refused, reset, timed out
                self.failures.append(repr(err))
