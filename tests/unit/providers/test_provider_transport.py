"""The seams under one Provider, on fakes: every engine call goes through the host's
Transport (and so is retried once over SSH when the connection drops), the SSH retry
itself, image delivery's one question (builds_here), GPU facts, and the one factory."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest

from providers import open_provider
from providers.base import BUILD_HOST, Provider
from providers.docker_engine import DockerEngine
from providers.docker_spec import create_args, host_config_args, limits, split_ref
from providers.gpus import read_gpus
from providers.local import LocalTransport
from providers.ssh.connection import SshTarget
from providers.ssh.host import SshTransport
from providers.types import ContainerSpec, ProviderError


class FakeTransport:
    """A Transport that records the name of every call and runs it."""

    host = "fake"
    http = None
    secret_files = None
    why_no_files = "no file transport to it"

    def __init__(self, api: Any = None) -> None:
        self.calls: list[str] = []
        self.api = api

    def connect_api(self) -> Any:
        return self.api

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(what)
        return fn(*args, **kwargs)

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        return 0, "0, NVIDIA H100 80GB HBM3, 81559, GPU-aaa\n", ""

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        return False, "closed"

    def close(self) -> None:
        pass


class FakeApi:
    def restart(self, container_id: str, timeout: int) -> None:
        self.restarted = container_id
        self.timeout = timeout

    def inspect_container(self, container_id: str) -> dict:
        return {"Config": {"StopTimeout": 45}}  # created with stop_timeout = 45

    def exec_create(self, container_id: str, command: list[str]) -> dict:
        return {"Id": "e1"}

    def exec_start(self, exec_id: str) -> bytes:
        return b"ok"

    def exec_inspect(self, exec_id: str) -> dict:
        return {"ExitCode": 0}


def _protocol_methods() -> set[str]:
    return {name for name, member in vars(Provider).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def test_every_provider_method_is_an_engine_call_or_says_why_not() -> None:
    methods = _protocol_methods()
    assert {"restart_container", "run_in", "gpus", "docker_version", "receive_image"} <= methods
    assert set(DockerEngine.NOT_RETRIED) <= methods
    for name in methods - set(DockerEngine.NOT_RETRIED):
        assert getattr(getattr(DockerEngine, name), "engine_call", False), f"{name} bypasses Transport.call"
    for name in methods:
        assert callable(getattr(DockerEngine, name)), name


def test_restart_and_run_in_go_through_the_transport() -> None:
    transport = FakeTransport(FakeApi())
    engine = DockerEngine("h", transport)
    engine.restart_container("c1")
    assert transport.api.timeout == 45  # the container's own stop_timeout, not Docker's 10
    assert engine.run_in("c1", ["caddy", "reload"]) == (0, "ok")
    assert transport.calls == ["restart a container", "run caddy in a container"]


def test_builds_here_unless_a_builder_is_named() -> None:
    from providers.ssh.images import ImageDelivery

    local = DockerEngine(BUILD_HOST, FakeTransport())
    assert local.builds_here
    remote = DockerEngine("gpu1", FakeTransport(), delivery_for=lambda engine: ImageDelivery(engine, lambda: local))
    assert not remote.builds_here


def test_gpus_are_read_once_over_the_transport() -> None:
    transport = FakeTransport()
    engine = DockerEngine("h", transport)
    assert [g.index for g in engine.gpus()] == ["0"]
    engine.gpus()
    assert transport.calls == ["run nvidia-smi"]


def test_gpu_facts_from_a_commands_answer() -> None:
    assert read_gpus("h", 127, "", "nvidia-smi: not found") == ()
    with pytest.raises(ProviderError, match=r"host h: nvidia-smi failed \(exit 9\): no driver"):
        read_gpus("h", 9, "no driver\n", "")
    with pytest.raises(ProviderError, match="cannot read nvidia-smi's answer"):
        read_gpus("h", 0, "garbage\n", "")


def test_local_transport_runs_commands_here() -> None:
    transport = LocalTransport("local", "unix:///nonexistent.sock", tls=False, secrets_root=None)
    assert transport.run("berth-no-such-command --x")[0] == 127
    assert transport.run(f"{sys.executable} -c 'print(7)'")[:2] == (0, "7\n")
    assert transport.secret_files is None and "DOCKER_HOST" in transport.why_no_files


class FakeConnection:
    def __init__(self) -> None:
        self.generation = 1
        self.reconnects = 0

    def ensure(self) -> int:
        return self.generation

    def reconnect(self, generation: int, cause: BaseException) -> None:
        self.reconnects += 1
        self.generation += 1

    def active(self) -> bool:
        return True

    def close(self) -> None:
        pass


@pytest.fixture
def ssh_transport():
    transport = SshTransport(SshTarget(name="th9", user="root", address="192.0.2.1"))
    transport.conn = FakeConnection()
    yield transport
    transport.close()


def test_a_dropped_connection_is_retried_once(ssh_transport) -> None:
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionResetError("reset by peer")
        return "done"

    assert ssh_transport.call("restart a container", flaky) == "done"
    assert (len(attempts), ssh_transport.conn.reconnects) == (2, 1)


def test_a_connection_lost_twice_fails_naming_host_and_call(ssh_transport) -> None:
    def dropped() -> None:
        raise EOFError("gone")

    with pytest.raises(ProviderError, match=r"host th9 \(root@192.0.2.1:22\): connection lost twice "
                                            r"while trying to run caddy in a container: EOFError: gone"):
        ssh_transport.call("run caddy in a container", dropped)


def test_an_engine_error_is_not_retried(ssh_transport) -> None:
    attempts = []

    def refused() -> None:
        attempts.append(1)
        raise ProviderError("no such container")

    with pytest.raises(ProviderError, match="no such container"):
        ssh_transport.call("restart a container", refused)
    assert len(attempts) == 1 and ssh_transport.conn.reconnects == 0


def test_a_call_inside_a_call_leaves_the_retry_to_the_outer_one(ssh_transport) -> None:
    inner_attempts = []

    def inner() -> None:
        inner_attempts.append(1)
        if len(inner_attempts) == 1:
            raise ConnectionResetError("reset")

    ssh_transport.call("start web", lambda: ssh_transport.call("open a probe tunnel", inner))
    assert (len(inner_attempts), ssh_transport.conn.reconnects) == (2, 1)  # the outer call ran twice


def test_open_provider_chooses_the_kind_from_the_settings() -> None:
    local = open_provider(BUILD_HOST, None, builder=lambda: None)
    remote = open_provider("th9", {"name": "th9", "user": "root", "address": "192.0.2.1"}, builder=lambda: local)
    try:
        assert local.builds_here and not remote.builds_here
        assert (local.host, remote.host) == (BUILD_HOST, "th9")
    finally:
        remote.close()
        local.close()
    with pytest.raises(KeyError):
        open_provider("gpu-a", None, builder=lambda: None)


def test_container_arguments_are_plain_data() -> None:
    spec = ContainerSpec(name="w", image="x:1", port=80, host_port=8000, labels={"a": "b"}, cpus=0.5,
                         gpus=("0", "1"), env={"K": "v"}, secret_env={"S": "s"})
    host = host_config_args(spec, secret_path=lambda parts: "/never")
    assert host["port_bindings"] == {80: 8000} and host["cpu_quota"] == 50_000 and host["mounts"] is None
    assert host["device_requests"][0]["DeviceIDs"] == ["0", "1"]
    created = create_args(spec, {"hc": 1})
    assert created["environment"] == {"K": "v", "NVIDIA_VISIBLE_DEVICES": "0,1", "S": "s"}
    assert limits(ContainerSpec(name="w", image="x", port=1, host_port=1, labels={}, memory=5)) == {
        "mem_limit": 5, "memswap_limit": -1}
    assert split_ref("reg:5000/a/b:2") == ("reg:5000/a/b", "2")
    assert split_ref("a@sha256:x") == ("a", "sha256:x") and split_ref("a") == ("a", "latest")


def test_providers_modules_stay_cheap_to_import() -> None:
    code = ("import providers, providers.local, providers.ssh.host, providers.ssh.images, sys; "
            "print(sorted(m for m in ('docker', 'paramiko', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class RestartedApi:
    """A container its restart policy has just brought back: Docker's inspect says
    running with ExitCode 0 (reset for the new run); its "die" event has the real code."""

    def __init__(self, die_codes: list[str]) -> None:
        self.die_codes = die_codes

    def inspect_container(self, container_id: str) -> dict:
        return {"State": {"Status": "running", "Running": True, "Restarting": False, "ExitCode": 0},
                "RestartCount": len(self.die_codes)}

    def events(self, **kwargs: Any) -> Any:
        assert kwargs["filters"] == {"container": ["c1"], "event": ["die"]}
        return iter([{"Action": "die", "Actor": {"Attributes": {"exitCode": code}}} for code in self.die_codes])


def test_a_restarted_crash_reports_the_exit_code_it_died_with() -> None:
    engine = DockerEngine("h", FakeTransport(RestartedApi(["1", "3"])))
    state = engine.container_state("c1")
    assert (state["ExitCode"], state["RestartCount"]) == (3, 2)


def test_a_container_never_restarted_keeps_its_own_exit_code() -> None:
    engine = DockerEngine("h", FakeTransport(RestartedApi([])))
    assert engine.container_state("c1")["ExitCode"] == 0


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "Connection refused"),
                                   ConnectionResetError(104, "Connection reset by peer")])
def test_a_local_engine_that_stops_answering_is_named_not_an_internal_error(error: Exception) -> None:
    transport = LocalTransport("local", "unix:///var/run/docker.sock", tls=False, secrets_root=None)

    def gone() -> None:
        raise error

    with pytest.raises(ProviderError, match=r"the Docker engine at unix:///var/run/docker.sock stopped answering "
                                            r"\(list containers\)"):
        transport.call("list containers", gone)


def test_a_requests_connection_error_from_docker_py_is_named_too() -> None:
    import requests

    transport = LocalTransport("local", "unix:///var/run/docker.sock", tls=False, secrets_root=None)

    def gone() -> None:
        raise requests.exceptions.ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file'))")

    with pytest.raises(ProviderError, match="stopped answering"):
        transport.call("start web", gone)
    with pytest.raises(ValueError):  # other errors pass as they are
        transport.call("x", lambda: int("x"))
