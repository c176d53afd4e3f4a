"""berth.toml as users write it: pydantic models that check each table's keys and each
value's type and range.

The key names here are a public contract. These models stop at the shape of one table;
rules that span tables (depends_on targets, host ports, build contexts on disk) belong to
checks.py, the normalisation into planner.desired to normalise.py. Constrained values
carry the words of their own error ("expected an integer from 1 to 65535, got 0") so that
users never see pydantic's phrasing. Validation is strict: TOML has real types, and "8000" for a port is
more likely a mistake than a wish.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from planner.desired import (
    MAX_COUNT,
    MAX_CPUS,
    MAX_GPUS,
    MAX_NAME,
    MAX_REPLICAS,
    MAX_SECONDS,
    MIN_CPUS,
    ULIMIT_NAMES,
    memory_problem,
    volume_problem,
)
from providers.base import LOCAL_HOST

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
NAME_RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit"
# Secret names become file names (/secrets/NAME) and addresses; platforms' formats use
# upper case too (HF_TOKEN), so it is allowed.
SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
SECRET_NAME_RULE = "letters, digits, '-' and '_', starting with a letter or digit"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Docker's meaning of sizes (`docker run -m 1g`, also 1gb), since these become Docker's
# memory limit; the IEC suffixes (Ki, Mi, Gi, Ti) mean the same powers of 1024.
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_SIZE_UNITS = {"": 1, "b": 1} | {
    prefix + suffix: 1024**power
    for power, prefix in enumerate("kmgt", start=1)
    for suffix in ("", "b", "i", "ib")
}


def shown(value: Any) -> str:
    """A value as a user would recognise it from their TOML, short enough for one line."""
    match value:
        case bool():
            return "true" if value else "false"
        case str():
            text = json.dumps(value, ensure_ascii=False)
            return text if len(text) <= 60 else text[:56] + '..."'
        case int() | float():
            text = repr(value)
            return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"
        case dict():
            return "a table"
        case list():
            return "a list"
        case _:
            return f"a {type(value).__name__}"  # TOML dates and times


def _expected(what: str, value: Any) -> PydanticCustomError:
    return PydanticCustomError("expected", "expected {what}, got {got}", {"what": what, "got": shown(value)})


def expect(what: str) -> WrapValidator:
    """Replace whatever pydantic says about this value with `expected WHAT, got VALUE`."""

    def validate(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise _expected(what, value) from None

    return WrapValidator(validate)


def at_most(high: float, what: str, low: float | None = None) -> AfterValidator:
    """After the type and lower bound are checked: refuse inf, NaN and what is past `high`
    (and, with `low`, below it), as "expected WHAT, got VALUE"."""

    def validate(value: Any) -> Any:
        if (isinstance(value, float) and not math.isfinite(value)) or value > high or (low is not None and value < low):
            raise _expected(what, value)
        return value

    return AfterValidator(validate)


def memory_bytes(value: Any) -> int:
    """A memory size in bytes, from an integer or a string like "512m", "2Gi", "1GB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if match and match[2] in _SIZE_UNITS:
            size = int(float(match[1]) * _SIZE_UNITS[match[2]])
            if size > 0:
                return size
    raise _expected('a size in bytes, or a string like "512m", "2g" or "2Gi"', value)


VOLUME_RULE = ('a volume like "hf-cache:/root/.cache/huggingface" (NAME:PATH) or "/srv/models:/models:ro" '
               "(/ABSOLUTE/HOST/PATH:PATH[:ro])")


def volume_entry(value: Any) -> str:
    """One `volumes` entry, NAME:PATH or /HOST/PATH:PATH, optionally :ro or :rw."""
    if not isinstance(value, str):
        raise _expected(VOLUME_RULE, value)
    parts = value.split(":")
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise _expected(VOLUME_RULE, value)
    problem = volume_problem(*parts)
    if problem:
        raise PydanticCustomError("volume", "{problem}", {"problem": problem})
    return value


def ulimit_table(value: Any) -> dict[str, int]:
    """`ulimits = { memlock = -1, nofile = 65536 }`: Docker's names, -1 for unlimited."""
    if not isinstance(value, dict):
        raise _expected("a table of ulimits like { memlock = -1, nofile = 65536 }", value)
    for name, limit in value.items():
        if name not in ULIMIT_NAMES:
            raise PydanticCustomError("ulimit", "{name} is not a ulimit Docker knows; expected one of {names}",
                                      {"name": shown(name), "names": ", ".join(ULIMIT_NAMES), "key": name})
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < -1:
            raise PydanticCustomError("ulimit", "ulimit {name}: expected an integer of at least 0, or -1 for "
                                      "unlimited, got {got}", {"name": name, "got": shown(limit), "key": name})
    return dict(value)


def _a_list(what: str) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, list):
            raise _expected(what, value)
        return value

    return check


def _entrypoint(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return value
    raise _expected('an entrypoint like ["python3", "-m", "server"] (a non-empty list of strings), or a string', value)


def shm_bytes(value: Any) -> int:
    try:
        return memory_bytes(value)
    except PydanticCustomError:
        raise _expected('a /dev/shm size in bytes, or a string like "64m", "16g" or "2Gi"', value) from None


def _memory_limit(size: int) -> int:
    """A size Docker takes as a memory limit (at least its minimum of 6 MiB)."""
    problem = memory_problem(size)
    if problem:
        raise PydanticCustomError("memory", "a memory limit of {size} bytes is {problem}", {"size": size, "problem": problem})
    return size


def _gpu_count_at_most(value: str) -> str:
    count = value.partition(":")[2]
    if count and int(count) > MAX_GPUS:
        raise _expected(f'an accelerator like "H100" or "H100:2" with a count of at most {MAX_GPUS}', value)
    return value


def _build_table(value: Any) -> Any:
    """`build = "./web"` is short for `build = { context = "./web" }`."""
    if isinstance(value, str):
        return {"context": value}
    if isinstance(value, dict):
        return value
    raise _expected('a context directory like "./web", or a table like { context = "./web" }', value)


Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME),
                 expect(f"a name of {NAME_RULE}, at most {MAX_NAME} characters")]
Port = Annotated[int, Field(ge=1, le=65535), expect("an integer from 1 to 65535")]
HttpPath = Annotated[str, Field(pattern=r"^/\S*$"), expect('an HTTP path starting with "/", like "/health"')]
EnvValue = Annotated[str | int | float | bool, expect("a string, number or boolean")]
Text = Annotated[str, Field(min_length=1), expect("a non-empty string")]
Command = Annotated[
    Annotated[str, Field(min_length=1)] | Annotated[list[str], Field(min_length=1)],
    expect("a command string, or a non-empty list of strings"),
]
Image = Annotated[str, Field(pattern=r"^\S+$"), expect('an image reference like "repo/name:tag"')]
Seconds = Annotated[float, Field(gt=0), expect("a number of seconds greater than 0"),
                    at_most(MAX_SECONDS, f"a number of seconds greater than 0, at most {MAX_SECONDS} (7 days)")]
Replicas = Annotated[int, Field(ge=1), expect("an integer of at least 1"),
                     at_most(MAX_REPLICAS, f"an integer of at least 1, at most {MAX_REPLICAS}")]
Cpus = Annotated[float, Field(gt=0), expect("a number of CPUs greater than 0, like 2 or 0.5"),
                 at_most(MAX_CPUS, f"a number of CPUs greater than 0, from {MIN_CPUS} (Docker's least) to {MAX_CPUS} "
                         "(leave cpus out for no limit)", low=MIN_CPUS)]
Restart = Annotated[
    Literal["no", "always", "unless-stopped", "on-failure"],
    expect('one of "no", "always", "unless-stopped" or "on-failure"'),
]
AppNames = Annotated[list[str], expect("a list of app names")]
SecretNames = Annotated[list[str], expect("a list of secret names")]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN), expect("an environment variable name like HF_TOKEN")]
# user@address[:port]; the user may be left out (as ssh, the current user); IPv6 in [].
# The port is 1..65535: a larger one would only fail later, at connect, with a less clear message.
SSH_PATTERN = r"^(?:(?P<user>[^@\s]+)@)?(?P<address>\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)(?::(?P<port>6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3}))?$"
SshAddress = Annotated[str, Field(pattern=SSH_PATTERN), expect('an SSH destination like "ubuntu@10.0.0.5" or "ubuntu@gpu-a:2222"')]
Gpus = Annotated[int, Field(ge=1), expect("a number of GPUs of at least 1"),
                 at_most(MAX_GPUS, f"a number of GPUs of at least 1, at most {MAX_GPUS}")]
Accelerator = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[1-9]\d{0,2})?$"),
    expect(f'an accelerator like "H100" or "H100:2" (type, then optionally a count of at most {MAX_GPUS})'),
    AfterValidator(lambda value: _gpu_count_at_most(value)),
]
Memory = Annotated[int, PlainValidator(memory_bytes), AfterValidator(_memory_limit)]
Volume = Annotated[str, PlainValidator(volume_entry)]
Ulimits = Annotated[dict[str, int], PlainValidator(ulimit_table)]
Entrypoint = Annotated[str | list[str], PlainValidator(_entrypoint)]
ShmSize = Annotated[int, PlainValidator(shm_bytes), at_most(2**50, "a /dev/shm size of at most 1 PiB")]
Ipc = Annotated[Literal["host", "private", "shareable"], expect('one of "host", "private" or "shareable"')]
Deploy = Annotated[Literal["rolling", "recreate"], expect('one of "rolling" or "recreate"')]
BuildOn = Annotated[Literal["local", "host"], expect('one of "local" (build here, then send) or "host" (build on the app\'s host)')]
Threshold = Annotated[int, Field(ge=1), expect("an integer of at least 1"),
                      at_most(MAX_COUNT, f"an integer of at least 1, at most {MAX_COUNT}")]


DOMAIN_PATTERN = r"^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
Domains = Annotated[list[Annotated[str, Field(pattern=DOMAIN_PATTERN, max_length=253)]],
                    expect('a list of host names in lower case, like ["llm.example.com"]')]


TLS_RULE = ('"internal" (a CA of the gateway\'s own), "acme" (certificates for the apps\' domains from Let\'s '
            'Encrypt) or a table like { cert = "gateway_cert", key = "gateway_key" } (secret names)')


def tls_setting(value: Any) -> str | dict[str, str]:
    """`tls = "internal"`, or `tls = { cert = "SECRET", key = "SECRET" }`."""
    if value in ("internal", "acme"):
        return value
    if isinstance(value, dict) and set(value) == {"cert", "key"} and all(
            isinstance(v, str) and re.match(SECRET_NAME_PATTERN, v) for v in value.values()):
        return dict(value)
    raise _expected(TLS_RULE, value)


def port_range(value: Any) -> str:
    """`port_range = "40000-40999"`: two ports, the first not above the second."""
    what = 'a port range like "40000-40999" (FIRST-LAST, each from 1 to 65535)'
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,5}-\d{1,5}", value.strip()):
        raise _expected(what, value)
    first, last = (int(p) for p in value.strip().split("-"))
    if not 1 <= first <= last <= 65535:
        raise _expected(what, value)
    return value.strip()


class _Table(BaseModel):
    # extra="forbid" is how unknown keys (typos) are caught
    model_config = ConfigDict(extra="forbid", strict=True)


class BuildTable(_Table):
    """`build = { context = "./web", dockerfile = "Dockerfile.gpu", args = { X = "1" } }`;
    `secrets = ["hf_access_token"]` (BuildKit secrets: RUN --mount=type=secret,id=NAME),
    `target = "runtime"` (a stage of a multi-stage Dockerfile), `cache_from = ["repo:tag"]`."""

    context: Text
    dockerfile: Text = "Dockerfile"
    args: dict[str, EnvValue] = Field(default_factory=dict)
    secrets: SecretNames = Field(default_factory=list)
    target: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
                      expect('a build stage name like "runtime" (the name after FROM ... AS)')] | None = None
    cache_from: Annotated[list[Image], expect('a list of image references like ["repo/name:tag"]')] = Field(default_factory=list)


WeightsText = Annotated[str, Field(min_length=1), expect(
    'a source like "hf://org/model@main", "https://host/file" or a local directory like "./weights"')]
MountPath = Annotated[str, Field(pattern=r"^/[^\x00]*$"), expect('an absolute path in the container like "/models/llama"')]
Patterns = Annotated[list[Annotated[str, Field(min_length=1)]], expect('a list of patterns like ["*.json", "*.safetensors"]')]
SecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN), expect(f"a secret name ({SECRET_NAME_RULE})")]


class WeightsTable(_Table):
    """One `[[apps.NAME.weights]]`: weights put into the host's cache, mounted read-only."""

    source: WeightsText  # hf://REPO[@REVISION], https://..., or a local directory
    mount: MountPath
    allow: Patterns = Field(default_factory=list)
    ignore: Patterns = Field(default_factory=list)
    secret: SecretName | None = None  # the token for gated repos or private URLs


class AppFile(_Table):
    """One `[apps.NAME]` table. Exactly one of build and image (checked by the loader,
    so that it is reported beside the app's other errors)."""

    build: Annotated[BuildTable | None, BeforeValidator(_build_table)] = None
    image: Image | None = None
    command: Command | None = None
    port: Port
    host_port: Port | None = None
    readiness: HttpPath | None = None
    liveness: HttpPath | None = None
    readiness_timeout: Seconds = 600.0
    env: dict[str, EnvValue] = Field(default_factory=dict)
    depends_on: AppNames = Field(default_factory=list)
    replicas: Replicas = 1
    host: Text = LOCAL_HOST
    # Where the image is built: None takes [hosts.NAME] build_on of the app's host.
    build_on: BuildOn | None = None
    restart: Restart = "unless-stopped"
    cpus: Cpus | None = None
    memory: Memory | None = None
    secrets: SecretNames = Field(default_factory=list)  # mounted read-only at /secrets/NAME
    secret_env: dict[str, Text] = Field(default_factory=dict)  # env var -> secret name
    weights: list[WeightsTable] = Field(default_factory=list)  # [[apps.NAME.weights]]
    gpus: Gpus | None = None
    accelerator: Accelerator | None = None
    # Serving through the gateway ([stack] gateway_port).
    predict: HttpPath | None = None  # what http://HOST:GATEWAY/APP/predict reaches
    deploy: Deploy = "rolling"
    max_unavailable: Threshold = 1  # replicas a replace takes down at once
    liveness_failure_threshold: Threshold = 3
    probe_interval: Seconds = 10.0
    public: bool = False  # behind a gateway with api_keys: served without a key
    domains: Domains = Field(default_factory=list)  # also routed by the request's Host header
    # As `docker run` has them (-v, --shm-size, --ipc, --ulimit, --entrypoint, --stop-timeout).
    volumes: Annotated[list[Volume], BeforeValidator(_a_list(f"a list of volumes, each {VOLUME_RULE}"))] | None = None
    shm_size: ShmSize | None = None
    ipc: Ipc | None = None
    ulimits: Ulimits | None = None
    entrypoint: Entrypoint | None = None
    stop_timeout: Seconds | None = None


class SecretTable(_Table):
    """`[secrets.NAME]`: where the value comes from; exactly one of the three (checked
    by the loader, beside the other secret errors)."""

    env: EnvName | None = None
    file: Text | None = None
    command: Command | None = None


class HostFile(_Table):
    """One `[hosts.NAME]` table: a Docker host reached over SSH."""

    ssh: SshAddress
    identity_file: Text | None = None
    known_hosts: Text = "~/.ssh/known_hosts"
    accept_new_host_key: bool = False
    docker_socket: Annotated[str, Field(pattern=r"^/\S+$"), expect('an absolute socket path like "/var/run/docker.sock"')] = "/var/run/docker.sock"
    # Where secret files go on the host (default: /var/lib/berth/secrets as root, else the
    # login's ~/.local/state/berth/secrets). Absolute: Docker needs absolute bind sources.
    secrets_dir: Annotated[str, Field(pattern=r"^/[^\x00]*$"), expect('an absolute directory path like "/srv/berth/secrets"')] | None = None
    # A bastion (or several, comma-separated, the first hop first), as ssh's ProxyJump.
    proxy_jump: Annotated[str, Field(pattern=r"^[^,\s]+(,[^,\s]+)*$"),
                          expect('a jump host like "ubuntu@bastion", "bastion:2222" (a Host alias works too), '
                                 'or several: "a,b"')] | None = None
    # Where images of apps on this host are built (an app's own build_on wins): "local"
    # builds on berth's machine and sends the image; "host" builds on this host's engine.
    build_on: BuildOn = "local"


class FromAppFile(AppFile):
    """An `[apps.NAME]` table with `from = "PATH"` (a cerebrium.toml or Truss config.yaml,
    read by the loader): every key is optional and overrides what the file says."""

    port: Port | None = None


class StackSection(_Table):
    """`[stack]`; the whole table may be left out."""

    name: Name | None = None
    secrets_file: Text | None = None  # KEY=VALUE lines: the secrets no [secrets.NAME] defines
    gateway_port: Port | None = None  # one gateway per host that runs apps; off when unset
    gateway_admin_port: Port = 2019  # the gateway's admin API, on its container's own loopback


class GatewayTable(_Table):
    """`[gateway]`: the table form of [stack] gateway_port, with what only it has."""

    port: Port | None = None  # None: [stack] gateway_port (one of the two sets it)
    admin_port: Port | None = None
    api_keys: SecretNames = Field(default_factory=list)  # a request needs one of these secrets' values
    drain_timeout: Seconds = 30.0  # seconds an old replica keeps its requests in flight during a roll
    # Where berth picks the ports of replicas served with no host_port (default 32768-60999).
    port_range: Annotated[str, PlainValidator(lambda value: port_range(value))] | None = None
    # "internal": HTTPS with a CA of the gateway's own (`berth output` prints where its root is).
    # or { cert = "SECRET", key = "SECRET" }: a certificate (PEM, chain included) and its key from secrets.
    tls: Annotated[str | dict[str, str], PlainValidator(lambda value: tls_setting(value))] | None = None


class StackFile(_Table):
    """A whole berth.toml."""

    stack: StackSection | None = None
    gateway: GatewayTable | None = None
    apps: dict[Annotated[str, Field(pattern=NAME_PATTERN)], AppFile] = Field(default_factory=dict)
    secrets: dict[str, SecretTable] = Field(default_factory=dict)
    hosts: dict[Annotated[str, Field(pattern=NAME_PATTERN)], HostFile] = Field(default_factory=dict)
