"""The values providers take and return: what to run, and what a host has, the labels
berth puts on what it makes, and the errors providers raise.

Plain frozen dataclasses, so the planner can build them and tests can compare them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Labels berth puts on everything it creates; refresh finds its things by them.
LABEL_STACK = "berth.stack"
LABEL_APP = "berth.app"
LABEL_ADDRESS = "berth.address"
LABEL_CONFIG_HASH = "berth.config-hash"
LABEL_CONTENT_HASH = "berth.content-hash"


class ProviderError(Exception):
    """A host or engine refused or failed an operation; the message says which and why."""


def summary(err: Exception) -> str:
    """What a docker-py error says, without its wrapping (the engine's own explanation)."""
    explanation = getattr(err, "explanation", None)
    return str(explanation or err).strip()


class ReadinessError(ProviderError):
    """A container never became ready; carries the last lines of its log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class Interrupted(ProviderError):
    """The run was interrupted (Ctrl-C) while this step waited."""


# Where a secret's file lives on a host, as (stack, app, secret): each host maps it to a
# path of its own (providers.secret_files); the planner never builds host paths.
SecretParts = tuple[str, str, str]
SECRETS_MOUNT = "/secrets"  # inside containers, secret NAME is the file /secrets/NAME


@dataclass(frozen=True)
class SecretMount:
    """A secret file mounted read-only into a container."""

    parts: SecretParts
    target: str  # /secrets/NAME


@dataclass(frozen=True)
class HostMount:
    """A path of the host bind-mounted into a container (the liveness watcher's engine
    socket). It must exist on the host: a missing source is an error, not a new
    directory."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class VolumeSpec:
    """A `volumes` mount: a named volume (the Docker volume's own name, which the graph
    creates first) or a host path, which must exist (a missing one is refused, never made)."""

    source: str
    target: str
    read_only: bool = False
    named: bool = False


@dataclass(frozen=True)
class ObservedVolume:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    port: int
    host_port: int | None  # None: a free port berth picks (served apps with rolling deploys)
    labels: dict[str, str]
    command: tuple[str, ...] | None = None
    pick_ports: tuple[int, int] | None = None  # where a free port is picked (first, last); None: PICKED_PORTS
    env: dict[str, str] = field(default_factory=dict)
    restart: str = "unless-stopped"
    cpus: float | None = None
    memory: int | None = None
    secret_mounts: tuple[SecretMount, ...] = ()
    # Environment variables whose values are secrets (secret_env): kept apart from env
    # and out of repr, so that no message or traceback that prints a spec shows them.
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    gpus: tuple[str, ...] = ()  # device indexes: Docker device requests (driver nvidia)
    # "host": the container shares the host's network (the watcher); nothing is published.
    network_mode: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)  # namespaced kernel settings (net.*)
    extra_hosts: dict[str, str] = field(default_factory=dict)  # /etc/hosts entries; "host-gateway": the host
    host_mounts: tuple[HostMount, ...] = ()
    volumes: tuple[VolumeSpec, ...] = ()  # the app's `volumes`
    shm_size: int | None = None  # bytes of /dev/shm; None: Docker's 64 MiB
    ipc_mode: str | None = None  # host | private | shareable; None: the engine's default
    ulimits: dict[str, int] = field(default_factory=dict)  # soft = hard; -1 unlimited
    entrypoint: tuple[str, ...] | None = None  # None: the image's
    stop_timeout: int | None = None  # seconds from SIGTERM to SIGKILL; None: STOP_TIMEOUT


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    name: str
    state: str  # running, exited, restarting, created, paused, dead
    image_id: str
    labels: dict[str, str]
    host_ports: tuple[int, ...] = ()  # published ports, so their reuse can be ordered
    # {"cpus": float | None, "memory": int | None} as the engine applies them now (refresh
    # reads them for the containers state records, so `docker update` shows as drift);
    # None when not read
    limits: dict[str, Any] | None = None

    def as_before(self) -> dict[str, object]:
        """What a plan can say of a container berth has no record of."""
        return {"name": self.name, "host_port": self.host_ports[0] if self.host_ports else None,
                "labels": dict(self.labels)}


@dataclass(frozen=True)
class ObservedImage:
    id: str
    tags: tuple[str, ...]
    digests: tuple[str, ...]
    labels: dict[str, str]


@dataclass(frozen=True)
class Observation:
    """One host's view of a stack, read with one batched query."""

    host: str
    containers: tuple[ObservedContainer, ...] = ()
    images: tuple[ObservedImage, ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()  # (app, secret) of the stack's secret files on the host
    volumes: tuple[ObservedVolume, ...] = ()  # the stack's named volumes on the host
    weights: frozenset[str] = frozenset()  # keys of the complete entries of the host's weights cache

    def image_for_ref(self, ref: str) -> ObservedImage | None:
        """The image a tag or digest reference names on this host, as Docker resolves it."""
        wanted = normalize_ref(ref)
        for image in self.images:
            if ref == image.id or any(normalize_ref(r) == wanted for r in image.tags + image.digests):
                return image
        return None


def normalize_ref(ref: str) -> str:
    """`busybox`, `busybox:latest` and `docker.io/library/busybox:latest` are one image."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    name, at, digest = ref.partition("@")
    if at:  # a digest names the image exactly; a tag beside it is decoration
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name[: len(name) - len(last)] + last.split(":", 1)[0]
        return f"{name}@{digest}"
    if ":" not in name.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


Progress = Callable[[str], None]
"""A step's progress: progress(message) for a line the user sees; builds also call
progress(line, output=True) with each line of a step's own output (a view may keep
only the last ones on a terminal)."""


@dataclass(frozen=True)
class BuildOptions:
    """What a build takes beside its context, Dockerfile, args and labels. `secrets`:
    BuildKit secret ID -> value (never in argv, a layer or an error); `target`: a stage of
    a multi-stage Dockerfile; `cache_from`: images whose layers the build may reuse;
    `name`: the app, naming the build's log file; `on_host`: build on this host's own
    engine even where its images are otherwise built on BUILD_HOST and sent."""

    name: str = ""
    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    target: str | None = None
    cache_from: tuple[str, ...] = ()
    on_host: bool = False
