"""Cerebrium's cerebrium.toml read into one app: the file's schema (pydantic models of its
tables) and the mapping of its keys onto an app's fields; staging.py writes its Dockerfile.

Both forms the Cerebrium CLI accepts: the older `[cerebrium.deployment]`,
`[cerebrium.runtime.custom]`, ... and the newer unprefixed `[deployment]`,
`[runtime.python]`, ...; a file mixing them is an error, as it is for the CLI. The key
names and defaults are the CLI's (pkg/projectconfig in CerebriumAI/cerebrium).

Runtimes berth can run: `python` (and `custom` without a Dockerfile): berth writes the
Dockerfile itself (base image, Python, apt and pip dependencies, the app's files, the
entrypoint); `docker` (and `custom` with dockerfile_path): the app's own Dockerfile; the
default `cortex` (no runtime table, or `[runtime.cortex]`): the functions of main.py,
found with ast, served by berth's own small server (cortex_server.py) baked into the
image berth writes. Partner services are Cerebrium's own servers: an error.
"""

from __future__ import annotations

import difflib
import re
import shlex
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from berth.stackfile.models import Port, at_most, expect, shown
from berth.stackfile.platforms import cortex_server
from berth.stackfile.platforms.imported import Imported, app_name, check_app_name, is_set, read_text
from berth.stackfile.platforms.staging import cerebrium_dockerfile, stage_build
from berth.stackfile.source import Source, parse_toml, quoted
from planner.diagnostics import Diagnostic
from planner.desired import MAX_COUNT, MAX_GPUS, MAX_REPLICAS, MAX_SECONDS, BuildSource, VolumeMount

PERSISTENT_STORAGE = "/persistent-storage"  # where Cerebrium mounts an app's persistent storage
PERSISTENT_VOLUME = "persistent-storage"  # the named volume berth keeps for it

FILE = "cerebrium.toml"
FORMAT = "Cerebrium"
SECTIONS = ("deployment", "hardware", "scaling", "dependencies", "runtime")

# The CLI's defaults (pkg/projectconfig/loader.go).
DEFAULT_PYTHON = "3.11"
DEFAULT_BASE = "debian:bookworm-slim"
DEFAULT_INCLUDE = ("./*", "main.py", "cerebrium.toml")
DEFAULT_EXCLUDE = (".*",)
DEFAULT_ENTRYPOINT = ("uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000")
DEFAULT_PORT = 8000
GIB = 1024**3

# compute names: an architecture, then the card ("AMPERE_A100_80GB" -> "A100_80GB").
_COMPUTE = re.compile(r"(TURING|AMPERE|ADA|HOPPER|BLACKWELL)_([A-Z0-9_]+)")
_PARTNERS = ("deepgram", "rime")


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _split_command(value: Any) -> Any:
    # The CLI splits an entrypoint written as one string the way a shell would.
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            return value
    return value


def _version_text(value: Any) -> Any:
    # viper reads `torch = 2.1` as a string too
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Endpoint = Annotated[
    Annotated[str, Field(pattern=r"^/\S*$")] | None, BeforeValidator(_empty_is_none),
    expect('an HTTP path starting with "/", like "/health"'),
]
Strings = Annotated[list[str], expect("a list of strings")]
Entrypoint = Annotated[list[str], Field(min_length=1), BeforeValidator(_split_command),
                       expect('a non-empty list of strings, like ["uvicorn", "main:app"], or one command line')]
Version = Annotated[str, BeforeValidator(_version_text), expect('a version string, like "2.1.0", ">=2" or "latest"')]
Text = Annotated[str, Field(min_length=1), expect("a non-empty string")]
Positive = Annotated[float, Field(gt=0), expect("a number greater than 0"),
                     at_most(MAX_COUNT, f"a finite number greater than 0, at most {MAX_COUNT}")]
Count = Annotated[int, Field(ge=0), expect("an integer of at least 0"),
                  at_most(MAX_COUNT, f"an integer of at least 0, at most {MAX_COUNT}")]
AtLeastOne = Annotated[int, Field(ge=1), expect("an integer of at least 1"),
                       at_most(MAX_COUNT, f"an integer of at least 1, at most {MAX_COUNT}")]
Flag = Annotated[bool, expect("true or false")]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DependencyPaths(_Table):
    pip: Text | None = None
    conda: Text | None = None
    apt: Text | None = None


class Dependencies(_Table):
    pip: dict[str, Version] = Field(default_factory=dict)
    conda: dict[str, Version] = Field(default_factory=dict)
    apt: dict[str, Version] = Field(default_factory=dict)
    paths: DependencyPaths = Field(default_factory=DependencyPaths)


class _Build(_Table):
    """What [deployment] used to hold and the python/cortex runtimes hold now."""

    python_version: Text | None = None
    docker_base_image_url: Text | None = None
    shell_commands: Strings | None = None
    pre_build_commands: Strings | None = None
    use_uv: Flag | None = None


class Deployment(_Build):
    name: Text
    include: Strings | None = None
    exclude: Strings | None = None
    disable_auth: Flag | None = None
    deployment_initialization_timeout: Annotated[
        int, Field(ge=1), expect("an integer of at least 1"),
        at_most(MAX_SECONDS, f"a number of seconds of at least 1, at most {MAX_SECONDS} (7 days)")] | None = None


class Hardware(_Table):
    cpu: Positive | None = None
    memory: Positive | None = None  # GB
    compute: Text | None = None
    # 0 is what Cerebrium's own CPU examples write beside compute = "CPU" (ignored there)
    gpu_count: Annotated[int, Field(ge=0), expect("an integer of at least 0"),
                         at_most(MAX_GPUS, f"an integer of at least 0, at most {MAX_GPUS}")] | None = None
    provider: Text | None = None
    region: Text | None = None


class Scaling(_Table):
    min_replicas: Annotated[int, Field(ge=0), expect("an integer of at least 0"),
                            at_most(MAX_REPLICAS, f"an integer of at least 0, at most {MAX_REPLICAS}")] | None = None
    max_replicas: Count | None = None
    cooldown: Count | None = None
    replica_concurrency: AtLeastOne | None = None
    response_grace_period: Count | None = None
    scaling_metric: Text | None = None
    scaling_target: Count | None = None
    scaling_buffer: Count | None = None
    roll_out_duration_seconds: Count | None = None
    evaluation_interval_seconds: Count | None = None
    load_balancing_algorithm: Text | None = None
    compute_tier: Text | None = None


class _Server(_Table):
    entrypoint: Entrypoint | None = None
    port: Port | None = None
    healthcheck_endpoint: Endpoint = None
    readycheck_endpoint: Endpoint = None


class PythonRuntime(_Build, _Server):
    deps: Dependencies | None = None


class DockerRuntime(_Server):
    dockerfile_path: Text


class CortexRuntime(_Build):
    """[runtime.cortex], or no runtime table: Cerebrium's default, main.py's functions."""

    deps: Dependencies | None = None


class CustomRuntime(_Server):
    dockerfile_path: Annotated[str | None, BeforeValidator(_empty_is_none)] = None


# Where each AppConfig field comes from (the runtime's keys are added per file).
_KEYS: dict[str, tuple[str, ...]] = {
    "cpus": ("hardware", "cpu"), "memory": ("hardware", "memory"),
    "gpus": ("hardware", "gpu_count"), "gpu_type": ("hardware", "compute"), "replicas": ("scaling", "min_replicas"),
    "predict_concurrency": ("scaling", "replica_concurrency"),
    "readiness_timeout": ("deployment", "deployment_initialization_timeout"),
    "stop_timeout": ("scaling", "response_grace_period"),
}

_RUNTIMES: dict[str, type[_Table]] = {"cortex": CortexRuntime, "python": PythonRuntime, "docker": DockerRuntime,
                                      "custom": CustomRuntime}


class _Note:
    """Why each key berth cannot honour is ignored, in one line."""

    SCALING = {
        "cooldown": "no autoscaler on one's own hosts",
        "scaling_metric": "no autoscaler on one's own hosts",
        "scaling_target": "no autoscaler on one's own hosts",
        "scaling_buffer": "no autoscaler on one's own hosts",
        "roll_out_duration_seconds": "berth replaces containers as fast as readiness allows",
        "evaluation_interval_seconds": "no autoscaler on one's own hosts",
        "load_balancing_algorithm": "berth publishes one port per replica; no load balancer yet",
        "compute_tier": "a Cerebrium billing tier",
    }


def read(file: Path, shown_as: str, stack_dir: Path, app: str | None) -> tuple[Imported, Source]:
    """cerebrium.toml at `file` as one app named `app` (None: named after deployment.name);
    its build files go under stack_dir/.berth/build/APP. Problems are collected in the
    returned source."""
    text = read_text(file, shown_as)
    source = Source(file=file, shown=shown_as, text=text, format=FORMAT, quote=quoted)
    raw = source.raw = parse_toml(text, shown_as)
    tables = _tables(raw, source)
    directory = file.parent
    imported = Imported(fields={"origin": source.origin}, name=None, directory=directory, app=app or "")
    if tables is None:
        return imported, source

    deployment = source.validated(Deployment, tables.get("deployment", {}), ("deployment",))
    hardware = source.validated(Hardware, _hardware_table(tables.get("hardware", {}), source), ("hardware",))
    scaling = source.validated(Scaling, tables.get("scaling", {}), ("scaling",))
    dependencies = source.validated(Dependencies, tables.get("dependencies", {}), ("dependencies",))
    runtime = _runtime(tables.get("runtime"), source)
    if "deployment" not in tables:
        source.error(("deployment",), "missing [deployment] table (it names the app)")
    if deployment is not None:
        imported.name = deployment.name
        imported.keys["name"] = ("deployment", "name")
    imported.app = app or app_name(imported.name, directory)
    check_app_name(imported, source)
    if None in (deployment, hardware, scaling, dependencies) or runtime is None:
        return imported, source

    kind, rt = runtime
    fields = imported.fields
    served: list[str] = []
    if kind == "cortex":
        found = _cortex_functions(directory, source)
        if found is None:
            return imported, source
        served = found
        where = ("runtime", kind) if isinstance(tables.get("runtime"), dict) else ("deployment",)
        imported.keys.update(_KEYS | {"command": where, "port": where, "host_port": where, "predict": where})
        fields.update(_cortex_server(served))
    else:
        imported.keys.update(_KEYS | {"command": ("runtime", kind, "entrypoint"), "port": ("runtime", kind, "port"),
                                      "host_port": ("runtime", kind, "port")})
        fields.update(_server(kind, rt))
    fields.update(_hardware(hardware, source))
    fields.update(_scaling(scaling, source))
    _deployment(deployment, fields, source)

    include = deployment.include or list(DEFAULT_INCLUDE)
    exclude = deployment.exclude or list(DEFAULT_EXCLUDE)
    dockerfile_path = rt.dockerfile_path if isinstance(rt, (DockerRuntime, CustomRuntime)) else None
    build = _effective_build(rt if isinstance(rt, (PythonRuntime, CortexRuntime)) else None, deployment)
    if dockerfile_path:
        _ignore_build_keys(kind, rt, deployment, dependencies, source)
        own_dockerfile: Path | None = (directory / dockerfile_path).resolve()
        if not own_dockerfile.is_file():
            source.error(("runtime", kind, "dockerfile_path"), f"Dockerfile {dockerfile_path} not found ({own_dockerfile})")
            return imported, source
        generated: dict[str, str] = {}
    else:
        own_dockerfile = None
        deps = _merge_deps(dependencies, rt.deps if isinstance(rt, (PythonRuntime, CortexRuntime)) else None,
                           kind, source)
        generated = _dependency_files(deps, directory, kind, source)
        if served:  # berth's own server for main.py's functions, and what it needs
            generated[cortex_server.FILE] = cortex_server.PROGRAM
            generated[cortex_server.REQUIREMENTS_FILE] = cortex_server.REQUIREMENTS
    if not own_dockerfile:
        _python_version(build, _python_key(rt, deployment, kind), source)
    if source.problems:
        return imported, source
    text = None if own_dockerfile else cerebrium_dockerfile(build, generated, source.origin)
    try:
        # The file itself stays out of the image: most of it is how the container runs.
        context, written = stage_build(stack_dir, imported.app, directory, include=include, exclude=exclude,
                                       generated=generated, dockerfile=text, leave_out=[file.name])
    except OSError as err:
        source.error((), f"cannot write the build directory: {err.strerror or err} ({err.filename})")
        return imported, source
    if served and not (context / "main.py").is_file():
        source.error(("deployment", "include" if deployment.include else "exclude"),
                     "main.py is left out of the image by deployment.include/exclude, and its functions are "
                     "the app's endpoints (Cerebrium's default runtime): include main.py")
        return imported, source
    fields["build"] = BuildSource(context=str(context), dockerfile=str(own_dockerfile or written),
                                  base=None if own_dockerfile else build["base"])
    # Cerebrium mounts its persistent storage at /persistent-storage in every app (no key
    # in the file: its examples cache weights and compiled artifacts there): here a named
    # volume, kept per host and shared by the stack's apps, as Cerebrium shares it per project.
    fields["volumes"] = (VolumeMount(source=PERSISTENT_VOLUME, target=PERSISTENT_STORAGE),)
    return imported, source


def _tables(raw: dict[str, Any], source: Source) -> dict[str, Any] | None:
    """The file's sections, whichever form it is written in."""
    legacy = "cerebrium" in raw
    unprefixed = [key for key in raw if key in SECTIONS]
    if legacy and unprefixed:
        source.error((unprefixed[0],), f"[{unprefixed[0]}] mixes with [cerebrium.*] tables: use one form, "
                                       "the unprefixed one or the older [cerebrium.*] one")
        return None
    if not legacy:
        for key in raw:
            if key not in SECTIONS:
                _ignore_table(key, raw[key], source)
        return {key: value for key, value in raw.items() if key in SECTIONS}
    for key in raw:
        if key != "cerebrium":
            _ignore_table(key, raw[key], source)
    tables = raw["cerebrium"]
    if not isinstance(tables, dict):
        source.error(("cerebrium",), f"expected a table, got {shown(tables)}")
        return None
    source.prefix = ("cerebrium",)
    for key in tables:
        if key not in SECTIONS:
            _ignore_table(key, tables[key], source)
    return {key: value for key, value in tables.items() if key in SECTIONS}


def _ignore_table(key: str, value: Any, source: Source) -> None:
    """A table the Cerebrium CLI does not read (it ignores it, so berth does too, with a
    warning saying where its keys would count)."""
    why = "not a table the Cerebrium CLI reads, so it has no effect there or here"
    inner = list(value) if isinstance(value, dict) else []
    build_keys = set(_Build.model_fields)
    if key in ("pip", "apt", "conda"):
        why += f"; packages go in [{'.'.join((*source.prefix, 'dependencies', key))}]"
    elif inner and set(inner) <= build_keys:
        why += (f"; {', '.join(inner)} go{'es' if len(inner) == 1 else ''} in "
                f"[{'.'.join((*source.prefix, 'deployment'))}]")
    elif close := difflib.get_close_matches(key, list(SECTIONS), n=1, cutoff=0.6):
        why += f'; did you mean "{close[0]}"?'
    source.ignore((key,), why)


def _runtime(raw: Any, source: Source) -> tuple[str, Any] | None:
    if raw is None:  # Cerebrium's default: the functions of main.py
        return "cortex", CortexRuntime()
    if not isinstance(raw, dict) or not raw:
        source.error(("runtime",), "expected one table like [runtime.python]")
        return None
    if len(raw) > 1:
        source.error(("runtime", list(raw)[1]), f"only one runtime may be given; found {', '.join(raw)}")
        return None
    (kind, table), = raw.items()
    if kind in _PARTNERS:
        source.error(("runtime", kind), f"{kind} is a Cerebrium partner service; berth cannot run it")
        return None
    if kind not in _RUNTIMES:
        source.error(("runtime", kind), f"unknown runtime {shown(kind)}; berth runs cortex (the default), "
                     "python, docker and custom")
        return None
    model = source.validated(_RUNTIMES[kind], table, ("runtime", kind))
    return None if model is None else (kind, model)


def _table_name(source: Source, *path: str) -> str:
    """A table as this file's form writes it: [runtime.python] or [cerebrium.runtime.python]."""
    return "[" + ".".join((*source.prefix, *path)) + "]"


def _cortex_functions(directory: Path, source: Source) -> list[str] | None:
    """main.py's served functions (read, never imported), or None with the problem recorded."""
    main = directory / "main.py"
    shown_main = str(Path(source.shown).parent / "main.py")
    # The CLI reads [cerebrium.runtime.custom] in the older form, [runtime.python] in the newer.
    own = _table_name(source, "runtime", "custom" if source.prefix else "python")
    instead = f"or, for a server of your own, add {own} with an entrypoint that starts it"
    try:
        text = main.read_text()
    except FileNotFoundError:
        source.error(("deployment",), f"no main.py beside the file: with no runtime table (Cerebrium's default, "
                     f"cortex) the functions of main.py are the app's endpoints; add main.py, {instead}")
        return None
    except (OSError, UnicodeDecodeError) as err:
        source.problems.append(Diagnostic(summary=f"cannot read main.py: {getattr(err, 'strerror', None) or err}",
                                          file=shown_main))
        return None
    try:
        found = cortex_server.functions(text, shown_main)
    except SyntaxError as err:
        source.problems.append(Diagnostic(summary=f"main.py is not valid Python: {err.msg}", file=shown_main,
                                          line=err.lineno))
        return None
    if not found:
        source.problems.append(Diagnostic(
            summary="main.py has no top-level function to serve (Cerebrium's default runtime serves each "
                    f"`def` of main.py whose name does not start with _); add one, {instead}", file=shown_main))
        return None
    return found


def _server(kind: str, rt: Any) -> dict[str, Any]:
    docker = isinstance(rt, DockerRuntime) or (isinstance(rt, CustomRuntime) and rt.dockerfile_path)
    entrypoint = rt.entrypoint or (None if docker else list(DEFAULT_ENTRYPOINT))
    port = rt.port or DEFAULT_PORT
    return {
        # A Dockerfile's own CMD runs unless an entrypoint is given.
        "command": tuple(entrypoint) if entrypoint else None,
        "port": port,
        "host_port": port,
        # Unspecified, both are a TCP check of the port, as Cerebrium documents.
        "readiness": rt.readycheck_endpoint,
        "liveness": rt.healthcheck_endpoint,
    }


def _cortex_server(served: list[str]) -> dict[str, Any]:
    """The container of a cortex app: berth's server on Cerebrium's port, its own probes,
    predict on main.py's `predict` (else its first function)."""
    return {
        "command": ("python3", cortex_server.INSTALLED_AT, "--port", str(DEFAULT_PORT), *served),
        "port": DEFAULT_PORT,
        "host_port": DEFAULT_PORT,
        "readiness": "/ready",
        "liveness": "/health",
        "predict": "/predict" if "predict" in served else f"/{served[0]}",
    }


def _hardware_table(table: Any, source: Source) -> Any:
    """[hardware] with the older `gpu` key refused in words that name its successor."""
    if not isinstance(table, dict) or "gpu" not in table:
        return table
    value = table["gpu"]
    example = value if isinstance(value, str) and _COMPUTE.fullmatch(value) else "AMPERE_A10"
    source.error(("hardware", "gpu"), f'hardware.gpu is the older name of hardware.compute: write compute = '
                 f'"{example}" (a GPU name like "ADA_L4" or "HOPPER_H100", or "CPU"), and gpu_count for how many')
    return {k: v for k, v in table.items() if k != "gpu"}


def _hardware(hw: Hardware, source: Source) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if hw.cpu is not None:
        fields["cpus"] = hw.cpu
    if hw.memory is not None:
        fields["memory"] = int(hw.memory * GIB)
    compute = hw.compute
    if compute is not None and compute != "CPU":
        match = _COMPUTE.fullmatch(compute)
        if re.fullmatch(r"(INF|TRN)\d+", compute):
            source.error(("hardware", "compute"), f"{compute} is an AWS {'Inferentia' if compute[0] == 'I' else 'Trainium'} "
                         "accelerator (Neuron devices), which berth does not place: it places NVIDIA GPUs; "
                         'use a GPU name like "ADA_L4", or "CPU"')
        elif not match:
            source.error(("hardware", "compute"), f"unknown compute {shown(compute)}; expected CPU or a GPU "
                         'name like "ADA_L4", "HOPPER_H100", "AMPERE_A100_80GB", "AMPERE_A10", "TURING_T4"')
        elif hw.gpu_count == 0:
            source.error(("hardware", "gpu_count"), f'gpu_count = 0 with compute = "{compute}": set compute = '
                         '"CPU" for an app without GPUs, or gpu_count to 1 or more')
        else:
            fields["gpu_type"] = match[2]
            fields["gpus"] = hw.gpu_count or 1
    elif hw.gpu_count is not None:
        source.ignore(("hardware", "gpu_count"), "compute is CPU (or unset), so no GPUs are asked for")
    if hw.provider is not None:
        source.ignore(("hardware", "provider"), "a Cerebrium cloud provider; berth runs on your own hosts")
    if hw.region is not None:
        source.ignore(("hardware", "region"), "a Cerebrium region; berth runs on your own hosts")
    return fields


def _scaling(sc: Scaling, source: Source) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    replicas = max(1, sc.min_replicas or 0)
    if sc.min_replicas is not None:
        fields["replicas"] = replicas
        if sc.min_replicas == 0:
            source.ignore(("scaling", "min_replicas"), "scaling to zero needs Cerebrium's autoscaler; "
                          "berth keeps 1 replica running")
    if sc.max_replicas is not None:
        if sc.min_replicas is not None and sc.max_replicas < sc.min_replicas:
            source.error(("scaling", "max_replicas"), f"max_replicas {sc.max_replicas} is below min_replicas {sc.min_replicas}")
        elif sc.max_replicas > replicas:
            source.ignore(("scaling", "max_replicas"), f"no autoscaler on one's own hosts: berth runs "
                          f"{replicas} replica{'s' if replicas > 1 else ''} (min_replicas, at least 1)")
    if sc.replica_concurrency is not None:
        fields["predict_concurrency"] = sc.replica_concurrency
    # The time in-flight requests get once a replica is told to stop: SIGTERM to SIGKILL.
    if sc.response_grace_period:
        fields["stop_timeout"] = float(sc.response_grace_period)
    elif sc.response_grace_period == 0:
        source.ignore(("scaling", "response_grace_period"), "0 would kill at once; containers get Docker's 10 s to stop")
    for key, why in _Note.SCALING.items():
        if getattr(sc, key) is not None:
            source.ignore(("scaling", key), why)
    return fields


def _deployment(dep: Deployment, fields: dict[str, Any], source: Source) -> None:
    if dep.deployment_initialization_timeout is not None:
        fields["readiness_timeout"] = float(dep.deployment_initialization_timeout)
    if dep.disable_auth:  # served without the gateway's API keys, as Cerebrium serves it without its own
        fields["public"] = True


def _effective_build(rt: _Build | None, dep: Deployment) -> dict[str, Any]:
    """The runtime's build settings, falling back to [deployment]'s (deprecated there,
    still read by the CLI), then to the CLI's defaults."""

    def pick(key: str, default: Any) -> Any:
        value = getattr(rt, key) if rt is not None else None
        if value is None:
            value = getattr(dep, key)
        return default if value is None else value

    return {
        "python": pick("python_version", DEFAULT_PYTHON),
        "base": pick("docker_base_image_url", DEFAULT_BASE),
        "shell": pick("shell_commands", []),
        "pre_build": pick("pre_build_commands", []),
        "uv": pick("use_uv", False),
    }


# What berth knows of common bases without asking a host: the Python a release's python3
# is, and the python3.X packages it carries (Debian's and Ubuntu's archives). uv's managed
# Pythons (python-build-standalone) cover the CPython minor versions in UV_PYTHONS.
_RELEASES = {  # release: (its python3, the python3.X packages it has)
    "bullseye": ("3.9", ("3.9",)), "bookworm": ("3.11", ("3.11",)), "trixie": ("3.13", ("3.13",)),
    "focal": ("3.8", ("3.8", "3.9")), "jammy": ("3.10", ("3.10", "3.11")), "noble": ("3.12", ("3.12",)),
}
_RELEASE_WORDS = {"11": "bullseye", "12": "bookworm", "13": "trixie", "20.04": "focal", "22.04": "jammy",
                  "24.04": "noble", **{name: name for name in _RELEASES}}
UV_PYTHONS = tuple(f"3.{minor}" for minor in range(8, 15))
_VERSION = re.compile(r"(\d+)\.(\d+)(\.\d+)?")


def base_python(base: str) -> tuple[str | None, str | None]:
    """(the Python the base image's python3 is, its Debian or Ubuntu release) as far as its
    name tells: python:3.12-slim -> ("3.12", None); debian:bookworm-slim -> ("3.11",
    "bookworm"); nvidia/cuda:12.1.1-runtime-ubuntu22.04 -> ("3.10", "jammy"); else Nones."""
    repo, _, tag = base.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")
    if repo == "python":
        match = re.match(r"(\d+\.\d+)", tag)
        return (match[1] if match else None), None
    words = re.split(r"[-_]", tag)
    if repo in ("debian", "ubuntu") and words:
        release = _RELEASE_WORDS.get(words[0])
    else:  # a tag naming its OS, like 12.1.1-cudnn8-runtime-ubuntu22.04
        release = next((_RELEASE_WORDS[w.removeprefix("ubuntu")] for w in words
                        if w.startswith("ubuntu") and w.removeprefix("ubuntu") in _RELEASE_WORDS), None)
    return (_RELEASES[release][0] if release else None), release


def _python_version(build: dict[str, Any], where: tuple[str, ...], source: Source) -> None:
    """python_version as major.minor, and a plan-time error where berth knows the base
    cannot have it: not its Python, not in its release's packages, not one uv provides."""
    asked = build["python"]
    match = _VERSION.fullmatch(asked.strip())
    if not match:
        source.error(where, f'expected a Python version like "3.11", got {shown(asked)}')
        return
    asked = build["python"] = f"{match[1]}.{match[2]}"
    have, release = base_python(build["base"])
    if have is None or asked == have:
        return
    if (release and asked in _RELEASES[release][1]) or asked in UV_PYTHONS:
        return  # the image gets it (python_install in staging.py)
    source.error(where, f"python_version {asked} is asked for, but the base image {build['base']} has Python "
                 f"{have}{f', {release} packages no python{asked}' if release else ''}, and uv provides "
                 f"{UV_PYTHONS[0]} to {UV_PYTHONS[-1]}: set python_version = \"{have}\", or "
                 f"docker_base_image_url to an image with Python {asked}")


def _python_key(rt: Any, dep: Deployment, kind: str) -> tuple[str, ...]:
    if getattr(rt, "python_version", None) is not None:
        return ("runtime", kind, "python_version")
    return ("deployment", "python_version") if dep.python_version is not None else ("deployment",)


def _ignore_build_keys(kind: str, rt: Any, dep: Deployment, deps: Dependencies, source: Source) -> None:
    """A Dockerfile build makes its own image: what would shape berth's own is unused."""
    why = "the app's own Dockerfile builds the image"
    for key in ("python_version", "docker_base_image_url", "shell_commands", "pre_build_commands", "use_uv"):
        if is_set(getattr(dep, key)):
            source.ignore(("deployment", key), why)
    for key, value in deps:
        if key != "paths" and value:
            source.ignore(("dependencies", key), why)
    for key, value in deps.paths:
        if value:
            source.ignore(("dependencies", "paths", key), why)


def _merge_deps(top: Dependencies, inner: Dependencies | None, kind: str, source: Source) -> dict[str, Any]:
    """[dependencies] (older) and [runtime.python.deps] (newer); the runtime's win per package."""
    merged: dict[str, Any] = {"pip": dict(top.pip), "apt": dict(top.apt), "conda": dict(top.conda),
                              "paths": {k: (v, ("dependencies", "paths", k)) for k, v in top.paths if v}}
    if inner is not None:
        merged["pip"].update(inner.pip)
        merged["apt"].update(inner.apt)
        merged["conda"].update(inner.conda)
        merged["paths"].update({k: (v, ("runtime", kind, "deps", "paths", k)) for k, v in inner.paths if v})
    if merged["conda"] or "conda" in merged["paths"]:
        where = ("runtime", kind, "deps", "conda") if inner is not None and inner.conda else ("dependencies", "conda")
        if "conda" in merged["paths"]:
            where = merged["paths"]["conda"][1]
        source.error(where, "conda dependencies need Cerebrium's conda image; berth installs pip and apt "
                     "packages: move them to pip or apt")
    return merged


def requirement_lines(deps: dict[str, str]) -> list[str]:
    """Cerebrium's rule: "", "*" and "latest" are unpinned; a version starting with
    =, >, < or ! is used as written; anything else means ==version. Sorted by name."""
    lines = []
    for name in sorted(deps):
        version = deps[name].strip()
        if version in ("", "*", "latest"):
            lines.append(name)
        elif version[0] in "=><!":
            lines.append(f"{name}{version}")
        else:
            lines.append(f"{name}=={version}")
    return lines


def _apt_packages(deps: dict[str, str]) -> list[str]:
    return [name if version.strip() in ("", "*", "latest") else f"{name}={version.strip()}"
            for name, version in sorted(deps.items())]


def _dependency_files(deps: dict[str, Any], directory: Path, kind: str, source: Source) -> dict[str, str]:
    """requirements.txt and apt.txt for .berth-build/, from tables or the files paths names."""
    files: dict[str, str] = {}
    for key, name, lines in (("pip", "requirements.txt", requirement_lines(deps["pip"])),
                             ("apt", "apt.txt", _apt_packages(deps["apt"]))):
        path = deps["paths"].get(key)
        if path and lines:
            source.error(path[1], f"both {key} packages and a {key} file are given: use one, as Cerebrium requires")
        elif path:
            file = (directory / path[0]).resolve()
            try:
                files[name] = file.read_text()
            except OSError as err:
                source.error(path[1], f"cannot read {path[0]}: {err.strerror or err} ({file})")
        elif lines:
            files[name] = "\n".join(lines) + "\n"
    return files
