"""The Provider protocol (everything the planner may ask of a host) and the Transport
beneath it (how bytes reach that host: the local machine, or one SSH connection).

One Provider per host for the whole run. Implementations must be safe to call from
several worker threads at once (the apply walk runs independent steps in parallel).
A caller never asks which kind of host it has: what differs is asked of the provider.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, TypeVar

from providers.types import BuildOptions, ContainerSpec, Observation, ObservedContainer, Progress, SecretParts

if TYPE_CHECKING:
    from providers.buildkit import Builder
    from providers.engine_http import EngineHTTP
    from providers.gpus import Gpu

T = TypeVar("T")

LOCAL_HOST = "local"
"""The name of the Docker engine berth runs beside: every stack has it, undeclared;
other hosts are the stack file's [hosts.NAME]."""

BUILD_HOST = LOCAL_HOST
"""The host whose engine builds every image: the machine berth runs on (`local` in the
stack file). A plan is data made without providers (saved plans, unit tests), so it
reads this rule by name: images of every other host are built here and delivered
(Provider.builds_here is False there). It keeps current builds for those hosts."""


def engine_call(what: str | Callable[..., str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks a Provider method as one engine call: it runs through Transport.call, so over
    SSH it is retried once on a new connection when the connection drops. `what` (or
    what(*args) of the call's arguments) names it in the error when it drops twice."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            text = what(*args, **kwargs) if callable(what) else what
            return self.transport.call(text, method, self, *args, **kwargs)

        call.engine_call = True  # type: ignore[attr-defined]
        return call

    return wrap


class SecretFiles(Protocol):
    """Where a host keeps secret files, and how berth reaches them: the local file
    system (providers.secret_files.LocalSecretFiles) or a host's SFTP session
    (providers.ssh.secret_files.SftpSecretFiles). A Transport carries one, so the
    Docker-level code is shared between hosts.

    Both make ROOT (0700) when it is missing and leave an existing one as it is, and
    mkdir ROOT/STACK and ROOT/STACK/APP and chmod them 0700; open a temporary file
    beside the target exclusively with mode 0600 set *before* writing (never write then
    chmod), then rename it over the target; remove unlinks the file and temporary files
    a crash left, and rmdirs the emptied directories; list reads each app directory.
    ROOT on a server is [hosts.NAME] secrets_dir, else /var/lib/berth/secrets (SSH as
    root), else the login user's ~/.local/state/berth/secrets as an absolute path.
    Errors name the host and path, never the value."""

    def path(self, parts: SecretParts) -> str:
        """The host path of the file for (stack, app, secret), absolute (Docker mounts
        it); pure once ROOT is known (a server's may need its login's home, asked once)."""
        ...

    def write(self, parts: SecretParts, value: bytes) -> str: ...  # as Provider.write_secret
    def remove(self, parts: SecretParts) -> None: ...  # as Provider.remove_secret

    def list(self, stack: str) -> tuple[tuple[str, str], ...]:
        """(app, secret) of every secret file of the stack on the host."""
        ...


class WeightsFiles(Protocol):
    """A host's weights cache, ROOT/entries/KEY/{files,manifest.json}, one per host and
    shared by every stack (planner/weights/fetch_script.py's layout): on the local file
    system (providers.weights_files) or over a host's SFTP session
    (providers.ssh.weights_files). ROOT is /var/lib/berth/weights as root, else the login's
    ~/.local/state/berth/weights. An entry appears by one rename of a finished
    ROOT/partial/KEY, so what entries() lists is complete."""

    def root(self) -> str: ...  # absolute, on the host
    def ensure_root(self) -> str: ...  # made when missing; returns root()
    def entries(self) -> frozenset[str]: ...  # keys of complete entries, one listing

    def put(self, key: str, source: str, files: list[tuple[str, str, int, str, bool]], progress: Progress,
            previous: str | None = None) -> int:
        """Copy local files (relative path, local path, size, sha256, executable) in as
        entry KEY, sending only those partial/KEY lacks; a new partial/KEY starts as hard
        links to entry `previous` (an earlier version of the source), so only changed
        files travel (each written beside and renamed over its link: the old entry is
        never touched). Returns the bytes sent."""
        ...


class Transport(Protocol):
    """How bytes travel between berth and one host (pyinfra's connectors/base.py): the
    engine API socket, a command on the host, files, probe tunnels, and what a dropped
    connection means. Docker-level code (providers.docker_engine) sits on one; it knows
    nothing of SSH. providers.local.LocalTransport and providers.ssh.host.SshTransport."""

    host: str
    docker_host: str  # DOCKER_HOST for a docker CLI to reach this engine (builds: providers.buildkit)
    http: EngineHTTP | None  # the read-only Engine API client refresh uses; None: docker-py only
    secret_files: SecretFiles | None  # None where berth cannot reach the engine's file system
    why_no_files: str  # why secret_files is None, for the error a secret step raises
    weights_files: WeightsFiles | None  # None where berth cannot reach the engine's file system

    def connect_api(self) -> Any:
        """A docker-py APIClient to the host's engine (made on first use: 0.3 s to import)."""
        ...

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs), one engine call. Over SSH: when the connection drops, once
        more over a new one, then a ProviderError naming the host and `what`. A call made
        inside another on the same thread runs straight through: the outer one retries."""
        ...

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """Run a command on the host: (exit status, stdout, stderr); 127 when not found."""
        ...

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        """Provider.probe, dialled from where the port is reachable (a tunnel over SSH)."""
        ...

    # Facts

    def gpus(self) -> tuple[Gpu, ...]:
        """The host's GPUs as nvidia-smi reports them (read once per run); none without it."""
        ...

    def memory_total(self) -> int | None:
        """The host's memory in bytes as its engine counts them (docker info's MemTotal),
        read once per run; None when the engine does not say."""
        ...

    def architecture(self) -> str | None:
        """The CPU architecture of the host's engine, as image platforms name it ("amd64",
        "arm64"; docker info's Architecture), read once per run; None when it does not say."""
        ...

    def docker_version(self) -> str: ...

    @property
    def engine_url(self) -> str:
        """Where a Docker CLI on this machine reaches the host's engine (its -H): the
        engine's own address, or over SSH the forwarder's local socket."""
        ...

    def close(self) -> None: ...


class Provider(Protocol):
    host: str  # the host's name in the stack file ("local", "gpu-a")
    # Image delivery: True when build_image builds on this host's own engine, so a built
    # image is here at once; False when it builds on BUILD_HOST's engine and
    # receive_image must send it here before containers can use it.
    builds_here: bool

    def observe(self, stack: str, secrets: bool = True, weights: bool = False) -> Observation:
        """The stack's containers and the host's images, in one batched query, and with
        `secrets` the stack's secret files (False: the stack can have none here, so the
        listing, an SFTP session on an SSH host, is skipped); with `weights` the keys of
        the host's weights cache entries (one listing)."""
        ...

    # Weights: the host's content-addressed cache (WeightsFiles), mounted read-only.

    # The cache's absolute path on the host (containers mount ROOT/entries/KEY/files).
    weights_cache: str

    def put_weights(self, key: str, source: str, files: list[tuple[str, str, int, str, bool]],
                    progress: Progress, previous: str | None = None) -> int:
        """Copy a local directory's files in as entry KEY (only what the host lacks, or what
        differs from entry `previous`); WeightsFiles.put."""
        ...

    def fetch_weights(self, image: str, script: str, source: str, allow: list[str], ignore: list[str],
                      token: SecretParts | None, progress: Progress) -> str:
        """Fetch an hf:// or https:// source into the cache on the host: `script` (the
        fetcher program's text) runs in a short-lived container of `image` (already on
        the host) with the cache mounted and the token's secret file (already written
        there, parts of it) mounted read-only; returns the entry's key."""
        ...

    def containers_by_id(self, ids: list[str]) -> tuple[ObservedContainer, ...]:
        """Containers with these IDs whatever their labels (adopted ones carry none), in
        one query; refresh calls it only for IDs state records that observe() missed."""
        ...

    def container_limits(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The CPU and memory limits each container has now ({"cpus": float | None,
        "memory": bytes | None}), by ID; absent ones are left out. Refresh reads them for
        the containers state records, so a `docker update` behind berth's back is drift."""
        ...

    def inspect_container(self, ref: str) -> dict | None:
        """Docker's inspect of a container by name or ID plus its image's Config under
        "ImageConfig" (for `import`); None when absent."""
        ...

    def build_image(
        self, context: str, dockerfile: str, args: dict[str, str], tag: str,
        labels: dict[str, str], progress: Progress, options: BuildOptions | None = None,
    ) -> str:
        """Build and tag an image from a local context directory; returns its ID. Through
        BuildKit where the machine has a client for it (options: secrets, target,
        cache_from), each step and its output streamed to progress; a failure is a
        ProviderError whose log_tail is the failing step's last output lines."""
        ...

    def builder(self) -> Builder:
        """What builds images against this host's engine when it builds here: BuildKit
        through this machine's Docker CLI, or the legacy API builder (providers.buildkit)."""
        ...

    def ensure_image(self, ref: str, progress: Progress) -> str:
        """The ID of the image `ref` names, pulling it if the host lacks it."""
        ...

    def receive_image(self, ref: str, tag: str, progress: Progress) -> str:
        """Make the built image `ref` present here, tagged `tag` (sent from BUILD_HOST when
        builds_here is False, only the layers this host lacks); returns its ID."""
        ...

    def tag_image(self, image_id: str, tag: str) -> None: ...

    def remove_image(self, ref: str) -> None:
        """Remove a tag of an image berth made (the image goes with its last tag);
        absent or in use is not an error."""
        ...

    def run_container(self, spec: ContainerSpec) -> str:
        """Create and start a container; returns its ID."""
        ...

    def create_container(self, spec: ContainerSpec) -> str:
        """Create, not start (spec.host_port fixed); returns its ID. What Docker refuses
        in a config is refused here, so a replace tries it before the old one stops."""
        ...

    def start_container(self, container_id: str, spec: ContainerSpec | None = None) -> None:
        """Start a created or stopped container; spec, when given, names it in errors."""
        ...

    def stop_container(self, container_id: str) -> None:
        """Stop (gracefully, then kill), keeping the container; absent is not an error."""
        ...

    def update_container(self, container_id: str, spec: ContainerSpec) -> None:
        """Apply what Docker can change live: the name (rename), restart policy and
        resource limits."""
        ...

    def remove_container(self, container_id: str) -> None:
        """Stop (gracefully, then kill) and remove; absent is not an error."""
        ...

    def restart_container(self, container_id: str) -> None:
        """Stop (gracefully) and start again, keeping the container: its bind mounts are
        set up afresh, so a secret file rewritten since it started is read anew."""
        ...

    # Secrets. A secret is one file per (stack, app, secret) on the host, holding the raw
    # value; containers bind-mount it read-only at /secrets/NAME. The value passes
    # through here in memory only: implementations never log it, put it in an error
    # message, or keep it anywhere but that file.

    def write_secret(self, parts: SecretParts, value: bytes) -> str:
        """Write `value` to the file for parts = (stack, app, secret), replacing any
        earlier one atomically (a new file renamed over the old, so a running container
        keeps the old value until it restarts). The file is mode 0600 in directories
        (per stack, per app) of mode 0700 that berth's user (root on a server) owns.
        Returns the file's path on the host, which run_container mounts."""
        ...

    def remove_secret(self, parts: SecretParts) -> None:
        """Remove the file and the per-app and per-stack directories it leaves empty;
        absent is not an error."""
        ...

    # Named volumes (Docker's local driver), labelled with the stack; observe() lists them.

    def create_volume(self, name: str, labels: dict[str, str]) -> str:
        """Make the volume `name` (an existing one is kept, data and all); returns its name."""
        ...

    def remove_volume(self, name: str) -> None:
        """Remove the volume and its data; absent is not an error."""
        ...

    def ports_taken(self, stack: str) -> dict[int, tuple[str, str]]:
        """Host ports published by running containers that are not labelled the stack's:
        port -> (container ID, name) (a plan-time check; Docker would refuse the start)."""
        ...

    def missing_paths(self, paths: list[str]) -> list[str]:
        """Those of `paths` (absolute) that do not exist on the host, in one call over
        the host's own connection: a bind mount of a missing one would fail at start."""
        ...

    # observe() also lists the stack's secret files (Observation.secrets), so a file
    # removed behind berth's back is planned back and a leftover one is removed.

    def container_state(self, container_id: str) -> dict:
        """Docker's State object: Status, ExitCode, Restarting, ... plus RestartCount."""
        ...

    def logs(self, container_id: str, tail: int) -> str: ...

    def stream_logs(self, container_id: str, tail: int | None, follow: bool, *, since: int | None = None,
                    timestamps: bool = False) -> Iterator[str]:
        """Output as text chunks (for `berth logs`); with follow, until the container stops.
        since: Unix time of the oldest line; timestamps: each line starts with the engine's
        RFC 3339 time and a space."""
        ...

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        """One readiness or liveness check against a published port on this host:
        (passed, what was seen). path None means a TCP connect."""
        ...

    @property
    def engine_url(self) -> str:
        """A Docker CLI's -H for this host's engine (`berth exec` runs `docker exec` on it)."""
        ...

    def run_in(self, container_id: str, command: list[str], files: dict[str, bytes] | None = None) -> tuple[int, str]:
        """Run command inside a running container, after copying files (absolute path:
        content) into it: (exit code, output). Raises ProviderError when it cannot run
        (the container stopped)."""
        ...

    # Facts

    def gpus(self) -> tuple[Gpu, ...]:
        """The host's GPUs as nvidia-smi reports them (read once per run); none without it."""
        ...

    def cpu_count(self) -> int | None:
        """The host's CPUs as its engine counts them (docker info's NCPU), read once per
        run; None when the engine does not say."""
        ...

    def docker_version(self) -> str: ...

    def close(self) -> None: ...
