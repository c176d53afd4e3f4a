"""The desired configuration: what the user's files say should run, normalised.

berth/spec loads berth.toml (and the platforms' own formats) into these types, already
validated and with paths made absolute; the planner diffs them against state and never
sees the file formats. Frozen: a loaded Stack is a value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from providers.base import LOCAL_HOST

RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]
DeployStrategy = Literal["rolling", "recreate"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BuildSource(_Frozen):
    """An image berth builds from a context directory."""

    context: str  # absolute path of the context directory
    dockerfile: str = "Dockerfile"  # relative to the context, or absolute (a generated one)
    args: dict[str, str] = Field(default_factory=dict)
    base: str | None = None  # the image a generated Dockerfile starts FROM, for display and notes


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
    gpus: int = 0  # GPUs asked for; the planner assigns device IDs
    gpu_type: str | None = None  # accelerator type ("H100", "L4"); None: any
    secrets: tuple[str, ...] = ()  # secret names, mounted read-only at /secrets/NAME
    secret_env: dict[str, str] = Field(default_factory=dict)  # env var -> secret name
    predict: str | None = None  # the path requests for the app's model go to (routing)
    predict_concurrency: int | None = None
    # How a replace runs when the app is served through the gateway (rolling: the new
    # replica is ready before the old one stops), and the liveness watcher's settings.
    deploy: DeployStrategy = "rolling"
    # Replicas a replace (or a restart) may take down at once; the next waits for one to be ready.
    max_unavailable: int = 1
    liveness_failure_threshold: int = 3  # consecutive failed liveness probes before a restart
    probe_interval: float = 10.0  # seconds between probes while serving
    # Fields of a platform's own format that have no meaning on one's own hosts: shown
    # in the plan as ignored, never dropped silently.
    ignored: tuple[str, ...] = ()
    origin: str = "berth.toml"  # the file (and format) this app was read from, for display
    # Probe timing beyond readiness_timeout, from Truss runtime.health_checks (seconds):
    # liveness_delay, liveness_restart_after, unready_after. Recorded for the liveness
    # watcher; nothing acts on them yet.
    probe_timing: dict[str, float] = Field(default_factory=dict)
    # The file named no host but asks for GPUs: GPU placement picks the host (host then
    # holds the pick). False: host is what the file says.
    host_auto: bool = False


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


class Stack(_Frozen):
    """Everything one stack file asks for. apps keeps the file's order."""

    name: str
    file: str  # absolute path of the stack file
    apps: dict[str, AppConfig] = Field(default_factory=dict)
    # Where each secret an app names comes from; every name in an app's secrets and
    # secret_env has an entry (the loaders see to it).
    secrets: dict[str, SecretSource] = Field(default_factory=dict)
    secrets_file: str | None = None  # absolute path of [stack] secrets_file
    hosts: dict[str, HostConfig] = Field(default_factory=dict)  # SSH hosts; "local" is implicit
    # One gateway (a Caddy container) per host that runs apps, listening here; None: off.
    gateway_port: int | None = None
    gateway_admin_port: int = 2019  # its admin API, on its container's own loopback


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
