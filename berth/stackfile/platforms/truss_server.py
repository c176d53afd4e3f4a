"""A model-class Truss (model/model.py with load() and predict()) as an app: the build
context the truss library renders, Truss's own server in the image, on a base berth can build.

The truss library (an optional dependency, the `truss` extra, pinned to TRUSS_VERSION) is
imported only here and only for such a Truss. It renders what Baseten builds from: Truss's
server code, the model, requirements (the server's own merged with the Truss's),
system_packages and its Dockerfile. berth stages that context and builds it as any other
build. Baseten's server base image (baseten/truss-server-base) cannot be pulled from
where berth usually runs, so a Truss without base_image gets LOCAL_BASE with what that
base has (Python, pip, curl, uv) installed in a first stage; a Truss whose base_image
names one keeps it. Also the base of a docker_server Truss without base_image.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pydantic
import yaml

from berth.stackfile.platforms.staging import stage_build, write_if_changed

TRUSS_VERSION = "0.18.36"
INSTALL = f"pip install 'berth[truss]' (truss=={TRUSS_VERSION})"
SERVER_PORT = 8080  # Truss's INFERENCE_SERVER_PORT
# Truss's server answers 503 here while load() runs, 200 once loaded; it has no /health.
READINESS = "/v1/models/model"
PREDICT = "/v1/models/model:predict"
# Where Baseten's server base cannot be pulled: Debian bookworm, as berth's Cerebrium default.
LOCAL_BASE = "debian:bookworm-slim"
SERVER_BASE = "baseten/truss-server-base"
_FROM = re.compile(r"^FROM\s+(\S+)(\s+AS\s+\S+)?\s*$", re.IGNORECASE | re.MULTILINE)
# Files of the rendered context the image never uses: Truss's copy of it for its own hash.
_UNUSED = ("build_hash",)

# model_cache entries with use_volume: false (Truss's "v1" cache): Truss bakes them into the
# image at build time, in a cache_warmer stage that downloads each file into the Hugging
# Face cache and COPY --from it to HF_CACHE_DIR (truss serving_image_builder.py,
# templates/cache.Dockerfile.jinja), where the model's from_pretrained(REPO) finds them.
# berth does the same in a stage of its own: the library would list the repositories'
# files on the Hub while rendering, that is, at plan time.
HF_CACHE = "/root/.cache/huggingface/hub"  # truss's HF_CACHE_DIR
BAKE_STAGE = "berth_model_cache"
BAKE_PROGRAM_FILE = "model_cache.py"
BAKE_LIST_FILE = "model_cache.json"
# The weights fetcher's pin (planner/weights/fetch_script.py), so both read the Hub alike.
BAKE_HUB_PACKAGE = "huggingface_hub==1.17.0"
BAKE_PROGRAM = '''"""Bakes a model-class Truss's model_cache entries with use_volume: false into the
image, as Truss's cache_warmer does: into the Hugging Face cache (HF_HUB_CACHE), where the
model's from_pretrained(REPO) finds them. Written by berth; runs at build time only."""
import json
import os
import sys

if not os.environ.get("HF_ENDPOINT"):  # an unset build ARG is an empty string
    os.environ.pop("HF_ENDPOINT", None)
from huggingface_hub import snapshot_download

for entry in json.load(open(sys.argv[1])):
    token = None
    if entry.get("secret") and os.path.exists("/run/secrets/" + entry["secret"]):
        token = open("/run/secrets/" + entry["secret"]).read().strip() or None
    try:
        where = snapshot_download(entry["repo_id"], revision=entry.get("revision") or None,
                                  allow_patterns=entry.get("allow") or None,
                                  ignore_patterns=entry.get("ignore") or None, token=token)
    except Exception as err:  # one line in the build log, not a traceback
        sys.exit(f"model_cache: cannot fetch {entry['repo_id']}: {type(err).__name__}: {err}")
    print(f"model_cache: {entry['repo_id']} baked at {where}", flush=True)
'''


def is_model_class(raw: dict[str, Any], directory: Path) -> bool:
    """A Truss with no docker_server whose model module is there (model/model.py by default)."""
    module = raw.get("model_module_dir") or "model"
    filename = raw.get("model_class_filename") or "model.py"
    return "docker_server" not in raw and isinstance(module, str) and isinstance(filename, str) \
        and (directory / module / filename).is_file()


def local_base_lines(base: str = LOCAL_BASE, stage: str = "") -> list[str]:
    """A Dockerfile's first stage: `base` with what Truss's server base has and its
    Dockerfile expects: Python 3 with pip, curl, ca-certificates, uv. uv reads the system's
    CA bundle only through SSL_CERT_FILE."""
    return [
        f"FROM {base}" + (f" AS {stage}" if stage else ""),
        "ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 "
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1 "
        "|| ! command -v curl >/dev/null 2>&1; then apt-get update && apt-get install -y --no-install-recommends "
        "python3 python3-pip curl ca-certificates && rm -rf /var/lib/apt/lists/*; fi",
        "RUN command -v uv >/dev/null 2>&1 || python3 -m pip install --no-cache-dir uv",
    ]


def server_dockerfile(rendered: str, origin: str) -> tuple[str, str]:
    """Truss's Dockerfile, with its FROM on Baseten's server base pointed at LOCAL_BASE
    (prepared by local_base_lines); a base_image the Truss names is kept. Returns the
    text and the base image berth builds on."""
    match = _FROM.search(rendered)
    header = f"# Generated by berth from {origin} with truss {TRUSS_VERSION}. Edit the Truss, not this file.\n"
    if match is None:
        return header + rendered, LOCAL_BASE
    image, stage = match[1], match[2] or ""
    if not image.startswith(SERVER_BASE + ":"):
        return header + rendered, image
    lines = local_base_lines(LOCAL_BASE, stage.split()[-1] if stage else "")
    return header + rendered[:match.start()] + "\n".join(lines) + rendered[match.end():], LOCAL_BASE


def _truss_handle() -> Any:
    """A function rendering a Truss directory's build context into a directory, with the
    truss library; None when the library is not installed."""
    try:
        from truss.base.truss_config import ModelCache
    except ImportError:
        return None

    from truss.base.truss_spec import TrussSpec
    from truss.contexts.image_builder.serving_image_builder import ServingImageBuilder

    class Builder(ServingImageBuilder):
        """Truss's own builder, reading the Truss's config from another file: the
        normalised copy (library_config) instead of the Truss's config.yaml."""

        def __init__(self, truss_dir: Path, config_path: Path) -> None:
            self._truss_dir = truss_dir
            self._spec = TrussSpec(truss_dir, config_path=config_path)

    def render_into(truss_dir: Path, build_dir: Path, config: dict[str, Any]) -> None:
        # What TrussHandle.docker_build_setup does, from the normalised copy and less
        # model_cache: the library would fetch the repositories' file lists (and, for
        # use_volume: false, bake the weights) while rendering, that is, at plan time;
        # berth fetches them itself at apply (use_volume: true) or bakes them in its own
        # build stage (use_volume: false, weights_stage).
        with tempfile.TemporaryDirectory(prefix="berth-truss-config-") as tmp:
            config_path = Path(tmp) / "config.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False))
            builder = Builder(truss_dir, config_path)
            builder._spec.config.model_cache = ModelCache([])
            builder.prepare_image_build_dir(build_dir)

    return render_into


class Refused(Exception):
    """What the truss library refused in a Truss, at a key path of its config.yaml."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


def library_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The config.yaml berth gives the truss library: the Truss's own, read as Baseten
    reads the older files the public examples still have. truss 0.18.36's schema refuses
    a numeric spec_version (`spec_version: 2.0`; the field is a string), a model_cache
    entry without use_volume (older trusses had no such key), and runtime.num_workers
    other than 1 (gone since truss 0.9.49). model_cache and hf_cache are berth's (fetched
    as weights, or baked by weights_stage), so they are left out; num_workers is ignored
    with a note by the reader; spec_version becomes its string."""
    config = {key: value for key, value in raw.items() if key not in ("model_cache", "hf_cache")}
    if isinstance(config.get("spec_version"), (int, float)) and not isinstance(config["spec_version"], bool):
        config["spec_version"] = str(config["spec_version"])
    if isinstance(config.get("runtime"), dict) and "num_workers" in config["runtime"]:
        config["runtime"] = {k: v for k, v in config["runtime"].items() if k != "num_workers"}
    return config


def bake_stage(baked: list[dict[str, Any]]) -> tuple[str, str, dict[str, str], tuple[str, ...]]:
    """The build stage that bakes model_cache entries (each {repo_id, revision, allow,
    ignore, secret}) into the Hugging Face cache, the line that copies that cache into the
    server's image, the files the stage needs (under .berth-build/ in the context) and the
    secrets it mounts (a token, as BuildKit secret id NAME at /run/secrets/NAME). On berth's
    local base, whatever base the Truss names: the stage only fetches."""
    secrets = tuple(dict.fromkeys(entry["secret"] for entry in baked if entry.get("secret")))
    mounts = "".join(f"--mount=type=secret,id={name} " for name in secrets)
    lines = [
        *local_base_lines(LOCAL_BASE, BAKE_STAGE),
        f"RUN uv pip install --system --break-system-packages --no-cache '{BAKE_HUB_PACKAGE}'",
        "ARG HF_ENDPOINT",
        "ENV HF_HUB_DISABLE_TELEMETRY=1",
        f"COPY .berth-build/{BAKE_PROGRAM_FILE} .berth-build/{BAKE_LIST_FILE} /berth/",
        f"RUN {mounts}python3 /berth/{BAKE_PROGRAM_FILE} /berth/{BAKE_LIST_FILE}",
    ]
    files = {BAKE_PROGRAM_FILE: BAKE_PROGRAM, BAKE_LIST_FILE: json.dumps(baked, indent=1, sort_keys=True) + "\n"}
    return "\n".join(lines) + "\n\n", f"COPY --from={BAKE_STAGE} {HF_CACHE} {HF_CACHE}\n", files, secrets


_SERVER_COPY = re.compile(r"^COPY [^\n]*\./server [^\n]*$", re.MULTILINE)
_ENTRYPOINT = re.compile(r"^ENTRYPOINT ", re.MULTILINE)


def with_bake_stage(dockerfile: str, stage: str, copy: str) -> str:
    """Truss's Dockerfile with the bake stage before its last stage (the server's), and
    the cache copied in where Truss copies its own (before the server code)."""
    froms = list(_FROM.finditer(dockerfile))
    at = froms[-1].start() if froms else 0
    text = dockerfile[:at] + stage + dockerfile[at:]
    where = _SERVER_COPY.search(text, at + len(stage)) or _ENTRYPOINT.search(text, at + len(stage))
    if where is None:
        return text + copy
    return text[:where.start()] + copy + text[where.start():]


def render(directory: Path, stack_dir: Path, app: str, origin: str, config: dict[str, Any],
           baked: list[dict[str, Any]] | None = None) -> tuple[str, str, str, tuple[str, ...]]:
    """Stage the Truss's build context (rendered by the truss library from `config`, the
    Truss's config as library_config gives it) and berth's Dockerfile for it, with the
    `baked` model_cache entries in a stage of their own (bake_stage): (context,
    dockerfile, base, the build's secrets). Raises Refused saying what is wrong."""
    handle = _truss_handle()
    if handle is None:
        raise Refused(f"a Truss with a model class is built with the truss library, which is not installed: {INSTALL}")
    with tempfile.TemporaryDirectory(prefix="berth-truss-") as tmp:
        out = Path(tmp) / "context"
        # The library logs and prints as it renders; only berth/ renders to the user.
        quiet = io.StringIO()
        logger = logging.getLogger("truss")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                handle(directory, out, config)
        except pydantic.ValidationError as err:  # the library's schema: the first problem, at its key
            problems = err.errors()
            first = problems[0]
            more = f" (and {len(problems) - 1} more like it)" if len(problems) > 1 else ""
            raise Refused(f"truss {TRUSS_VERSION} refuses this Truss: {first['msg'].lower()}{more}",
                          tuple(first["loc"])) from None
        except Exception as err:  # the library's own checks: its message, in one line
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise Refused(f"truss {TRUSS_VERSION} cannot build this Truss: {first_line}") from None
        finally:
            logger.setLevel(level)
        _scrub_secrets(out / "config.yaml")
        text, base = server_dockerfile((out / "Dockerfile").read_text(), origin)
        generated: dict[str, str] = {}
        secrets: tuple[str, ...] = ()
        if baked:
            stage, copy, generated, secrets = bake_stage(baked)
            text = with_bake_stage(text, stage, copy)
        context, dockerfile = stage_build(stack_dir, app, out, include=["*"], exclude=list(_UNUSED),
                                          generated=generated, dockerfile=text, leave_out=("Dockerfile",))
    assert dockerfile is not None
    return str(context), str(dockerfile), base, secrets


def _scrub_secrets(config: Path) -> None:
    """The config.yaml Truss copies into the image, with any secret value written in the
    file replaced by null: values come from berth's secret sources, never from a layer."""
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return
    if isinstance(data, dict) and isinstance(data.get("secrets"), dict) and any(
            v is not None for v in data["secrets"].values()):
        data["secrets"] = {name: None for name in data["secrets"]}
        write_if_changed(config, yaml.safe_dump(data, sort_keys=False))
