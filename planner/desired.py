"""The desired configuration: what the user's files say should run, normalised.

berth/spec loads berth.toml (and the platforms' own formats) into these types, already
validated and with paths made absolute; the planner diffs them against state and never
sees the file formats. Frozen: a loaded Stack is a value.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from providers.base import LOCAL_HOST

RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]
IpcMode = Literal["host", "private", "shareable"]
DeployStrategy = Literal["rolling", "recreate"]

# -- what Docker and Linux refuse, checked before anything is created --------------------
# The loaders report each against the key that sets it (file, key path, line); the
# validators below hold the same rules for any Stack built otherwise, so a value Docker
# would refuse at container create never reaches a plan that stops the running one first.

MIN_MEMORY = 6 * 2**20  # Docker: "Minimum memory limit allowed is 6MB" (6 MiB is accepted)
MAX_MEMORY = 2**50  # 1 PiB: past any host; Docker takes an int64 of bytes
MIN_CPUS = 0.01  # Docker: "Range of CPUs is from 0.01 to N, as there are only N CPUs available"
# Docker refuses more CPUs than the host has: a fact of the host, for a plan-time check. At
# load, past MAX_CPUS is refused as a mistake (an unset cpus means no limit at all).
MAX_CPUS = 512
MAX_REPLICAS = 1000  # each replica is a container and a host port
MAX_GPUS = 256  # per replica; hosts carry 8 or 16
MAX_SECONDS = 7 * 24 * 3600  # readiness timeouts and probe intervals; inf would overflow a wait
MAX_COUNT = 1_000_000  # other counts (thresholds, concurrency)
# Stack, app, host and secret names: container, image and file names are made of them. 100
# keeps berth-STACK-APP (an image repository: Docker refuses past 255) and every host file
# name (255) in bounds; Baseten's public examples name apps (from model_name) up to 93.
MAX_NAME = 100
# berth names containers berth-STACK-APP-I (berth-STACK-I for an app named as its stack,
# as a stack of one from a platform file is). Docker takes any length there; berth keeps
# them to 200.
MAX_CONTAINER_NAME = 200
# Linux refuses to exec a process with one environment string ("KEY=VALUE" and its NUL)
# over MAX_ARG_STRLEN (128 KiB), or with arguments and environment over ARG_MAX (2 MiB with
# the default 8 MiB stack), counting a pointer each: "exec ...: argument list too long".
MAX_ENV_STRING = 128 * 1024
MAX_ARG_TOTAL = 2 * 2**20 - 64 * 1024  # 64 KiB kept for the image's own ENV and Docker's
# Docker's ulimit names (`docker run --ulimit NAME=N`): what the engine's Go parser knows.
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")
MAX_SHM = 2**50  # as memory: past any host
# Docker's volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]+; berth's own names are stricter (they
# become part of berth-STACK-NAME and of the address volume.NAME@HOST).
VOLUME_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
# Docker's grammar for a repository path component: images berth builds are tagged
# berth-STACK-APP, so such apps' names must fit it ("a_" or "a-_b" do not).
_REPOSITORY_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def container_name(stack: str, app: str, index: int) -> str:
    """The name of replica `index` of `app`'s container: the one place it is made (the
    load-time length check and planner.resources both use it). An app named as its stack
    (a cerebrium.toml or Truss config.yaml is a stack of one, named after its app) is not
    named twice: berth-my-app-0, not berth-my-app-my-app-0. A container named the old way
    is renamed in place (name is a live change)."""
    return f"berth-{stack}-{index}" if app == stack else f"berth-{stack}-{app}-{index}"


def number_problem(value: float, low: float, high: float, what: str) -> str | None:
    """Why `value` cannot be a `what` from low to high, or None (inf and NaN never can)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        text = repr(value)
        return f"expected {what} from {low:g} to {high:g}, got {text if len(text) <= 24 else text[:12] + '...'}"
    return None


def memory_problem(size: int) -> str | None:
    """Why `size` bytes cannot be a memory limit, as a clause ("below Docker's minimum...")."""
    if size < MIN_MEMORY:
        return f"below Docker's minimum of 6 MiB ({MIN_MEMORY} bytes)"
    if size > MAX_MEMORY:
        return "past any host's memory (at most 1 PiB)"
    return None


def cpus_problem(cpus: float) -> str | None:
    return number_problem(cpus, MIN_CPUS, MAX_CPUS, "a number of CPUs")


def name_problem(name: str) -> str | None:
    if len(name) > MAX_NAME:
        return f"name is {len(name)} characters long; at most {MAX_NAME}"
    return None


def image_name_problem(stack: str, app: str) -> str | None:
    """Why Docker would refuse berth-STACK-APP as the repository of an image berth builds."""
    repository = f"berth-{stack}-{app}"
    if not _REPOSITORY_COMPONENT.fullmatch(repository):
        return (f"the image berth builds is tagged {repository}, which Docker refuses as a repository name: "
                "end names with a letter or digit, and do not put '-' beside '_' or three '_' together")
    return None


def container_name_problem(stack: str, app: str, replicas: int) -> str | None:
    longest = container_name(stack, app, max(replicas - 1, 0))
    if len(longest) > MAX_CONTAINER_NAME:
        return (f"the container name {longest[:40]}... would be {len(longest)} characters; berth keeps them "
                f"to {MAX_CONTAINER_NAME}: shorten the stack or app name")
    return None


def env_value_problem(key: str, value: str) -> str | None:
    size = len(f"{key}={value}".encode()) + 1
    if size > MAX_ENV_STRING:
        return (f"the value is {len(value.encode())} bytes; Linux refuses to start a process with an environment "
                "variable over 128 KiB (put it in a file, or a secret)")
    return None


def env_total_problem(env: dict[str, str], command: tuple[str, ...] | None) -> str | None:
    total = sum(len(f"{key}={value}".encode()) + 1 + 8 for key, value in env.items())
    total += sum(len(arg.encode()) + 1 + 8 for arg in command or ())
    if total > MAX_ARG_TOTAL:
        return (f"the environment and command add up to {total} bytes; Linux refuses to start a process with more "
                "than 2 MiB of them (berth keeps 64 KiB of that for the image's own environment)")
    return None


def ulimit_problem(name: str, value: int) -> str | None:
    if name not in ULIMIT_NAMES:
        return f"{name!r} is not a ulimit Docker knows; expected one of {', '.join(ULIMIT_NAMES)}"
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        return f"expected an integer of at least 0, or -1 for unlimited, got {value!r}"
    return None


def volume_problem(source: str, target: str) -> str | None:
    """Why `source:target` cannot be mounted: a relative path, a bad volume name."""
    if not target.startswith("/"):
        return f"the path inside the container must be absolute, got {target!r}"
    if source.startswith("/"):
        return None
    if source.startswith((".", "~")) or "/" in source:
        return f"a host directory must be an absolute path (like /srv/models), got {source!r}"
    if not re.fullmatch(VOLUME_NAME_PATTERN, source) or len(source) > MAX_NAME:
        return (f"{source!r} is not a volume name: lowercase letters, digits, '-' and '_', starting with a "
                f"letter or digit, at most {MAX_NAME} characters")
    return None


def volumes_problem(volumes: tuple[VolumeMount, ...]) -> str | None:
    seen: set[str] = set()
    for mount in volumes:
        if problem := volume_problem(mount.source, mount.target):
            return problem
        if mount.target in seen:
            return f"two volumes are mounted at {mount.target}"
        seen.add(mount.target)
    return None


def _checked(problem: str | None) -> None:
    if problem is not None:
        raise ValueError(problem)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BuildSource(_Frozen):
    """An image berth builds from a context directory."""

    context: str  # absolute path of the context directory
    dockerfile: str = "Dockerfile"  # relative to the context, or absolute (a generated one)
    args: dict[str, str] = Field(default_factory=dict)
    base: str | None = None  # the image a generated Dockerfile starts FROM, for display and notes
    secrets: tuple[str, ...] = ()  # berth secrets passed as BuildKit secrets (id = the name)
    target: str | None = None  # the stage of a multi-stage Dockerfile to build
    cache_from: tuple[str, ...] = ()  # images whose layers the build may reuse
    build_on: Literal["local", "host"] | None = None  # as the app writes it; None: its host's default
    # Built on the app's own (SSH) host's engine, the context sent over its connection,
    # instead of on berth's machine and the image sent: build_on resolved for the app's
    # host (built_where), again once placement has chosen the host of a GPU app.
    on_host: bool = False


class VolumeMount(_Frozen):
    """One `volumes` entry: a named volume berth keeps per host (`hf-cache:/root/.cache`),
    or a host directory (`/srv/models:/models:ro`), mounted at target."""

    source: str  # a volume NAME, or an absolute host path
    target: str  # absolute, inside the container
    read_only: bool = False

    @property
    def named(self) -> bool:
        """A named volume (a resource berth makes), not a host path."""
        return not self.source.startswith("/")


def volume_name(stack: str, volume: str) -> str:
    """The Docker volume berth makes for the stack's named volume `volume`."""
    return f"berth-{stack}-{volume}"


class WeightsSource(_Frozen):
    """One `[[apps.NAME.weights]]`: model weights put into the host's shared cache before the
    app's containers start, and mounted read-only at `mount`.

    source: "hf://REPO[@REVISION]" (fetched on the host, huggingface_hub), "https://..." (one
    file, optionally "#sha256=HEX"), or an absolute local directory (copied to the host).
    allow/ignore: the Hub's patterns (fnmatch; "dir/" is everything below dir), sorted.
    secret: the name of a secret whose value is the token for gated repos or private URLs.
    """

    source: str
    mount: str
    allow: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    secret: str | None = None

    @property
    def kind(self) -> Literal["hf", "url", "dir"]:
        if self.source.startswith("hf://"):
            return "hf"
        if self.source.startswith(("https://", "http://")):
            return "url"
        return "dir"


class AppConfig(_Frozen):
    """One app: a container image, how to run it, and how to tell it is ready.

    Exactly one of build and image is set. host_port is the published port of replica 0;
    replica I publishes host_port + I. None: each replica publishes on a free port berth
    picks when it starts (apps behind the gateway with a rolling deploy).
    """

    name: str
    host: str = LOCAL_HOST
    build: BuildSource | None = None
    image: str | None = None
    command: tuple[str, ...] | None = None
    port: int
    host_port: int | None
    readiness: str | None = None  # HTTP path; None means a TCP connect
    liveness: str | None = None
    readiness_timeout: float = 600.0
    env: dict[str, str] = Field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    replicas: int = 1
    restart: RestartPolicy = "unless-stopped"
    cpus: float | None = None
    memory: int | None = None  # bytes
    # What the app needs of its host, no limit (a Truss's resources.cpu and memory, which
    # size a Baseten instance): placement refuses a host with fewer CPUs or less memory.
    needs_cpus: float | None = None
    needs_memory: int | None = None  # bytes
    gpus: int = 0  # GPUs asked for; the planner assigns device IDs
    gpu_type: str | None = None  # accelerator type ("H100", "L4"); None: any
    secrets: tuple[str, ...] = ()  # secret names, mounted read-only at /secrets/NAME
    weights: tuple[WeightsSource, ...] = ()  # fetched into the host's cache, mounted read-only
    secret_env: dict[str, str] = Field(default_factory=dict)  # env var -> secret name
    predict: str | None = None  # the path requests for the app's model go to (routing)
    predict_concurrency: int | None = None
    # Behind a gateway with api_keys: True lets requests in without a key.
    public: bool = False
    # [gateway] port_range (first, last): where a replica with no host_port gets its port.
    port_range: tuple[int, int] | None = None
    domains: tuple[str, ...] = ()  # Host names the gateway also routes to the app (besides /APP/...)
    # How a replace runs when the app is served through the gateway (rolling: the new
    # replica is ready before the old one stops), and the liveness watcher's settings.
    deploy: DeployStrategy = "rolling"
    # Replicas a replace (or a restart) may take down at once; the next waits for one to be ready.
    max_unavailable: int = 1
    liveness_failure_threshold: int = 3  # consecutive failed liveness probes before a restart
    probe_interval: float = 10.0  # seconds between probes while serving
    # Container settings as `docker run` has them: -v, --shm-size (bytes), --ipc,
    # --ulimit (soft = hard; -1 unlimited), --entrypoint, --stop-timeout (None: Docker's 10 s).
    volumes: tuple[VolumeMount, ...] = ()
    shm_size: int | None = None
    ipc: IpcMode | None = None
    ulimits: dict[str, int] = Field(default_factory=dict)
    entrypoint: tuple[str, ...] | None = None
    stop_timeout: float | None = None
    # Fields of a platform's own format that have no meaning on one's own hosts: shown
    # in the plan as ignored, never dropped silently.
    ignored: tuple[str, ...] = ()
    origin: str = "berth.toml"  # the file (and format) this app was read from, for display
    # The line of keys the planner reports problems of at plan time ("volumes[1]": 12:
    # a host path missing on its host), by key within the app's table. Left out of dumps
    # (recorded configurations): where a key sits in the file is not configuration.
    lines: dict[str, int] = Field(default_factory=dict, exclude=True)
    # Probe timing beyond readiness_timeout, from Truss runtime.health_checks (seconds):
    # liveness_delay, liveness_restart_after, unready_after. Recorded for the liveness
    # watcher; nothing acts on them yet.
    probe_timing: dict[str, float] = Field(default_factory=dict)
    # The file named no host but asks for GPUs: GPU placement picks the host (host then
    # holds the pick). False: host is what the file says.
    host_auto: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        _checked(name_problem(name))
        return name

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, cpus: float | None) -> float | None:
        _checked(None if cpus is None else cpus_problem(cpus))
        return cpus

    @field_validator("memory")
    @classmethod
    def _memory(cls, memory: int | None) -> int | None:
        problem = None if memory is None else memory_problem(memory)
        _checked(problem and f"a memory limit of {memory} bytes is {problem}")
        return memory

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, replicas: int) -> int:
        _checked(number_problem(replicas, 1, MAX_REPLICAS, "a number of replicas"))
        return replicas

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, gpus: int) -> int:
        _checked(number_problem(gpus, 0, MAX_GPUS, "a number of GPUs"))
        return gpus

    @field_validator("readiness_timeout", "probe_interval")
    @classmethod
    def _seconds(cls, seconds: float) -> float:
        _checked(number_problem(seconds, 0, MAX_SECONDS, "a number of seconds"))
        return seconds

    @field_validator("stop_timeout")
    @classmethod
    def _stop_timeout(cls, seconds: float | None) -> float | None:
        _checked(None if seconds is None else number_problem(seconds, 0, MAX_SECONDS, "a number of seconds"))
        return seconds

    @field_validator("shm_size")
    @classmethod
    def _shm_size(cls, size: int | None) -> int | None:
        _checked(None if size is None else number_problem(size, 1, MAX_SHM, "a /dev/shm size in bytes"))
        return size

    @field_validator("ulimits")
    @classmethod
    def _ulimits(cls, ulimits: dict[str, int]) -> dict[str, int]:
        for name, value in ulimits.items():
            _checked(ulimit_problem(name, value))
        return ulimits

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, volumes: tuple[VolumeMount, ...], info: ValidationInfo) -> tuple[VolumeMount, ...]:
        _checked(volumes_problem(volumes))
        secrets = {*info.data.get("secrets", ()), *(info.data.get("secret_env") or {}).values()}
        for mount in volumes:
            if secrets and (mount.target == "/secrets" or mount.target.removeprefix("/secrets/") in secrets):
                raise ValueError(f"{mount.target} is where the app's secrets are mounted (/secrets/NAME); "
                                 "mount the volume elsewhere")
        return volumes

    @field_validator("predict_concurrency")
    @classmethod
    def _concurrency(cls, concurrency: int | None) -> int | None:
        _checked(None if concurrency is None else number_problem(concurrency, 1, MAX_COUNT, "a concurrency"))
        return concurrency

    @field_validator("env")
    @classmethod
    def _environment(cls, env: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """What Linux would refuse to exec (each variable, then the whole with the command)."""
        for key, value in env.items():
            if problem := env_value_problem(key, value):
                # ctx names the variable, so that a reader can point at its own key
                raise PydanticCustomError("env_value", "{problem}", {"key": key, "problem": problem})
        _checked(env_total_problem(env, info.data.get("command")))
        return env


class HostConfig(_Frozen):
    """One `[hosts.NAME]`: a Docker host reached over SSH, and how to trust it."""

    name: str
    user: str
    address: str
    port: int = 22
    identity_file: str | None = None  # absolute or ~; None: ssh-agent, then ~/.ssh/id_*
    known_hosts: str = "~/.ssh/known_hosts"
    accept_new_host_key: bool = False  # unknown keys only; a changed key is always refused
    docker_socket: str = "/var/run/docker.sock"  # the engine's socket on the host
    secrets_dir: str | None = None  # absolute, normalised; None: the host's default (providers.ssh.secret_files)
    proxy_jump: str | None = None  # bastions to connect through, as ssh's ProxyJump ("a,user@b:2222")
    # Whether the file wrote the user and port: where it did not, ~/.ssh/config's for the
    # address count (`ssh = "gpu-box"`, a Host alias), as they do for ssh.
    user_given: bool = True
    port_given: bool = True
    build_on: Literal["local", "host"] = "local"  # where its apps' images are built unless an app says


class Stack(_Frozen):
    """Everything one stack file asks for. apps keeps the file's order."""

    name: str
    file: str  # absolute path of the stack file
    environment: str | None = None  # `-e NAME`: berth.NAME.toml laid over the file; name is then STACK-NAME
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    # Where each secret an app names comes from; every name in an app's secrets and
    # secret_env has an entry (the loaders see to it).
    secrets: dict[str, SecretSource] = Field(default_factory=dict)
    secrets_file: str | None = None  # absolute path of [stack] secrets_file
    hosts: dict[str, HostConfig] = Field(default_factory=dict)  # SSH hosts; "local" is implicit
    # One gateway (a Caddy container) per host that runs apps, listening here; None: off.
    gateway_port: int | None = None
    gateway_admin_port: int = 2019  # its admin API, on its container's own loopback
    gateway_port_key: str = "stack.gateway_port"  # where the file sets it: errors name it ("gateway.port")
    # Secret names; when any, a request through the gateway needs one of their values
    # (Authorization: Bearer KEY or Api-Key KEY), unless its app is public.
    gateway_api_keys: tuple[str, ...] = ()
    gateway_drain_timeout: float = 30.0  # seconds an old replica keeps its requests in flight in a roll
    # HTTPS on gateway_port: "internal" (a CA of the gateway's own), "acme" (the apps'
    # domains, certified by an ACME CA: Let's Encrypt), or "secrets": the
    # certificate and key are the secrets gateway_tls_secrets names (cert, key).
    gateway_tls: Literal["internal", "acme", "secrets"] | None = None
    gateway_tls_secrets: tuple[str, str] | None = None

    @model_validator(mode="after")
    def _docker_names(self) -> Stack:
        _checked(name_problem(self.name))
        for app in self.apps.values():
            _checked(container_name_problem(self.name, app.name, app.replicas))
            _checked(image_name_problem(self.name, app.name) if app.build is not None else None)
        return self


class SecretSource(_Frozen):
    """Where one secret's value comes from. Exactly one of env, file, command and
    secrets_file is set. The value itself is never part of a Stack: planner.secrets
    reads it into memory at plan and apply time.

    `source` is how plans and state name the source ("env HF_TOKEN"); it must never hold
    a value. defined_* locate the definition for diagnostics.
    """

    name: str
    env: str | None = None  # an environment variable of berth's own process
    file: str | None = None  # an absolute path; one trailing newline is stripped
    command: tuple[str, ...] | None = None  # run without a shell; its stdout, one trailing newline stripped
    secrets_file: str | None = None  # an absolute path of KEY=VALUE lines; KEY is the secret's name
    source: str = ""
    defined_file: str | None = None
    defined_key: str | None = None
    defined_line: int | None = None


def built_where(app: AppConfig, hosts: Mapping[str, Any]) -> AppConfig:
    """app with build.on_host settled for its host: its own build_on, else the host's
    (`[hosts.NAME] build_on`, an object with a build_on attribute). Only an SSH host
    builds on its own engine; on the local host both mean the same."""
    if app.build is None:
        return app
    host = hosts.get(app.host)
    where = app.build.build_on or (host.build_on if host is not None else "local")
    on_host = host is not None and where == "host"
    if on_host == app.build.on_host:
        return app
    return app.model_copy(update={"build": app.build.model_copy(update={"on_host": on_host})})
