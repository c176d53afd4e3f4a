"""An SSH host: DockerEngine on an SshTransport, one paramiko connection for the whole
run carrying the Docker API (forwarder), commands, secret files (SFTP) and probe tunnels.

Probes dial `direct-tcpip` channels to the host's 127.0.0.1:PORT, so readiness works
when the port is not reachable from here. Every engine call is retried once when the
connection drops (Transport.call), then the step fails naming host, address and cause.
Images are built on the local engine and sent (providers.ssh.images), or with
build_on = "host" on the host's own engine, the docker CLI pointed at the forwarder.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from providers.docker_engine import DockerEngine
from providers.engine_http import EngineHTTP
from providers.readiness import TCP_HOLD, tcp_verdict
from providers.ssh.connection import CONNECT_TIMEOUT, HostKeyError, SshConnection, SshTarget, dropped_errors
from providers.ssh.forwarder import Forwarder, share_one_pool
from providers.ssh.images import ImageDelivery
from providers.ssh.secret_files import SftpSecretFiles
from providers.types import ProviderError

__all__ = ["HostKeyError", "SshHost", "SshTarget", "SshTransport"]

T = TypeVar("T")

# The oldest API the engines berth supports speak (Docker 20.10). Pinned so that opening
# a client costs no /version round trip; newer engines serve older API versions.
DOCKER_API_VERSION = "1.41"


class SshTransport:
    """Transport (providers.base) over one SshConnection: the engine's socket through a
    local Forwarder, commands in session channels, secret files over SFTP, probes
    through tunnels. Thread-safe."""

    def __init__(self, target: SshTarget) -> None:
        import logging

        # paramiko logs refused probe channels as warnings; berth reports what matters.
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        logging.getLogger("paramiko").propagate = False
        self.host = target.name
        self.target = target
        self.conn = SshConnection(target)
        self.forwarder = Forwarder(lambda: self.conn.open_streamlocal(target.docker_socket))
        # Refresh reads through plain HTTP on the same forwarder (one channel, kept alive).
        self.http = _EngineOverSsh(self, f"unix://{self.forwarder.path}")
        self.docker_host = f"unix://{self.forwarder.path}"  # the docker CLI's way to this engine
        self.secret_files = SftpSecretFiles(target.name, self.conn.sftp, target.user, target.secrets_dir)
        from providers.ssh.weights_files import SftpWeightsFiles

        self.weights_files = SftpWeightsFiles(target.name, self.conn.sftp, target.user, self.conn.run)
        self.why_no_files = "no file transport to it"
        self._depth = threading.local()

    @property
    def engine_url(self) -> str:
        return f"unix://{self.forwarder.path}"

    def connect_api(self) -> Any:  # docker-py, loaded only when a step changes something
        import docker

        path = self.forwarder.path
        client = docker.APIClient(base_url=f"unix://{path}", version=DOCKER_API_VERSION, timeout=900)
        share_one_pool(client, path)
        return client

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn over the connection; when the connection drops, once more over a new one.
        A call inside another on this thread runs straight through: the outermost retries
        (so a retried call never multiplies, and all of it runs on one connection)."""
        if getattr(self._depth, "n", 0):
            return fn(*args, **kwargs)
        self._depth.n = 1
        try:
            return self._retried(what, fn, *args, **kwargs)
        finally:
            self._depth.n = 0

    def _retried(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from paramiko import ChannelException  # a refused channel: the connection is fine

        generation = self.conn.ensure()
        try:
            return fn(*args, **kwargs)
        except ChannelException:
            raise
        except dropped_errors() as err:
            self.raise_if_engine_refused()
            self.conn.reconnect(generation, err)
        try:
            return fn(*args, **kwargs)
        except ChannelException:
            raise
        except dropped_errors() as err:
            raise ProviderError(
                f"host {self.target.name} ({self.target.shown}): connection lost twice while trying to "
                f"{what}: {type(err).__name__}: {err}"
            ) from None

    def raise_if_engine_refused(self) -> None:
        """The connection is up but the host refused a channel to its Docker socket (no
        dockerd there, or docker_socket names the wrong path): say so; reconnecting would
        not help, and the forwarder's local socket path would tell the user nothing."""
        cause = self.forwarder.last_error
        if cause is not None and self.conn.active():
            t = self.target
            raise ProviderError(
                f"host {t.name} ({t.shown}): cannot reach its Docker engine at {t.docker_socket}: "
                f"{getattr(cause, 'text', None) or cause} (is dockerd running there, and is "
                f"docker_socket in [hosts.{t.name}] right?)")

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        return self.conn.run(command, timeout)

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        import paramiko

        try:
            # The tunnel's opening is one round trip on the live connection (the host's
            # connect to a local port answers at once, refused or not), so it gets the
            # connection's own timeout: a probe's short one (1 s for a free-port check)
            # would read a loaded host's slow answer as a dropped connection.
            channel = self.call("open a probe tunnel", self.conn.open_tcp, port, max(timeout, CONNECT_TIMEOUT))
        except paramiko.ChannelException as err:
            return False, f"TCP connect (from {self.host}): {err.text}"
        try:
            if path is None:
                channel.settimeout(TCP_HOLD)
                return tcp_verdict(channel.recv)
            channel.settimeout(timeout)
            channel.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
                            f"User-Agent: berth-probe\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                data = channel.recv(4096)
                if not data:
                    break
                head += data
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) < 2 or not parts[1].isdigit():
                return False, "no HTTP answer"
            status = int(parts[1])
            return 200 <= status < 300, f"HTTP {status}"
        except (OSError, EOFError) as err:
            return False, f"{type(err).__name__}: {err}"
        finally:
            channel.close()

    def close(self) -> None:
        self.http.close()
        self.conn.close()
        self.forwarder.close()


class _EngineOverSsh(EngineHTTP):
    """EngineHTTP through the forwarder, whose errors name only the local socket: a drop
    becomes ConnectionError (Transport.call connects again once), a refused Docker
    socket says so, anything else names the host."""

    def __init__(self, transport: SshTransport, base_url: str) -> None:
        super().__init__(base_url)
        self._transport = transport

    def get_json(self, path: str, **params: Any) -> Any:
        try:
            return super().get_json(path, **params)
        except ProviderError as err:
            t = self._transport
            t.raise_if_engine_refused()
            if not t.conn.active():
                raise ConnectionError(str(err)) from None  # dropped: the call connects again once
            raise ProviderError(f"host {t.target.name} ({t.target.shown}): cannot list containers "
                                f"and images: {err}") from None

    def send(self, method: str, path: str, timeout: float | None = 60.0, **params: str) -> tuple[int, str]:
        try:
            return super().send(method, path, timeout, **params)
        except ProviderError as err:
            t = self._transport
            t.raise_if_engine_refused()
            if not t.conn.active():
                raise ConnectionError(str(err)) from None  # dropped: the call connects again once
            raise ProviderError(f"host {t.target.name} ({t.target.shown}): {method} {path}: {err}") from None


class SshHost(DockerEngine):
    """DockerEngine on an SshTransport, and nothing else of its own: it overrides no
    Docker-level code. `builder` is the local engine: apps with `build` are built there
    once and their images sent here (ImageDelivery)."""

    def __init__(self, target: SshTarget, builder: Callable[[], DockerEngine]) -> None:
        self.target = target
        super().__init__(target.name, SshTransport(target),
                         delivery_for=lambda engine: ImageDelivery(engine, builder))

    @property
    def conn(self) -> SshConnection:
        return self.transport.conn

    def stats(self) -> dict[str, int]:
        """Connections and channels opened, image bytes sent (BERTH_SSH_STATS, bench/)."""
        return dict(self.conn.stats) | {"image_bytes_sent": self.delivery.bytes_sent,
                                        "local_connections": self.transport.forwarder.local_connections}
