"""Baseten Truss's config.yaml read into one app: the file's schema and the mapping of its
keys onto an app's fields; staging.py writes a docker_server Truss's Dockerfile,
truss_server.py renders a model-class Truss's build context.

Key names, required fields and defaults are truss 0.18.36's (truss/base/truss_config.py).
A docker_server Truss is an image with its own HTTP server. As Truss does, berth
builds a thin image on base_image.image: system_packages, requirements (or a
requirements.txt beside the file), the data directory, build_commands, then the start
command under `sh -c` with the base image's ENTRYPOINT cleared (a vLLM image's own
entrypoint would otherwise swallow it). With docker_server.no_build the image runs as it
is; without base_image it builds on truss_server's local equivalent of Truss's server
base. A Truss with a model class (model/model.py) runs on Truss's own server
(truss_server.py); a TensorRT-LLM Truss needs Baseten's engine builder: an error.
Secrets are names only: values never come from the file.
"""

from __future__ import annotations

import difflib
import math
import os
import posixpath
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from berth.stackfile.models import Port, at_most, expect, shown
from berth.stackfile.platforms import truss_server
from berth.stackfile.platforms.imported import Imported, app_name, check_app_name, is_set, read_text
from berth.stackfile.platforms.staging import stage_build, truss_dockerfile
from berth.stackfile.source import Source, fail, quoted
from berth.stackfile.yamlfile import YamlError, load_yaml
from planner.desired import MAX_COUNT, MAX_NAME, MAX_SECONDS, BuildSource, WeightsSource, cpus_problem, memory_problem

FILE = "config.yaml"
FORMAT = "Truss"

# truss.base.truss_config.Accelerator; names are case-sensitive.
ACCELERATORS = ("T4", "L4", "A10G", "V100", "A100", "A100_40GB", "H100", "H200", "H100_40GB", "B200", "L40S",
                "RTX_PRO_6000", "B300", "GB300", "B10")
_MEMORY_UNITS = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                 "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
_MEMORY = re.compile(r"([0-9.]+)([a-zA-Z]*)")
_MILLI_CPU = re.compile(r"([0-9.]+)m")

# Keys of a Truss config that mean nothing for a docker_server Truss, on Baseten too:
# descriptions and the model-class server's settings. Read and left alone.
UNUSED = ("model_metadata", "description", "examples_filename", "spec_version", "input_type", "model_framework",
          "model_type", "model_module_dir", "model_class_filename", "model_class_name", "bundled_packages_dir")
# Keys berth reads but cannot honour on one's own hosts: each becomes a plan warning when set.
IGNORED = {
    "python_version": "a docker_server Truss runs the base image's Python",
    "external_data": "Baseten downloads it at serving time; berth does not",
    "external_package_dirs": "packages outside the Truss are not copied into the image",
    "bdn": "Baseten Delivery Network mounts",
    "trt_llm": "Baseten's TensorRT-LLM server; docker_server runs your own",
    "bis_llm": "Baseten's BIS-LLM server; docker_server runs your own",
    "training_checkpoints": "Baseten training checkpoints",
    "build": "Baseten build secrets; build_commands run without them",
    "live_reload": "Truss's development server",
    "use_local_src": "Truss's development server",
    "cache_internal": "Baseten's internal cache",
    "apply_library_patches": "Truss's model-class server",
}
MAPPED = ("model_name", "base_image", "requirements_file", "requirements", "system_packages",
          "environment_variables", "secrets", "resources", "runtime", "build_commands", "docker_server", "data_dir",
          "model_cache", "hf_cache", "weights")
# Where Baseten mounts a model_cache entry with use_volume: true (truss.base.constants).
MODEL_CACHE_PATH = "/app/model_cache"
RUNTIME_IGNORED = {
    "streaming_read_timeout": "Baseten's proxy timeout; berth does not proxy requests",
    "enable_tracing_data": "Truss server tracing",
    "enable_debug_logs": "Truss server log level",
    "transport": "Baseten's proxy transport; the server's port is published as it is",
    "is_websocket_endpoint": "Baseten's proxy transport; the server's port is published as it is",
    "oidc": "Baseten OIDC tokens",
    "remote_ssh": "Baseten SSH access",
    "egress_restrictions": "berth does not restrict a container's network",
    "truss_server_version_override": "Truss's own server",
    # Older trusses; truss refuses any value but 1 since 0.9.49 ("only 1 worker per server").
    "num_workers": "Truss's server runs one worker since truss 0.9.49; predict_concurrency sets how many "
                   "requests run at once",
}
# Where each AppConfig field comes from, for problems found when the app is made.
KEYS: dict[str, tuple[str, ...]] = {
    "env": ("environment_variables",), "secrets": ("secrets",), "gpus": ("resources", "accelerator"), "gpu_type": ("resources", "accelerator"),
    "readiness_timeout": ("runtime", "health_checks", "startup_threshold_seconds"),
    "probe_timing": ("runtime", "health_checks"), "predict_concurrency": ("runtime", "predict_concurrency"),
    "command": ("docker_server", "start_command"), "port": ("docker_server", "server_port"),
    "host_port": ("docker_server", "server_port"), "image": ("base_image", "image"),
}
RESOURCES_IGNORED = {
    "node_count": "multi-node deployments",
    "fabric": "Baseten network fabric",
}

Text = Annotated[str, Field(min_length=1), expect("a non-empty string")]
Endpoint = Annotated[str, Field(pattern=r"^/\S*$"), expect('an HTTP path starting with "/", like "/health"')]
Seconds = Annotated[int, Field(ge=0), expect("a whole number of seconds"),
                    at_most(MAX_SECONDS, f"a whole number of seconds, at most {MAX_SECONDS} (7 days)")]
Strings = Annotated[list[str], expect("a list of strings")]
Scalar = Annotated[str | int | float, expect('a string like "1", "500m" or "2Gi"')]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaseImage(_Table):
    image: Text
    python_executable_path: Annotated[str, Field(pattern=r"^(/.*)?$"), expect("an absolute path")] = ""
    docker_auth: dict[str, Any] | None = None


class DockerServer(_Table):
    start_command: Text | None = None
    server_port: Port
    predict_endpoint: Endpoint
    readiness_endpoint: Endpoint
    liveness_endpoint: Endpoint
    run_as_user_id: Annotated[int, expect("an integer")] | None = None
    no_build: Annotated[bool, expect("true or false")] | None = None


class Resources(_Table):
    cpu: Scalar | None = None
    memory: Scalar | None = None
    accelerator: Annotated[str | dict[str, Any], expect('a string like "L4" or "H100:2"')] | None = None
    use_gpu: Annotated[bool, expect("true or false")] | None = None
    instance_type: Any = None
    node_count: Any = None
    fabric: Any = None


class HealthChecks(_Table):
    restart_check_delay_seconds: Seconds | None = None
    restart_threshold_seconds: Seconds | None = None
    stop_traffic_threshold_seconds: Seconds | None = None
    startup_threshold_seconds: Seconds | None = None


class Runtime(_Table):
    predict_concurrency: Annotated[int, Field(ge=1), expect("an integer of at least 1"),
                                   at_most(MAX_COUNT, f"an integer of at least 1, at most {MAX_COUNT}")] = 1
    health_checks: HealthChecks = Field(default_factory=HealthChecks)
    streaming_read_timeout: Any = None
    enable_tracing_data: Any = None
    enable_debug_logs: Any = None
    transport: Any = None
    is_websocket_endpoint: Any = None
    oidc: Any = None
    remote_ssh: Any = None
    egress_restrictions: Any = None
    truss_server_version_override: Any = None
    num_workers: Any = None


def read(file: Path, shown_as: str, stack_dir: Path, app: str | None) -> tuple[Imported, Source]:
    """config.yaml at `file` as one app named `app` (None: named after model_name); its
    build files go under stack_dir/.berth/build/APP. Problems are collected in the
    returned source."""
    text = read_text(file, shown_as)
    try:
        document = load_yaml(text)
    except YamlError as err:
        fail(f"invalid YAML: {err.message}", file=shown_as, line=err.line)
    source = Source(file=file, shown=shown_as, text=text, lines=document.find_line, format=FORMAT, quote=quoted)
    raw = source.raw = document.value
    directory = file.parent
    imported = Imported(fields={"origin": source.origin}, name=None, directory=directory, app=app or "",
                        keys=dict(KEYS))
    if not isinstance(raw, dict):
        source.error((), f"expected a mapping of keys like docker_server: and base_image:, got {shown(raw)}")
        return imported, source

    model_class = truss_server.is_model_class(raw, directory)
    _top_level_keys(raw, source, model_class)
    name = raw.get("model_name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        source.error(("model_name",), f"expected a non-empty string, got {shown(name)}")
    elif name is not None:
        imported.name = name
        imported.keys["name"] = ("model_name",)
    imported.app = app or app_name(imported.name, directory)
    check_app_name(imported, source)
    if "docker_server" not in raw and is_set(raw.get("trt_llm")):
        source.error(("trt_llm",), TRT_LLM)
        return imported, source
    if "docker_server" not in raw and not model_class:
        source.error((), _not_a_truss(directory))
        return imported, source
    server = None if model_class else source.validated(DockerServer, raw.get("docker_server"), ("docker_server",))
    base = source.validated(BaseImage, raw.get("base_image"), ("base_image",)) if raw.get("base_image") else None
    resources = source.validated(Resources, raw.get("resources") or {}, ("resources",))
    runtime = source.validated(Runtime, raw.get("runtime") or {}, ("runtime",))
    if server is not None and not server.no_build and server.start_command is None:
        source.error(("docker_server", "start_command"), "missing required key (it may be left out only with no_build: true)")
    if server is not None and server.no_build and base is None:
        source.error(("docker_server", "no_build"), "no_build deploys base_image.image as it is: name one")
    fields = imported.fields
    fields["env"] = _environment(raw.get("environment_variables"), source)
    fields["secrets"] = _secrets(raw.get("secrets"), source)
    fields["weights"], baked = _weights(raw, fields["secrets"], source, model_class)
    fields["secrets"] = tuple(dict.fromkeys([*fields["secrets"], *(w.secret for w in fields["weights"] if w.secret)]))
    if resources is not None:
        fields.update(_resources(resources, source))
    if runtime is not None:
        fields.update(_runtime(runtime, source))
    if model_class:
        _model_class(imported, source, stack_dir, base, raw, baked)
        return imported, source
    layer = _layer(raw, directory, source)
    if server is None or source.problems:
        return imported, source

    fields.update({
        "command": ("sh", "-c", server.start_command) if server.start_command else None,
        "port": server.server_port,
        "host_port": server.server_port,
        "readiness": server.readiness_endpoint,
        "liveness": server.liveness_endpoint,
        "predict": server.predict_endpoint,
    })
    if server.run_as_user_id is not None:
        source.ignore(("docker_server", "run_as_user_id"), "berth runs the server as the image's user")
    if base is not None and base.docker_auth:
        source.ignore(("base_image", "docker_auth"), "berth pulls with the host's own Docker credentials")
    if server.no_build:
        if layer["wanted"]:
            source.error(layer["wanted"][0], "no_build deploys base_image as it is; this would need a build")
            return imported, source
        assert base is not None
        fields["image"] = base.image
        return imported, source

    if base is None:
        # As Truss, which builds on its server base when base_image is not given; that
        # base cannot be pulled here, so its locally buildable equivalent.
        base = BaseImage(image=truss_server.LOCAL_BASE)
        dockerfile_text = truss_dockerfile(base.image, "python3", layer, source.origin).replace(
            f"FROM {base.image}\n", "\n".join(truss_server.local_base_lines()) + "\n", 1)
    else:
        dockerfile_text = truss_dockerfile(base.image, base.python_executable_path or "python3", layer, source.origin)
    try:
        context, dockerfile = stage_build(stack_dir, imported.app, directory,
                                          include=[layer["data"]] if layer["data"] else [], exclude=[],
                                          generated=layer["generated"], dockerfile=dockerfile_text)
    except OSError as err:
        source.error((), f"cannot write the build directory: {err.strerror or err} ({err.filename})")
        return imported, source
    fields["build"] = BuildSource(context=str(context), dockerfile=str(dockerfile), base=base.image)
    return imported, source


# What a model-class Truss reads through the truss library, which docker_server ignores.
MODEL_CLASS_HANDLED = ("external_package_dirs", "apply_library_patches")
TRT_LLM = ("a TensorRT-LLM Truss (trt_llm) needs Baseten's engine builder, which compiles the model into a "
           "TensorRT-LLM engine on Baseten; berth cannot build it. What runs instead: a docker_server Truss whose "
           "start_command serves the model with vLLM (vllm serve) or TensorRT-LLM's own server (trtllm-serve)")


def _not_a_truss(directory: Path) -> str:
    """Why a config.yaml with neither docker_server nor a model is no Truss, naming the
    Truss above it it may belong to (comfyui-truss/examples/*/config.yaml in Baseten's
    examples are configs to copy over comfyui-truss's own, beside a workflow for its data/)."""
    message = ("no docker_server and no model/model.py: this config.yaml is not a whole Truss. berth runs Truss "
               "configs whose docker_server starts an HTTP server, and model-class Trusses (a model/model.py "
               "with load() and predict()) through Truss's own server")
    for parent in list(directory.resolve().parents)[:3]:
        if (parent / "config.yaml").is_file() and truss_server.is_model_class({}, parent):
            return (f"no docker_server and no model/model.py: this config.yaml is not a whole Truss; the Truss "
                    f"{parent.name}/ above it has the model (model/model.py). It looks like a config for that "
                    f"Truss: copy it (and its data files) into {parent.name}/ as that Truss's README says, and "
                    f"deploy {parent.name}/config.yaml")
    return message


def _top_level_keys(raw: dict[str, Any], source: Source, model_class: bool) -> None:
    known = [*MAPPED, *UNUSED, *IGNORED]
    for key, value in raw.items():
        if model_class and key in MODEL_CLASS_HANDLED:
            continue
        if model_class and key == "python_version":
            if is_set(value) and not raw.get("base_image") and str(value) not in ("py311", "3.11"):
                source.ignore((key,), f"berth builds Truss's server on {truss_server.LOCAL_BASE} (Baseten's server "
                              "base cannot be pulled), whose Python is 3.11")
            continue
        if key == "trt_llm" and "docker_server" not in raw:
            continue  # refused with its own message
        if key in IGNORED:
            if is_set(value) and not (key == "apply_library_patches" and value is True):
                source.ignore((key,), IGNORED[key])
        elif key not in MAPPED and key not in UNUSED:
            source.unknown_key((key,), known)


def _environment(raw: Any, source: Source) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        source.error(("environment_variables",), f"expected a mapping of names to values, got {shown(raw)}")
        return {}
    env: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            # 22 of Baseten's public examples write `hf_access_token: null` here (the
            # secret's name, valued elsewhere): set nothing, rather than the text "None".
            source.ignore(("environment_variables", str(key)), "null: the variable is not set")
        elif isinstance(value, (dict, list)):
            # Truss takes strings; str() would hand the server a Python repr ("{'b': 1}").
            source.error(("environment_variables", str(key)), f"expected a string, number or boolean, got {shown(value)}")
        else:
            # As Truss does: booleans lower-case, everything else str().
            env[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _patterns(entry: dict[str, Any], key: str, loc: tuple[Any, ...], source: Source) -> tuple[str, ...]:
    value = entry.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        source.error((*loc, key), f"expected a list of patterns like [\"*.json\"], got {shown(value)}")
        return ()
    return tuple(sorted(set(value)))


def _weights(raw: dict[str, Any], secrets: tuple[str, ...], source: Source,
             model_class: bool) -> tuple[tuple[WeightsSource, ...], list[dict[str, Any]]]:
    """model_cache (or its old name hf_cache) and weights as berth's weights, as Truss
    documents them: a model_cache entry with use_volume: true is fetched from the Hub and
    mounted at /app/model_cache/VOLUME_FOLDER; a weights entry at its mount_location. A
    token secret is used when the Truss lists it under secrets (Baseten hands only those
    to the model). Also returned: a model-class Truss's entries with use_volume false (or
    left out, as older trusses wrote them), which its image bakes as Baseten's does
    (truss_server.bake_stage). What berth cannot fetch is a plan note, not an error."""
    found: list[WeightsSource] = []
    baked: list[dict[str, Any]] = []
    key = "model_cache" if "model_cache" in raw else "hf_cache"
    for index, entry in enumerate(raw.get(key) or []):
        loc = (key, index)
        if not isinstance(entry, dict) or not isinstance(entry.get("repo_id"), str) or not entry["repo_id"]:
            source.error(loc, f"expected a mapping with repo_id, got {shown(entry)}")
            continue
        kind = entry.get("kind", "hf")
        if kind != "hf":
            source.ignore((*loc, "kind"), f"a {kind} repository; berth fetches Hugging Face repos only")
            continue
        token = entry.get("runtime_secret_name", "hf_access_token")
        if entry.get("use_volume") is not True and model_class:
            revision = entry.get("revision")
            baked.append({"repo_id": entry["repo_id"], "revision": revision if isinstance(revision, str) else "",
                          "allow": _patterns(entry, "allow_patterns", loc, source),
                          "ignore": _patterns(entry, "ignore_patterns", loc, source),
                          "secret": token if token in secrets else None})
            continue
        if entry.get("use_volume") is not True:
            source.ignore(loc, "use_volume is not true: Baseten bakes these weights into the image at build time; "
                               "the server downloads them itself under berth")
            continue
        folder = entry.get("volume_folder")
        if not isinstance(folder, str) or not folder.strip("/"):
            source.error((*loc, "volume_folder"), "required with use_volume: true (the folder under /app/model_cache)")
            continue
        revision = entry.get("revision")
        found.append(WeightsSource(
            source=f"hf://{entry['repo_id']}" + (f"@{revision}" if revision else ""),
            mount=posixpath.normpath(f"{MODEL_CACHE_PATH}/{folder}"),
            allow=_patterns(entry, "allow_patterns", loc, source), ignore=_patterns(entry, "ignore_patterns", loc, source),
            secret=token if token in secrets else None))
    for index, entry in enumerate(raw.get("weights") or []):
        loc = ("weights", index)
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str) \
                or not isinstance(entry.get("mount_location"), str) or not entry["mount_location"].startswith("/"):
            source.error(loc, f"expected a mapping with source and an absolute mount_location, got {shown(entry)}")
            continue
        text = entry["source"]
        if not text.startswith(("hf://", "https://", "http://")):
            source.ignore((*loc, "source"), f"{text.split('://')[0]}:// sources; berth fetches hf:// and https:// only")
            continue
        auth = entry.get("auth") if isinstance(entry.get("auth"), dict) else {}
        token = entry.get("auth_secret_name") or auth.get("auth_secret_name")
        found.append(WeightsSource(
            source=text, mount=posixpath.normpath(entry["mount_location"]),
            allow=_patterns(entry, "allow_patterns", loc, source), ignore=_patterns(entry, "ignore_patterns", loc, source),
            secret=token if isinstance(token, str) and token else None))
    return tuple(found), baked


def _secrets(raw: Any, source: Source) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        source.error(("secrets",), f"expected a mapping of secret names (to null), got {shown(raw)}")
        return ()
    for name, value in raw.items():
        if len(str(name)) > MAX_NAME:
            source.error(("secrets", str(name)), f"secret name {shown(str(name))} is {len(str(name))} characters long; "
                         f"at most {MAX_NAME} (it names the secret's file on the host)")
        if value is not None:
            # Never echo the value: it may be a real secret committed by mistake.
            source.ignore(("secrets", str(name)), "a value in the file is never used; berth takes secret "
                          "values from its own secret sources")
    return tuple(str(name) for name in raw)


def cpu_count(value: str | int | float) -> float | None:
    """Truss's cpu: a number of cores, or millicores like "500m"."""
    text = str(value).strip()
    try:
        cores = float(text)
    except ValueError:
        match = _MILLI_CPU.fullmatch(text)
        cores = float(match[1]) / 1000 if match else -1
    return cores if cores > 0 else None


def memory_bytes(value: str | int | float) -> int | None:
    """Truss's memory: bytes, or a number with k/M/G/T (powers of 1000) or Ki/Mi/Gi/Ti (1024)."""
    match = _MEMORY.fullmatch(str(value).strip())
    if not match or match[2] not in ("", *_MEMORY_UNITS):
        return None
    try:
        size = math.ceil(float(match[1]) * _MEMORY_UNITS.get(match[2], 1))
    except (ValueError, OverflowError):  # "1.2.3", or a number past a float's range
        return None
    return size if size > 0 else None


def accelerator(value: str | dict[str, Any]) -> tuple[str, int] | str:
    """("H100", 2) from "H100:2" or {accelerator: H100, count: 2}; a message when invalid."""
    if isinstance(value, dict):
        name, count = value.get("accelerator"), value.get("count", 1)
    else:
        name, _, count_text = value.strip().partition(":")
        count = int(count_text) if count_text.isdigit() else (1 if not count_text else -1)
    if name not in ACCELERATORS:
        same = [known for known in ACCELERATORS if known.lower() == str(name).lower()]
        close = same or difflib.get_close_matches(str(name), ACCELERATORS, n=1, cutoff=0.5)
        hint = f'; did you mean "{close[0]}"?' if close else f" (known, case-sensitive: {', '.join(ACCELERATORS)})"
        return f"unknown accelerator {shown(name)}{hint}"
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        return f"invalid GPU count in {shown(value if isinstance(value, str) else count)}; it must be a positive integer"
    return name, count


_CPU_INSTANCE = re.compile(r"(?P<cpus>[0-9]+)x(?P<memory>[0-9]+)")
_INSTANCE = re.compile(r"(?P<type>[A-Za-z0-9_]+)(?::(?:(?P<count>[0-9]+)|(?P<cpus>[0-9]+)x(?P<memory>[0-9]+)))?")


def instance_type(value: str) -> tuple[str | None, int, float | None, int | None] | str:
    """A Baseten instance SKU as (accelerator, GPUs, cores, memory bytes), or a message.
    Baseten's format is `GPU:vCPUxGiB`, or a bare `vCPUxGiB` for a CPU-only instance (its
    config reference: "H100:8x80: H100 GPU with 8 vCPUs and 80 GiB RAM", "4x16: CPU-only");
    so "H100:8x80" is one H100 with 8 cores and 80 GiB, "L4:4x16" one L4 with 4 and 16,
    "4x16" (or "CPU:4x16") no GPU; "H100" is one H100, and "H100:8" (the accelerator's
    form) eight."""
    text = value.strip()
    if bare := _CPU_INSTANCE.fullmatch(text):
        return None, 0, float(bare["cpus"]), int(bare["memory"]) * 1024**3
    match = _INSTANCE.fullmatch(text)
    if not match:
        return (f"invalid instance_type {shown(value)}; expected Baseten's GPU:vCPUxGiB (\"L4:4x16\": one L4, 4 "
                'vCPUs, 16 GiB), vCPUxGiB for CPU only ("4x16"), or an accelerator with an optional GPU count '
                '("H100", "H100:8")')
    cpus = float(match["cpus"]) if match["cpus"] else None
    memory = int(match["memory"]) * 1024**3 if match["memory"] else None
    if match["type"].upper() == "CPU":
        return None, 0, cpus, memory
    parsed = accelerator(f"{match['type']}:{match['count'] or 1}")
    if isinstance(parsed, str):
        return parsed
    return parsed[0], parsed[1], cpus, memory


def _resources(res: Resources, source: Source) -> dict[str, Any]:
    """accelerator (or instance_type, which overrides cpu, memory and accelerator, as in
    Truss) as the app's GPUs. cpu and memory are checked but are no Docker limits: on
    Baseten they pick an instance size (23 public GPU Trusses write Truss's defaults, 1 core
    and 2Gi), so they are what the app needs; berth's own cpus and memory set limits."""
    fields: dict[str, Any] = {}
    needs: list[str] = []
    cores = size = None
    if res.cpu is not None:
        cores = cpu_count(res.cpu)
        if cores is None:
            source.error(("resources", "cpu"), f'invalid cpu {shown(res.cpu)}; expected cores like "1" or millicores like "500m"')
        elif problem := cpus_problem(cores):
            source.error(("resources", "cpu"), problem)
        else:
            needs.append("cpu")
            fields["needs_cpus"] = cores
    if res.memory is not None:
        size = memory_bytes(res.memory)
        if size is None:
            source.error(("resources", "memory"), f'invalid memory {shown(res.memory)}; expected a size like "2Gi", "512Mi" or "4G"')
        elif problem := memory_problem(size):
            source.error(("resources", "memory"), f"a memory of {size} bytes is {problem}")
        else:
            needs.append("memory")
            fields["needs_memory"] = size
    if is_set(res.instance_type):
        parsed_type = instance_type(res.instance_type) if isinstance(res.instance_type, str) else \
            f"expected a string like \"H100\" or \"L4:4x16\", got {shown(res.instance_type)}"
        if isinstance(parsed_type, str):
            source.error(("resources", "instance_type"), parsed_type)
            return fields
        gpu_type, gpus, sku_cores, sku_memory = parsed_type
        fields.pop("needs_cpus", None)
        fields.pop("needs_memory", None)
        if sku_cores is not None:
            fields["needs_cpus"] = sku_cores
        if sku_memory is not None:
            fields["needs_memory"] = sku_memory
        fields["gpus"] = gpus
        if gpu_type is not None:
            fields["gpu_type"] = gpu_type
        for key in ("cpu", "memory", "accelerator", "use_gpu"):
            if getattr(res, key) is not None:
                source.ignore(("resources", key), "instance_type overrides it, as in Truss")
    elif res.accelerator is not None:
        parsed = accelerator(res.accelerator)
        if isinstance(parsed, str):
            source.error(("resources", "accelerator"), parsed)
        else:
            fields["gpu_type"], fields["gpus"] = parsed
            if res.use_gpu is False:
                source.ignore(("resources", "use_gpu"), "accelerator decides, as in Truss")
    elif res.use_gpu:
        fields["gpus"] = 1  # older Truss configs: one GPU of any type
    if needs and not is_set(res.instance_type):
        source.ignore(("resources", needs[0]), f"{' and '.join(needs)} size a Baseten instance: what the app needs "
                      "(a host with less is refused), not limits on the container (cpus and memory in a berth.toml "
                      "app table set those)")
    for key, why in RESOURCES_IGNORED.items():
        if key != "instance_type" and is_set(getattr(res, key)):
            source.ignore(("resources", key), why)
    return fields


def _model_class(imported: Imported, source: Source, stack_dir: Path, base: BaseImage | None,
                 raw: dict[str, Any], baked: list[dict[str, Any]]) -> None:
    """A Truss with a model class, through Truss's own server: the context the truss
    library renders (requirements, system_packages, the model, the server), built on
    base_image or berth's local equivalent of Baseten's server base."""
    if source.problems:
        return
    if base is not None and base.docker_auth:
        source.ignore(("base_image", "docker_auth"), "berth pulls with the host's own Docker credentials")
    try:
        context, dockerfile, image, secrets = truss_server.render(
            imported.directory, stack_dir, imported.app, source.origin, truss_server.library_config(raw), baked)
    except truss_server.Refused as refused:
        source.error(refused.loc, str(refused))
        return
    except OSError as err:
        source.error((), f"cannot write the build directory: {err.strerror or err} ({err.filename})")
        return
    imported.fields.update({
        # HF_ENDPOINT passed on to the stage baking model_cache, as to the weights fetcher
        "build": BuildSource(context=context, dockerfile=dockerfile, base=image, secrets=secrets,
                             args={"HF_ENDPOINT": os.environ["HF_ENDPOINT"]}
                             if baked and os.environ.get("HF_ENDPOINT") else {}),
        "port": truss_server.SERVER_PORT,
        "host_port": truss_server.SERVER_PORT,
        "readiness": truss_server.READINESS,
        "liveness": truss_server.READINESS,
        "predict": truss_server.PREDICT,
    })


def _runtime(rt: Runtime, source: Source) -> dict[str, Any]:
    fields: dict[str, Any] = {"predict_concurrency": rt.predict_concurrency}
    checks = rt.health_checks
    if checks.startup_threshold_seconds is not None:
        fields["readiness_timeout"] = float(checks.startup_threshold_seconds)
    timing = {
        "liveness_delay": checks.restart_check_delay_seconds,
        "liveness_restart_after": checks.restart_threshold_seconds,
        "unready_after": checks.stop_traffic_threshold_seconds,
    }
    fields["probe_timing"] = {k: float(v) for k, v in timing.items() if v is not None}
    for key, why in RUNTIME_IGNORED.items():
        value = getattr(rt, key)
        if is_set(value) and not (key == "transport" and value in ({"kind": "http"}, "http")):
            source.ignore(("runtime", key), why)
    return fields


def _layer(raw: dict[str, Any], directory: Path, source: Source) -> dict[str, Any]:
    """What goes into the image on top of base_image: apt packages, pip requirements,
    the data directory, build commands. `wanted` lists the keys that asked for any."""
    layer: dict[str, Any] = {"apt": [], "generated": {}, "data": None, "commands": [], "wanted": []}
    for key in ("system_packages", "build_commands", "requirements"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            source.error((key,), f"expected a list of strings, got {shown(value)}")
            raw = {**raw, key: []}
    layer["apt"] = list(raw.get("system_packages") or [])
    layer["commands"] = list(raw.get("build_commands") or [])
    requirements = list(raw.get("requirements") or [])
    req_file = raw.get("requirements_file")
    if req_file is not None and requirements:
        source.error(("requirements_file",), "requirements and requirements_file are mutually exclusive, as in Truss")
    elif req_file is not None:
        if not isinstance(req_file, str) or not req_file:
            source.error(("requirements_file",), f"expected a file name, got {shown(req_file)}")
        elif Path(req_file).name in ("pyproject.toml", "uv.lock"):
            source.error(("requirements_file",), "berth installs requirements files in pip's format "
                         "(requirements.txt); export one from the project")
        else:
            _read_requirements(directory / req_file, ("requirements_file",), layer, source)
    elif requirements:
        layer["generated"]["requirements.txt"] = "\n".join(requirements) + "\n"
        layer["wanted"].append(("requirements",))
    elif (directory / "requirements.txt").is_file():
        _read_requirements(directory / "requirements.txt", ("docker_server",), layer, source)
    data_dir = raw.get("data_dir", "data")
    if isinstance(data_dir, str) and data_dir and (directory / data_dir).is_dir() and any((directory / data_dir).iterdir()):
        layer["data"] = data_dir.strip("/")
        layer["wanted"].append(("data_dir",))
    if layer["apt"]:
        layer["wanted"].append(("system_packages",))
    if layer["commands"]:
        layer["wanted"].append(("build_commands",))
    return layer


def _read_requirements(path: Path, loc: tuple[str, ...], layer: dict[str, Any], source: Source) -> None:
    try:
        layer["generated"]["requirements.txt"] = path.read_text()
        layer["wanted"].append(loc)
    except OSError as err:
        source.error(loc, f"cannot read {path.name}: {err.strerror or err} ({path})")
