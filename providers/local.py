"""The local host: the Docker engine berth runs beside (DOCKER_HOST honoured), reached
by its socket, with commands, secret files and probes on this machine.

LocalTransport is what differs from an SSH host; the Docker-level code is DockerEngine's.
"""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

from providers.docker_engine import DockerEngine
from providers.engine_http import EngineHTTP
from providers.readiness import TCP_HOLD, tcp_verdict
from providers.types import ProviderError, summary

T = TypeVar("T")


class LocalTransport:
    """Transport (providers.base) to the engine at base_url: nothing to reconnect, so a
    call is just made. Commands run here; probes dial probe_address (the engine's
    machine: 127.0.0.1, or DOCKER_HOST's address)."""

    def __init__(self, host: str, base_url: str, *, tls: bool, secrets_root: Path | None) -> None:
        from providers.secret_files import LocalSecretFiles

        self.host = host
        self.base_url = base_url
        self.docker_host = base_url  # what the docker CLI is pointed at for builds
        self.http = EngineHTTP(base_url) if EngineHTTP.supports(base_url, tls) else None
        url = urlparse(base_url)
        self.probe_address = url.hostname if url.scheme in ("tcp", "http", "https") and url.hostname else "127.0.0.1"
        remote = url.scheme in ("tcp", "http", "https", "ssh") and url.hostname not in (None, "localhost", "127.0.0.1", "::1")
        # None where berth cannot put files beside the engine (DOCKER_HOST on another
        # machine): stacks with secrets then fail at their first secret step.
        self.secret_files = None if remote or secrets_root is None else LocalSecretFiles(secrets_root, host)
        from providers.weights_files import LocalWeightsFiles, default_root

        self.weights_files = None if remote else LocalWeightsFiles(default_root(), host)
        self.why_no_files = (f"the Docker engine (DOCKER_HOST={os.environ.get('DOCKER_HOST')}) runs on another "
                             "machine; declare that machine as an SSH host")

    @property
    def engine_url(self) -> str:
        return self.base_url

    def connect_api(self) -> Any:
        import docker

        try:
            return docker.from_env(timeout=900)
        except docker.errors.DockerException as err:
            raise ProviderError(
                f"cannot reach the local Docker engine ({self.base_url}): {summary(err)}. "
                "Is dockerd running? (scripts/setup.sh starts one)"
            ) from None

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Nothing to reconnect: an engine that stops answering mid-run (dockerd stopped,
        its socket gone) is a ProviderError naming it, never a bare ConnectionError."""
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            # builtin ConnectionError (refused, reset) or requests' (docker-py's transport)
            if not any(c.__name__ == "ConnectionError" for c in type(err).__mro__):
                raise
            raise ProviderError(f"the Docker engine at {self.base_url} stopped answering ({what}): "
                                f"{summary(err)}. Is dockerd running?") from None

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        argv = shlex.split(command)
        if shutil.which(argv[0]) is None:
            return 127, "", f"{argv[0]}: command not found"
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return result.returncode, result.stdout, result.stderr

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        if path is None:
            try:
                sock = socket.create_connection((self.probe_address, port), timeout=timeout)
            except OSError as err:
                return False, f"TCP connect: {err.strerror or err}"
            with sock:
                sock.settimeout(TCP_HOLD)
                return tcp_verdict(sock.recv)
        conn = http.client.HTTPConnection(self.probe_address, port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": "berth-probe"})
            status = conn.getresponse().status
            return 200 <= status < 300, f"HTTP {status}"
        except (OSError, http.client.HTTPException) as err:
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            return False, reason.lower() if isinstance(err, OSError) else reason
        finally:
            conn.close()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


def local_engine(secrets_root: Path | None = None, host: str = "local") -> DockerEngine:
    """The engine berth runs beside, as the docker CLI would find it (DOCKER_HOST).
    secrets_root: where secret files go on this machine (the workspace decides; see
    providers.secret_files); None, or an engine on another machine, leaves it without."""
    base_url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    transport = LocalTransport(host, base_url, tls=bool(os.environ.get("DOCKER_TLS_VERIFY")),
                               secrets_root=secrets_root)
    return DockerEngine(host, transport)
