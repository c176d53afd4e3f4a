"""One paramiko connection to one SSH host: its target, the host-key checks, the login,
and the channels over it (made on first use, remade at most once per drop).

Everything berth sends to an SSH host travels here: Docker API channels (for the
forwarder), probe tunnels, commands and the one SFTP session for secret files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from providers.types import ProviderError

CONNECT_TIMEOUT = 10.0
MAX_JUMPS = 8  # bastions in a row, as far as ProxyJump (and ~/.ssh/config's) may chain
SFTP_TIMEOUT = 60.0  # seconds an SFTP request (secret files: small) may wait for its reply


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
    # A bastion to connect through ("user@host:port", or a Host alias of ~/.ssh/config),
    # as ssh's ProxyJump; None: ~/.ssh/config's ProxyJump or ProxyCommand for the
    # address, if it has one.
    proxy_jump: str | None = None
    # Whether the file wrote the user and the port; where it did not, ~/.ssh/config's
    # User and Port for the address count, as they do for ssh.
    user_given: bool = True
    port_given: bool = True

    @property
    def shown(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The host as known_hosts names it: `addr`, or `[addr]:port` off port 22."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class Route:
    """How a target is reached, after ~/.ssh/config had its say (paramiko's SSHConfig,
    as ssh reads it: Host patterns, first value wins; Match is not evaluated)."""

    address: str  # HostName
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None  # "host1,user@host2:port": the first hop first
    proxy_command: str | None = None

    @property
    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


def ssh_config_for(address: str, path: str = "~/.ssh/config") -> dict[str, Any]:
    """What ~/.ssh/config says for `address` (lower-case keys, as paramiko gives them);
    {} without a readable config."""
    import paramiko

    try:
        return dict(paramiko.SSHConfig.from_path(os.path.expanduser(path)).lookup(address))
    except (OSError, paramiko.SSHException, ValueError, KeyError):
        return {}


def route(target: SshTarget, config: dict[str, Any]) -> Route:
    """Where and how to connect: the file's own settings first, ~/.ssh/config's for what
    it leaves out (as ssh itself lets the command line win over the config)."""
    jump = target.proxy_jump or config.get("proxyjump")
    command = None if target.proxy_jump else config.get("proxycommand")
    if jump and jump.lower() == "none":
        jump = None
    if command and command.lower() == "none":
        command = None
    return Route(
        address=config.get("hostname") or target.address,
        port=target.port if target.port_given or "port" not in config else int(config["port"]),
        user=target.user if target.user_given or "user" not in config else config["user"],
        identity_files=tuple(os.path.expanduser(f) for f in config.get("identityfile", [])),
        proxy_jump=jump, proxy_command=command if not jump else None,
    )


def jump_target(target: SshTarget, spec: str, hop: int) -> SshTarget:
    """The bastion `spec` ("[user@]host[:port]") as a target of its own, trusted and
    logged into as the host behind it is (same known_hosts, identity and policy)."""
    user, _, rest = spec.rpartition("@")
    address, port = rest, None
    if rest.startswith("["):
        address, _, tail = rest[1:].partition("]")
        port = tail[1:] or None
    elif rest.count(":") == 1:
        address, port = rest.split(":")
    return SshTarget(name=f"{target.name} (jump {hop + 1}: {spec})", user=user or target.user, address=address,
                     port=int(port) if port else 22, identity_file=target.identity_file,
                     known_hosts=target.known_hosts, accept_new_host_key=target.accept_new_host_key,
                     user_given=bool(user), port_given=port is not None)


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


def gcm_first(ciphers: tuple[str, ...]) -> tuple[str, ...]:
    """paramiko's ciphers with AES-GCM first, the rest in paramiko's order: its
    authenticated encryption does the MAC's work too, and image delivery is gigabytes
    through this transport (a 384 MiB send to a test host: 138 MiB/s and 4.7 ms of CPU a
    MiB, against aes128-ctr's 119 MiB/s and 5.4 ms). A server without it gets the next."""
    return tuple(sorted(ciphers, key=lambda name: 0 if "-gcm@" in name else 1))


def dropped_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the connection (not the engine) failed."""
    import paramiko
    import requests
    import urllib3

    return (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError, paramiko.SSHException, EOFError, ConnectionError)


class SshConnection:
    """One SSH connection to one host, made on first use and remade at most when it
    drops. Counts what it opens (stats), so the benchmark can show channel reuse."""

    def __init__(self, target: SshTarget, depth: int = 0) -> None:
        self.target = target
        self.depth = depth  # how many bastions deep this connection is (a guard against a loop)
        self._route: Route | None = None
        self._jump: SshConnection | None = None  # the bastion this connection goes through
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
            if self._jump is not None:
                self._jump.close()
                self._jump = None
        try:
            self._transport = self._connect()
        except ProviderError as err:
            self._failed = err
            raise
        self._generation += 1

    @property
    def route(self) -> Route:
        if self._route is None:
            self._route = route(self.target, ssh_config_for(self.target.address))
        return self._route

    def _socket(self) -> Any:
        """A stream to the host's sshd: straight, through ProxyCommand, or as a channel
        of the (last) bastion's connection."""
        import paramiko

        r = self.route
        if r.proxy_jump:
            hops = [hop.strip() for hop in r.proxy_jump.split(",") if hop.strip()]
            if self.depth + len(hops) > MAX_JUMPS:
                raise ProviderError(self._unreachable(f"more than {MAX_JUMPS} jumps (a ProxyJump loop?)"))
            # ssh's ProxyJump a,b: connect to a, then to b through a, then here through b
            jump = self._jump = SshConnection(self._hops_target(hops), self.depth + len(hops))
            try:
                return jump._transport_now().open_channel(
                    "direct-tcpip", (r.address, r.port), ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT)
            except ProviderError as err:
                raise ProviderError(self._unreachable(f"through its jump host: {err}")) from None
            except (paramiko.SSHException, OSError, EOFError) as err:
                raise ProviderError(self._unreachable(f"the jump host {hops[-1]} cannot reach it: "
                                                      f"{err or type(err).__name__}")) from None
        if r.proxy_command:
            try:
                return paramiko.ProxyCommand(r.proxy_command)
            except (paramiko.SSHException, OSError) as err:
                raise ProviderError(self._unreachable(f"ProxyCommand failed: {err}")) from None
        try:
            return socket.create_connection((r.address, r.port), timeout=CONNECT_TIMEOUT)
        except OSError as err:
            raise ProviderError(self._unreachable(err.strerror or str(err))) from None

    def _hops_target(self, hops: list[str]) -> SshTarget:
        """The last hop, with the ones before it as its own ProxyJump."""
        last = jump_target(self.target, hops[-1], len(hops) - 1)
        earlier = ",".join(hops[:-1])
        return SshTarget(**{**last.__dict__, "proxy_jump": earlier or "none"})

    def _connect(self) -> Any:
        import paramiko

        t = self.target
        sock = self._socket()
        self.stats["connections"] += 1
        transport = paramiko.Transport(sock)
        transport.banner_timeout = transport.auth_timeout = CONNECT_TIMEOUT
        options = transport.get_security_options()
        options.ciphers = gcm_first(options.ciphers)
        known = self._known_keys()
        if known:
            options.key_types = _key_types(list(known))
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
        r = self.route
        via = f" through {r.proxy_jump}" if r.proxy_jump else " through its ProxyCommand" if r.proxy_command else ""
        return f"host {self.target.name} ({r.user}@{r.address}:{r.port}{via}) cannot be reached: {cause}"

    def _known_keys(self) -> dict[str, Any]:
        import paramiko

        path = os.path.expanduser(self.target.known_hosts)
        keys = paramiko.HostKeys()
        if os.path.exists(path):
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException) as err:
                raise ProviderError(f"host {self.target.name}: cannot read known_hosts {path}: {err}") from None
        entry = keys.lookup(self.route.known_hosts_name)
        return dict(entry) if entry else {}

    def _check_host_key(self, key: Any, known: dict[str, Any]) -> None:
        t, r = self.target, self.route
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
                f"`ssh-keyscan -p {r.port} {r.address} >> {t.known_hosts}`, "
                f"or set accept_new_host_key = true in [hosts.{t.name}]"
            )
        path = os.path.expanduser(t.known_hosts)
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{r.known_hosts_name} {key.get_name()} {key.get_base64()}\n")
        self.stats["host_keys_added"] += 1

    def _authenticate(self, transport: Any) -> None:
        import paramiko

        t = self.target
        tried: list[str] = []
        user = self.route.user
        for label, key in self._keys():
            tried.append(label)
            try:
                transport.auth_publickey(user, key)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
        raise ProviderError(
            f"host {t.name} ({t.shown}): authentication failed for user {user} "
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
        for path in dict.fromkeys([*self.route.identity_files, *defaults]):
            if os.path.exists(path):
                try:
                    yield path, paramiko.PKey.from_path(path)
                except (OSError, paramiko.SSHException):
                    continue  # encrypted without an agent, or unreadable: ssh would skip it too

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
                quietly(self._sftp[1].close)
                self._sftp = None
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            if self._jump is not None:
                self._jump.close()
                self._jump = None


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


def quietly(fn: Callable[[], Any]) -> None:
    """Run a close that may fail on a connection already gone: a thread's traceback on
    berth's stderr would tell the user nothing."""
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass
