"""A Provider for a Docker host reached over SSH: one paramiko connection per host for
the whole run, carrying the Docker API, commands (nvidia-smi), secret files (one SFTP
session) and probe tunnels.

How the Docker API travels: a local forwarder listens on a unix socket in a private
temporary directory; every connection docker-py makes to it is bridged onto ONE new
`direct-streamlocal@openssh.com` channel of the host's single SSH connection, straight
to the host's Docker socket. No remote process is started per connection (docker-py's
own ssh:// transport runs a `docker system dial-stdio` per pooled connection, and those
pile up), and HTTP keep-alive reuses channels. Probes dial `direct-tcpip` channels to
the host's 127.0.0.1:PORT, so readiness works when the port is not reachable from here.

Everything Docker-level is DockerEngine's; this class adds the transport, a retry when
the connection drops (once, on a new connection, then the step fails naming host,
address and cause), image delivery and the GPU inventory. Thread-safe like DockerEngine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, TypeVar

from providers.docker_engine import DockerEngine, _summary
from providers.engine_http import EngineHTTP
from providers.gpus import Gpu, parse_nvidia_smi, NVIDIA_SMI_QUERY
from providers.readiness import TCP_HOLD, tcp_verdict
from providers.ssh.secret_files import SftpSecretFiles
from providers.types import ContainerSpec, Observation, Progress, ProviderError, SecretParts

T = TypeVar("T")

# The oldest API the engines berth supports speak (Docker 20.10). Pinned so that opening
# a client costs no /version round trip; newer engines serve older API versions.
DOCKER_API_VERSION = "1.41"
CONNECT_TIMEOUT = 10.0
SFTP_TIMEOUT = 60.0  # seconds an SFTP request (secret files: small) may wait for its reply
CHUNK = 1 << 20
PROGRESS_EVERY = 1.0  # seconds between "sent N MB" progress lines


@dataclass(frozen=True)
class SshTarget:
    """Where a host is and how to trust it: [hosts.NAME] in berth.toml, normalised."""

    name: str
    user: str
    address: str
    port: int = 22
    identity_file: str | None = None  # None: ssh-agent, then ~/.ssh/id_{ed25519,ecdsa,rsa}
    known_hosts: str = "~/.ssh/known_hosts"
    accept_new_host_key: bool = False
    docker_socket: str = "/var/run/docker.sock"
    secrets_dir: str | None = None  # None: the server's default (providers.ssh.secret_files.server_root)

    @property
    def shown(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The host as known_hosts names it: `addr`, or `[addr]:port` off port 22."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


class HostKeyError(ProviderError):
    """The host's key is unknown (and new keys are not accepted) or has changed."""


def fingerprint(key: Any) -> str:
    """OpenSSH's form: SHA256:base64 of the key blob, unpadded."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _key_types(known: list[str]) -> list[str]:
    """Host-key algorithms to offer, given the key types known_hosts holds for a host."""
    types: list[str] = []
    for name in known:
        types += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if name == "ssh-rsa" else [name]
    return types


def _dropped() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the connection (not the engine) failed."""
    import paramiko
    import requests
    import urllib3

    return (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError, paramiko.SSHException, EOFError, ConnectionError)


class SshConnection:
    """One SSH connection to one host, made on first use and remade at most when it
    drops. Counts what it opens (stats), so the benchmark can show channel reuse."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._transport: Any = None
        self._generation = 0
        self._failed: ProviderError | None = None
        self._sftp_lock = threading.Lock()
        self._sftp: tuple[int, Any] | None = None  # (generation, SFTPClient)

    # Connecting ----------------------------------------------------------------------

    def ensure(self) -> int:
        """Connect unless connected; returns the connection's generation."""
        with self._lock:
            if self._transport is None or not self._transport.is_active():
                self._replace()
            return self._generation

    def reconnect(self, generation: int, cause: BaseException) -> None:
        """After `cause` on connection `generation`: connect again, once per drop however
        many threads saw it. A host that cannot be reached stays failed for the run."""
        with self._lock:
            if generation == self._generation and self._failed is None:
                self._replace()
            elif self._failed is not None:
                raise self._failed

    def _replace(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._transport is not None:  # it was connected: the connection dropped
            self.stats["drops"] += 1
            self._transport.close()
            self._transport = None
        try:
            self._transport = self._connect()
        except ProviderError as err:
            self._failed = err
            raise
        self._generation += 1

    def _connect(self) -> Any:
        import paramiko

        t = self.target
        try:
            sock = socket.create_connection((t.address, t.port), timeout=CONNECT_TIMEOUT)
        except OSError as err:
            raise ProviderError(self._unreachable(err.strerror or str(err))) from None
        self.stats["connections"] += 1
        transport = paramiko.Transport(sock)
        transport.banner_timeout = transport.auth_timeout = CONNECT_TIMEOUT
        known = self._known_keys()
        if known:
            transport.get_security_options().key_types = _key_types(list(known))
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT)
            self._check_host_key(transport.get_remote_server_key(), known)
            self._authenticate(transport)
        except ProviderError:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as err:
            transport.close()
            raise ProviderError(self._unreachable(str(err) or type(err).__name__)) from None
        transport.set_keepalive(15)
        return transport

    def _unreachable(self, cause: str) -> str:
        return f"host {self.target.name} ({self.target.shown}) cannot be reached: {cause}"

    def _known_keys(self) -> dict[str, Any]:
        import paramiko

        path = os.path.expanduser(self.target.known_hosts)
        keys = paramiko.HostKeys()
        if os.path.exists(path):
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException) as err:
                raise ProviderError(f"host {self.target.name}: cannot read known_hosts {path}: {err}") from None
        entry = keys.lookup(self.target.known_hosts_name)
        return dict(entry) if entry else {}

    def _check_host_key(self, key: Any, known: dict[str, Any]) -> None:
        t = self.target
        offered = f"{key.get_name()} {fingerprint(key)}"
        if key.get_name() in known:
            if known[key.get_name()] == key:
                return
            raise HostKeyError(
                f"host {t.name} ({t.shown}): HOST KEY CHANGED: it offered {offered}, but "
                f"{t.known_hosts} has {fingerprint(known[key.get_name()])}. Someone may be "
                f"intercepting the connection, or the host was reinstalled; berth never "
                f"accepts a changed key: check it, then fix {t.known_hosts}"
            )
        if known:
            raise HostKeyError(f"host {t.name} ({t.shown}): offered {offered}, a key type "
                               f"{t.known_hosts} has no entry for")
        if not t.accept_new_host_key:
            raise HostKeyError(
                f"host {t.name} ({t.shown}): unknown host key {offered} (not in {t.known_hosts}). "
                f"Check the fingerprint with the host's owner, then add it with "
                f"`ssh-keyscan -p {t.port} {t.address} >> {t.known_hosts}`, "
                f"or set accept_new_host_key = true in [hosts.{t.name}]"
            )
        path = os.path.expanduser(t.known_hosts)
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{t.known_hosts_name} {key.get_name()} {key.get_base64()}\n")
        self.stats["host_keys_added"] += 1

    def _authenticate(self, transport: Any) -> None:
        import paramiko

        t = self.target
        tried: list[str] = []
        for label, key in self._keys():
            tried.append(label)
            try:
                transport.auth_publickey(t.user, key)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
        raise ProviderError(
            f"host {t.name} ({t.shown}): authentication failed for user {t.user} "
            f"(tried: {', '.join(tried) or 'no keys found'})"
        )

    def _keys(self) -> Iterator[tuple[str, Any]]:
        import paramiko

        t = self.target
        if t.identity_file:
            path = os.path.expanduser(t.identity_file)
            try:
                yield t.identity_file, paramiko.PKey.from_path(path)
            except (OSError, paramiko.SSHException) as err:
                raise ProviderError(f"host {t.name}: cannot use identity_file {t.identity_file}: {err}") from None
            return
        try:
            for key in paramiko.Agent().get_keys():
                yield f"ssh-agent {key.get_name()}", key
        except paramiko.SSHException:
            pass
        defaults = [os.path.expanduser(f"~/.ssh/{name}") for name in ("id_ed25519", "id_ecdsa", "id_rsa")]
        for path in dict.fromkeys([*self._config_identity_files(), *defaults]):
            if os.path.exists(path):
                try:
                    yield path, paramiko.PKey.from_path(path)
                except (OSError, paramiko.SSHException):
                    continue  # encrypted without an agent, or unreadable: ssh would skip it too

    def _config_identity_files(self) -> list[str]:
        """IdentityFile lines ~/.ssh/config gives this host's address, as ssh reads them
        (Host patterns, Match not evaluated); none when there is no readable config."""
        import paramiko

        path = os.path.expanduser("~/.ssh/config")
        try:
            found = paramiko.SSHConfig.from_path(path).lookup(self.target.address).get("identityfile", [])
        except (OSError, paramiko.SSHException, ValueError, KeyError):
            return []
        return [os.path.expanduser(f) for f in found]

    # Channels ------------------------------------------------------------------------

    def _transport_now(self) -> Any:
        self.ensure()
        return self._transport

    def open_streamlocal(self, path: str) -> Any:
        """A channel to a unix socket on the host (OpenSSH's direct-streamlocal)."""
        channel = _open_channel(self._transport_now(), "direct-streamlocal@openssh.com", path)
        self.stats["channels"] += 1
        self.stats["channels_docker"] += 1
        return channel

    def open_tcp(self, port: int, timeout: float) -> Any:
        """A channel to 127.0.0.1:port as seen from the host (direct-tcpip)."""
        channel = self._transport_now().open_channel(
            "direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=timeout)
        self.stats["channels"] += 1
        self.stats["channels_probe"] += 1
        return channel

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """Run a command on the host in a session channel: (exit status, stdout, stderr)."""
        channel = self._transport_now().open_session(timeout=timeout)
        self.stats["channels"] += 1
        self.stats["channels_exec"] += 1
        try:
            channel.settimeout(timeout)
            channel.exec_command(command)
            stdout = channel.makefile("rb").read()
            stderr = channel.makefile_stderr("rb").read()
            return channel.recv_exit_status(), stdout.decode(errors="replace"), stderr.decode(errors="replace")
        finally:
            channel.close()

    @contextmanager
    def sftp(self) -> Iterator[Any]:
        """The connection's one SFTP session (paramiko's SFTPClient), for the length of
        the `with` and for this thread alone: the client reads its replies on the
        caller's thread, so uses take turns. Opened on first use, and again after a
        reconnect or when its channel closed."""
        with self._sftp_lock:
            generation = self.ensure()
            if self._sftp is None or self._sftp[0] != generation or self._sftp[1].sock.closed:
                self._sftp = (generation, self._open_sftp())
            yield self._sftp[1]

    def _open_sftp(self) -> Any:
        import paramiko

        transport = self._transport_now()
        try:
            client = paramiko.SFTPClient.from_transport(transport)
        except paramiko.SSHException as err:
            if not transport.is_active():
                raise  # the connection dropped: the caller's retry connects again
            t = self.target
            raise ProviderError(
                f"host {t.name} ({t.shown}): the SSH server refused an SFTP session ({err}); berth "
                f"writes secret files over SFTP: enable the `Subsystem sftp` line of its sshd_config") from None
        self.stats["channels"] += 1
        self.stats["channels_sftp"] += 1
        client.get_channel().settimeout(SFTP_TIMEOUT)  # a stuck server fails the step, never hangs it
        return client

    def active(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_active()

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                _quietly(self._sftp[1].close)
                self._sftp = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None


def _open_channel(transport: Any, kind: str, path: str) -> Any:
    """paramiko's Transport.open_channel for a channel type it does not know: the same
    steps, with direct-streamlocal's fields (socket path, reserved string and uint32)."""
    from paramiko.channel import Channel
    from paramiko.common import cMSG_CHANNEL_OPEN
    from paramiko.message import Message
    from paramiko.ssh_exception import SSHException

    if not transport.active:
        raise SSHException("SSH session not active")
    with transport.lock:
        window_size = transport._sanitize_window_size(None)
        max_packet_size = transport._sanitize_packet_size(None)
        chanid = transport._next_channel()
        m = Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string(kind)
        m.add_int(chanid)
        m.add_int(window_size)
        m.add_int(max_packet_size)
        m.add_string(path)
        m.add_string("")
        m.add_int(0)
        chan = Channel(chanid)
        transport._channels.put(chanid, chan)
        transport.channel_events[chanid] = event = threading.Event()
        transport.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(window_size, max_packet_size)
    transport._send_user_message(m)
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while not event.wait(0.1):
        if not transport.active or time.monotonic() > deadline:
            break
    chan = transport._channels.get(chanid)
    if chan is not None and event.is_set():
        return chan
    raise transport.get_exception() or SSHException(f"cannot open a channel to {path} on the host")


def _quietly(fn: Callable[[], Any]) -> None:
    """Run a close that may fail on a connection already gone: a thread's traceback on
    berth's stderr would tell the user nothing."""
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


class _Forwarder:
    """A unix socket in a private directory; each connection to it is bridged onto one new
    channel from `open_channel`. Lives as long as the provider."""

    def __init__(self, open_channel: Callable[[], Any]) -> None:
        self._open_channel = open_channel
        self.dir = tempfile.mkdtemp(prefix="berth-ssh-")  # mode 0700: only this user
        self.path = os.path.join(self.dir, "docker.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(64)
        self.local_connections = 0
        self.last_error: Exception | None = None  # why the latest channel could not be opened
        threading.Thread(target=self._serve, name="berth-ssh-forwarder", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.local_connections += 1
            threading.Thread(target=self._bridge, args=(conn,), daemon=True).start()

    def _bridge(self, conn: socket.socket) -> None:
        try:
            channel = self._open_channel()
        except Exception as err:  # noqa: BLE001 - the client sees a closed connection; the provider asks why
            self.last_error = err
            conn.close()
            return
        self.last_error = None

        def upstream() -> None:
            try:
                while data := conn.recv(CHUNK):
                    channel.sendall(data)
                channel.shutdown_write()
            except Exception:  # noqa: BLE001 - either side gone: the other loop ends too
                _quietly(channel.close)

        pump = threading.Thread(target=upstream, daemon=True)
        pump.start()
        try:
            while data := channel.recv(CHUNK):
                conn.sendall(data)
        except Exception:  # noqa: BLE001 - a dropped connection: the client sees it closed
            pass
        finally:
            _quietly(channel.close)  # the connection may be gone already (berth closing, or a drop)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SshHost(DockerEngine):
    """DockerEngine over one SSH connection. `builder` is the local engine: apps with
    `build` are built there once and their images sent here (see receive_image)."""

    def __init__(self, target: SshTarget, builder: Callable[[], DockerEngine]) -> None:
        import logging

        # paramiko logs refused probe channels as warnings; berth reports what matters.
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        logging.getLogger("paramiko").propagate = False
        self.target = target
        self.conn = SshConnection(target)
        self._builder = builder
        self._forwarder = _Forwarder(lambda: self.conn.open_streamlocal(target.docker_socket))
        path = self._forwarder.path

        def connect() -> Any:  # docker-py, loaded only when a step changes something
            import docker

            client = docker.APIClient(base_url=f"unix://{path}", version=DOCKER_API_VERSION, timeout=900)
            _share_one_pool(client, path)
            return client

        # Refresh reads through plain HTTP on the same forwarder (one channel, kept alive).
        super().__init__(target.name, None, "127.0.0.1", connect=connect, http=EngineHTTP(f"unix://{path}"),
                         secret_files=SftpSecretFiles(target.name, self.conn.sftp, target.user, target.secrets_dir))
        self._gpus: tuple[Gpu, ...] | None = None
        self._layers: set[str] | None = None
        self.image_bytes_sent = 0

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn over the connection; when the connection drops, once more over a new one."""
        from paramiko import ChannelException  # a refused channel: the connection is fine

        generation = self.conn.ensure()
        try:
            return fn(*args, **kwargs)
        except ChannelException:
            raise
        except _dropped() as err:
            self._raise_if_engine_refused()
            self.conn.reconnect(generation, err)
        try:
            return fn(*args, **kwargs)
        except ChannelException:
            raise
        except _dropped() as err:
            raise ProviderError(
                f"host {self.target.name} ({self.target.shown}): connection lost twice while trying to "
                f"{what}: {type(err).__name__}: {err}"
            ) from None

    # Docker-level operations, each retried once over a new connection -----------------

    def _raise_if_engine_refused(self) -> None:
        """The connection is up but the host refused a channel to its Docker socket (no
        dockerd there, or docker_socket names the wrong path): say so; reconnecting would
        not help, and the forwarder's local socket path would tell the user nothing."""
        cause = self._forwarder.last_error
        if cause is not None and self.conn.active():
            t = self.target
            raise ProviderError(
                f"host {t.name} ({t.shown}): cannot reach its Docker engine at {t.docker_socket}: "
                f"{getattr(cause, 'text', None) or cause} (is dockerd running there, and is "
                f"docker_socket in [hosts.{t.name}] right?)")

    def observe(self, stack: str, secrets: bool = True) -> Observation:
        """The Docker lists (one channel, kept alive) and, with `secrets`, the secret
        files (the SFTP session) read side by side: the plan waits for the slower."""
        if not secrets:
            return self._call("list containers and images", self._observe_engine, stack)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-sftp") as pool:
            listed = pool.submit(self._call, "list secret files", self.secret_files.list, stack)
            observed = self._call("list containers and images", self._observe_engine, stack)
            return replace(observed, secrets=listed.result())

    def _observe_engine(self, stack: str) -> Observation:
        try:
            return DockerEngine.observe(self, stack, secrets=False)
        except ProviderError as err:  # EngineHTTP's: it names only the local forwarder
            self._raise_if_engine_refused()
            if not self.conn.active():
                raise ConnectionError(str(err)) from None  # dropped: _call connects again once
            raise ProviderError(f"host {self.target.name} ({self.target.shown}): cannot list containers "
                                f"and images: {err}") from None

    def build_image(self, context: str, dockerfile: str, args: dict[str, str], tag: str,
                    labels: dict[str, str], progress: Progress) -> str:
        """Built on the local engine, once for every host: the context never travels
        (nor need the hosts have its base image); receive_image sends the result."""
        return self._builder().build_image(context, dockerfile, args, tag, labels, progress)

    def ensure_image(self, ref: str, progress: Progress) -> str:
        """As the host has it, else pulled there; where the pull fails (no registry) and
        the local engine has the image, it is sent from here."""
        try:
            return self._call(f"pull {ref}", super().ensure_image, ref, progress)
        except ProviderError as err:
            local = self._builder()
            try:
                local.api.inspect_image(ref)
            except Exception:  # noqa: BLE001 - not here either: the pull's error says why
                raise err from None
            progress(f"pull failed on {self.host}; sending the local copy")
            return self.receive_image(ref, ref, progress)

    def tag_image(self, image_id: str, tag: str) -> None:
        self._call("tag an image", super().tag_image, image_id, tag)

    def remove_image(self, ref: str) -> None:
        self._call("remove an image", super().remove_image, ref)

    def run_container(self, spec: ContainerSpec) -> str:
        return self._call(f"start {spec.name}", super().run_container, spec)

    def create_container(self, spec: ContainerSpec) -> str:
        return self._call(f"create {spec.name}", super().create_container, spec)

    def start_container(self, container_id: str, spec: ContainerSpec | None = None) -> None:
        self._call(f"start {spec.name if spec else container_id[:12]}", super().start_container, container_id, spec)

    def stop_container(self, container_id: str) -> None:
        self._call("stop a container", super().stop_container, container_id)

    def update_container(self, container_id: str, spec: ContainerSpec) -> None:
        self._call(f"update {spec.name}", super().update_container, container_id, spec)

    def remove_container(self, container_id: str) -> None:
        self._call("remove a container", super().remove_container, container_id)

    def write_secret(self, parts: SecretParts, value: bytes) -> str:
        return self._call(f"write secret file {'/'.join(parts)}", super().write_secret, parts, value)

    def remove_secret(self, parts: SecretParts) -> None:
        self._call(f"remove secret file {'/'.join(parts)}", super().remove_secret, parts)

    def container_state(self, container_id: str) -> dict:
        return self._call("inspect a container", super().container_state, container_id)

    def logs(self, container_id: str, tail: int) -> str:
        try:
            return self._call("read a container's log", super().logs, container_id, tail)
        except ProviderError:
            return ""

    def docker_version(self) -> str:
        return self._call("read the Docker version", lambda: self.api.version().get("Version", "?"))

    # Images --------------------------------------------------------------------------

    def receive_image(self, ref: str, tag: str, progress: Progress) -> str:
        """Make the local engine's image `ref` present here, tagged `tag`: nothing is sent
        when the host has the image (by ID), and of a missing image only the layers the
        host lacks. Streams (docker save → docker load); returns the image ID."""
        source = self._builder()
        image = source.api.inspect_image(ref)
        image_id = image["Id"]
        with self._lock_for("receive:" + image_id):
            if not self._call("inspect an image", self._has_image, image_id):
                self._call(f"send image {tag}", self._send_image, source, image, progress)
            else:
                progress(f"{self.host} already has image {image_id[7:19]}: nothing sent")
            self.tag_image(image_id, tag)
        return image_id

    def _has_image(self, image_id: str) -> bool:
        import docker.errors

        try:
            self.api.inspect_image(image_id)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _layer_chains(self) -> set[str]:
        """Chain IDs of every layer stack the host's images have (docker load skips those)."""
        if self._layers is None:
            chains: set[str] = set()
            for listed in self.api.images():
                layers = self.api.inspect_image(listed["Id"]).get("RootFS", {}).get("Layers") or []
                chains.update(chain_ids(layers))
            self._layers = chains
        return self._layers

    def _send_image(self, source: DockerEngine, image: dict, progress: Progress) -> None:
        present = self._layer_chains()
        wanted = chain_ids(image.get("RootFS", {}).get("Layers") or [])
        skip = [c for c in wanted if c in present]
        sent = [0]
        last = [time.monotonic()]

        def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for chunk in chunks:
                sent[0] += len(chunk)
                if time.monotonic() - last[0] >= PROGRESS_EVERY:
                    last[0] = time.monotonic()
                    progress(f"sent {_mb(sent[0])} to {self.host}")
                yield chunk

        with tempfile.TemporaryFile(prefix="berth-image-") as spool:
            if skip:
                # Which tar members are which layers is known only from the archive's
                # manifest, at its end: spool it to disk (never memory), then send the rest.
                for chunk in source.api.get_image(image["Id"]):
                    spool.write(chunk)
                spool.flush()
                body = filtered_image_tar(spool, present)
            else:
                body = iter(source.api.get_image(image["Id"]))
            try:
                self._load(counted(body))
            except ProviderError as err:
                if not skip:
                    raise
                # Leaving out present layers relies on docker load skipping layers it has
                # (true of the classic image store berth is tested on); an engine that wants
                # the whole archive (the containerd image store may) gets it once more.
                progress(f"{self.host} refused the archive without its present layers ({err}); sending it whole")
                spool.seek(0)
                self._load(counted(iter(lambda: spool.read(CHUNK), b"")))
        self.image_bytes_sent += sent[0]
        self._layers = (self._layers or set()) | set(wanted)
        progress(f"sent {_mb(sent[0])} to {self.host}"
                 + (f" ({len(skip)} of {len(wanted)} layers already there)" if skip else ""))

    def _load(self, body: Iterator[bytes]) -> None:
        import docker.errors

        try:
            for status in self.api.load_image(body):
                if "error" in status:
                    raise ProviderError(f"docker load on {self.host} failed: {status['error']}")
        except docker.errors.APIError as err:
            raise ProviderError(f"docker load on {self.host} failed: {_summary(err)}") from None

    # GPUs and probes -----------------------------------------------------------------

    def gpus(self) -> tuple[Gpu, ...]:
        """The host's GPUs from nvidia-smi, read once per run; none without nvidia-smi."""
        if self._gpus is None:
            rc, out, err = self._call("run nvidia-smi", self.conn.run, NVIDIA_SMI_QUERY)
            if rc == 127:  # command not found: a host without NVIDIA's driver has no GPUs
                self._gpus = ()
            elif rc != 0:
                raise ProviderError(f"host {self.host}: nvidia-smi failed (exit {rc}): {(err or out).strip()}")
            else:
                try:
                    self._gpus = parse_nvidia_smi(out)
                except ValueError as err:  # not the CSV asked for: say so, never a traceback
                    raise ProviderError(f"host {self.host}: cannot read nvidia-smi's answer: {err}") from None
        return self._gpus

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        import paramiko

        try:
            channel = self._call("open a probe tunnel", self.conn.open_tcp, port, timeout)
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

    def stats(self) -> dict[str, int]:
        return dict(self.conn.stats) | {"image_bytes_sent": self.image_bytes_sent,
                                        "local_connections": self._forwarder.local_connections}

    def close(self) -> None:
        super().close()
        self.conn.close()
        self._forwarder.close()


def _share_one_pool(client: Any, socket_path: str) -> None:
    """docker-py keys its unix-socket connection pools by request URL, so every endpoint
    (/containers/json, /images/json, ...) opens a connection of its own: here, a channel
    each. One pool for all URLs lets keep-alive reuse channels across endpoints."""
    from docker.transport import UnixHTTPAdapter

    class OnePool(UnixHTTPAdapter):
        def get_connection(self, url: Any, proxies: Any = None) -> Any:
            return super().get_connection("http+docker://localhost", proxies)

    adapter = OnePool(f"http+unix://{socket_path}", timeout=900, max_pool_size=16)
    client.mount("http+docker://", adapter)
    client._custom_adapter = adapter


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Docker's chain ID of each layer prefix: chain[0] = diff[0],
    chain[i] = sha256(chain[i-1] + " " + diff[i])."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def filtered_image_tar(spool: Any, present_chains: set[str]) -> Iterator[bytes]:
    """The `docker save` archive in `spool` without the layer files whose chain ID the
    receiving engine has: docker load registers a layer only when its chain is missing,
    and never opens the file otherwise. Members are copied byte for byte."""
    spool.seek(0)
    with tarfile.open(fileobj=spool, mode="r:") as archive:
        members = archive.getmembers()
        manifest = json.load(archive.extractfile("manifest.json"))
        skip: set[str] = set()
        for entry in manifest:
            config = json.load(archive.extractfile(entry["Config"]))
            for chain, layer in zip(chain_ids(config["rootfs"]["diff_ids"]), entry["Layers"]):
                if chain in present_chains:
                    skip.add(layer)
        # A layer file another member links to must stay.
        skip -= {os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
                 for m in members if m.issym()} | {m.linkname for m in members if m.islnk()}
    end = 0
    for member in members:
        start = member.offset
        end = member.offset_data + (-(-member.size // 512) * 512 if member.isreg() else 0)
        if member.name in skip:
            continue
        spool.seek(start)
        left = end - start
        while left:
            data = spool.read(min(CHUNK, left))
            if not data:
                raise ProviderError("the saved image archive ended early")
            left -= len(data)
            yield data
    yield b"\0" * 1024  # the end-of-archive marker


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
