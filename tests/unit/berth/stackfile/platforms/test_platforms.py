"""berth/stackfile's readers of the platforms' own formats: Cerebrium's cerebrium.toml and
Truss's config.yaml, alone, through `from =`, and every problem as a located Diagnostic.

The golden tests read the documented files in examples/ (copied, so that berth's build
directory is written beside the copy) and check every mapped field.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from textwrap import dedent

import pytest

from berth.stackfile.platforms.cerebrium import requirement_lines
from berth.stackfile.load import find_stack_file, load_stack
from berth.stackfile.platforms.truss import accelerator, cpu_count, memory_bytes
from planner.desired import AppConfig, BuildSource, Stack, VolumeMount
from planner.diagnostics import Diagnostic, DiagnosticsError
from planner.sources import describe
from providers.types import Observation, ObservedImage

EXAMPLES = Path(__file__).resolve().parents[5] / "examples"
UNREADABLE = ("pydantic", "Traceback", "Input should", "For further information", "Field required")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def example(name: str, into: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES / name, into / name))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"))
    return path


def only_app(stack: Stack) -> AppConfig:
    [app] = stack.apps.values()
    return app


def errors(path: str) -> list[Diagnostic]:
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(path)
    for diagnostic in caught.value.diagnostics:
        assert not any(word in str(diagnostic) for word in UNREADABLE), str(diagnostic)
    return caught.value.diagnostics


# -- golden: the documented files ------------------------------------------------------


def test_cerebrium_documented_custom_runtime(in_tmp: Path) -> None:
    directory = example("cerebrium-fastapi", in_tmp)
    stack = load_stack(str(directory))
    app = only_app(stack)
    build_dir = directory / ".berth" / "build" / "my-fastapi-app"
    assert stack.name == "my-fastapi-app" and stack.file == str(directory / "cerebrium.toml")
    assert app == AppConfig(
        name="my-fastapi-app",
        build=BuildSource(context=str(build_dir / "context"), dockerfile=str(build_dir / "Dockerfile"),
                          base="debian:bookworm-slim"),
        command=("uvicorn", "main:app", "--host", "0.0.0.0", "--port", "5000"),
        port=5000, host_port=5000,
        readiness="/ready", liveness="/health",  # readycheck -> readiness, healthcheck -> liveness
        # Cerebrium's persistent storage, as a named volume berth keeps per host
        volumes=(VolumeMount(source="persistent-storage", target="/persistent-storage"),),
        origin="cerebrium.toml (Cerebrium)",
    )
    dockerfile = (build_dir / "Dockerfile").read_text()
    assert "FROM debian:bookworm-slim\n" in dockerfile
    assert "python_version 3.11 was asked for" in dockerfile
    assert "uv pip install --system" in dockerfile  # use_uv
    # The entrypoint and port are the container's (app.command above), not the image's: an
    # edit of them must not rebuild (issue 17 item 16). Nor is cerebrium.toml staged.
    assert "CMD" not in dockerfile and "EXPOSE" not in dockerfile and "5000" not in dockerfile
    context = build_dir / "context"
    staged = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert staged == [".berth-build/requirements.txt", "main.py"]
    assert (context / ".berth-build/requirements.txt").read_text() == "fastapi\nuvicorn\n"


def test_truss_documented_vllm_config(in_tmp: Path) -> None:
    directory = example("truss-vllm", in_tmp)
    stack = load_stack(str(directory))
    app = only_app(stack)
    build_dir = directory / ".berth" / "build" / "vllm-model-server"
    start = ('sh -c "HF_TOKEN=$(cat /secrets/hf_access_token) vllm serve meta-llama/Meta-Llama-3.1-8B-Instruct '
             '--port 8000 --max-model-len 1024"')
    assert stack.name == "vllm-model-server"
    # where plan-time problems of these keys point: resources.accelerator, secrets
    assert app.lines == {"gpus": 10, "gpu_type": 10, "secrets": 12}
    assert app.model_copy(update={"lines": {}}) == AppConfig(
        name="vllm-model-server",
        build=BuildSource(context=str(build_dir / "context"), dockerfile=str(build_dir / "Dockerfile"),
                          base="vllm/vllm-openai:latest"),
        command=("sh", "-c", start),
        port=8000, host_port=8000, readiness="/health", liveness="/health",
        gpus=1, gpu_type="L4", secrets=("hf_access_token",),
        predict="/v1/chat/completions", predict_concurrency=128,
        origin="config.yaml (Truss)",
    )
    dockerfile = (build_dir / "Dockerfile").read_text()
    assert "FROM vllm/vllm-openai:latest\n" in dockerfile
    assert "ENTRYPOINT []\n" in dockerfile  # the image's own entrypoint would swallow the command
    assert "pip install" not in dockerfile and "apt-get" not in dockerfile  # nothing asked for a layer


def test_plan_notes_for_the_vllm_example(in_tmp: Path) -> None:
    stack = load_stack(str(example("truss-vllm", in_tmp)))
    apps, warnings = describe(stack, {"local": Observation(host="local")})
    entry = apps["vllm-model-server"]
    assert entry["origin"] == "config.yaml (Truss)" and entry["gpus"] == 1 and entry["gpu_type"] == "L4"
    assert entry["build"]["base"] == "vllm/vllm-openai:latest" and entry["image_id"] is None
    assert any("vllm/vllm-openai:latest is a mutable tag: it is not on host local and will be pulled" in w
               for w in warnings)
    assert not any("GPU" in w for w in warnings)  # placement checks GPUs, with the hosts' inventories

    seen = ObservedImage(id="sha256:" + "ab" * 32, tags=("vllm/vllm-openai:latest",),
                         digests=("vllm/vllm-openai@sha256:" + "cd" * 32,), labels={})
    apps, warnings = describe(stack, {"local": Observation(host="local", images=(seen,))})
    assert apps["vllm-model-server"]["image_id"] == seen.id
    [mutable] = [w for w in warnings if "mutable" in w]
    assert "host local has it as sha256:abababababab" in mutable and seen.digests[0] in mutable


def test_berth_toml_apps_get_no_platform_notes(in_tmp: Path) -> None:
    app = AppConfig(name="web", image="busybox:latest", port=80, host_port=80)
    assert describe(Stack(name="s", file="x", apps={"web": app}), {"local": Observation(host="local")}) == ({}, [])


# -- Cerebrium: the older form, hardware, scaling, dependencies ------------------------


LEGACY = """
[cerebrium.deployment]
name = "Legacy App!"
include = ["./*"]
exclude = [".*", "*.bin"]
deployment_initialization_timeout = 900
disable_auth = false

[cerebrium.runtime.custom]
entrypoint = ["python3", "serve.py"]
port = 8192

[cerebrium.hardware]
compute = "AMPERE_A100_80GB"
gpu_count = 2
cpu = 4
memory = 16.0
region = "us-east-1"

[cerebrium.scaling]
min_replicas = 0
max_replicas = 5
cooldown = 60
replica_concurrency = 8

[cerebrium.dependencies.pip]
torch = "2.1.0"
numpy = ">=1.26"
fastapi = "*"
pydantic = ""

[cerebrium.dependencies.apt]
ffmpeg = ""
"""


def test_cerebrium_legacy_form_maps_hardware_scaling_and_dependencies(in_tmp: Path) -> None:
    file = write(in_tmp / "legacy" / "cerebrium.toml", LEGACY)
    write(in_tmp / "legacy" / "serve.py", "print('hi')\n")
    write(in_tmp / "legacy" / "weights.bin", "x")
    write(in_tmp / "legacy" / ".env", "SECRET=1")
    app = only_app(load_stack(str(file)))
    assert app.name == "legacy-app"
    assert (app.command, app.port, app.readiness, app.liveness) == (("python3", "serve.py"), 8192, None, None)
    assert (app.gpus, app.gpu_type, app.cpus, app.memory) == (2, "A100_80GB", 4.0, 16 * 1024**3)
    assert (app.replicas, app.predict_concurrency, app.readiness_timeout) == (1, 8, 900.0)
    context = Path(app.build.context)
    assert sorted(p.name for p in context.iterdir() if p.is_file()) == ["serve.py"]  # the file itself is config
    assert (context / ".berth-build/requirements.txt").read_text() == (
        "fastapi\nnumpy>=1.26\npydantic\ntorch==2.1.0\n")
    assert (context / ".berth-build/apt.txt").read_text() == "ffmpeg\n"
    ignored = "\n".join(app.ignored)
    for key in ("cerebrium.hardware.region", "cerebrium.scaling.min_replicas", "cerebrium.scaling.max_replicas",
                "cerebrium.scaling.cooldown"):
        assert key in ignored
    assert "cerebrium.toml:17: cerebrium.hardware.region" in ignored  # file and line of each
    # disable_auth = false has a meaning now: the gateway's API keys guard the app.
    assert "disable_auth" not in ignored and not app.public
    assert len(app.ignored) == 4


@pytest.mark.parametrize(("pins", "lines"), [
    ({"a": "", "b": "*", "c": "latest"}, ["a", "b", "c"]),
    ({"a": "1.0", "b": "==2", "c": ">=3", "d": "<4", "e": "!=5"}, ["a==1.0", "b==2", "c>=3", "d<4", "e!=5"]),
])
def test_cerebrium_dependency_versions(pins: dict[str, str], lines: list[str]) -> None:
    assert requirement_lines(pins) == lines


def test_cerebrium_docker_runtime_uses_the_apps_dockerfile(in_tmp: Path) -> None:
    write(in_tmp / "d" / "Dockerfile", "FROM busybox:latest\n")
    file = write(in_tmp / "d" / "cerebrium.toml", """
        [deployment]
        name = "d"
        python_version = "3.12"
        [runtime.docker]
        dockerfile_path = "./Dockerfile"
        port = 8192
        healthcheck_endpoint = "/health"
        [hardware]
        compute = "CPU"
        gpu_count = 1
    """)
    app = only_app(load_stack(str(file)))
    assert app.build.dockerfile == str(in_tmp / "d" / "Dockerfile") and app.build.base is None
    assert (app.command, app.port, app.liveness, app.readiness, app.gpus) == (None, 8192, "/health", None, 0)
    assert sorted(entry.split(": ")[1] for entry in app.ignored) == ["deployment.python_version", "hardware.gpu_count"]


# -- Truss: resources, runtime, layers -------------------------------------------------


def test_truss_resources_runtime_env_secrets_and_layer(in_tmp: Path) -> None:
    directory = in_tmp / "truss"
    write(directory / "data" / "vocab.txt", "a\n")
    file = write(directory / "config.yaml", """
        model_name: Embedder
        description: an embedding server
        base_image:
          image: python:3.11-slim@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
          python_executable_path: /usr/local/bin/python3
        docker_server:
          start_command: python3 -m http.server 7000
          server_port: 7000
          predict_endpoint: /embed
          readiness_endpoint: /ready
          liveness_endpoint: /health
        requirements:
          - numpy==1.26.4
        system_packages: [curl]
        build_commands: ["echo built > /built"]
        environment_variables:
          DEBUG: true
          WORKERS: 4
        secrets:
          hf_access_token: null
          api_key: do-not-echo-me
        resources:
          cpu: 500m
          memory: 4G
          accelerator: H100:2
        runtime:
          predict_concurrency: 4
          streaming_read_timeout: 120
          health_checks:
            startup_threshold_seconds: 1200
            restart_check_delay_seconds: 30
            restart_threshold_seconds: 300
            stop_traffic_threshold_seconds: 60
        python_version: py311
    """)
    app = only_app(load_stack(str(file)))
    assert app.name == "embedder"
    assert app.command == ("sh", "-c", "python3 -m http.server 7000")
    assert (app.port, app.readiness, app.liveness, app.predict) == (7000, "/ready", "/health", "/embed")
    assert app.env == {"DEBUG": "true", "WORKERS": "4"}
    assert app.secrets == ("hf_access_token", "api_key")
    # cpu and memory size a Baseten instance: no Docker limits (a note says so)
    assert (app.cpus, app.memory, app.gpus, app.gpu_type) == (None, None, 2, "H100")
    assert (app.predict_concurrency, app.readiness_timeout) == (4, 1200.0)
    assert app.probe_timing == {"liveness_delay": 30.0, "liveness_restart_after": 300.0, "unready_after": 60.0}
    ignored = "\n".join(app.ignored)
    assert "do-not-echo-me" not in ignored
    for key in ("secrets.api_key", "resources.cpu", "runtime.streaming_read_timeout", "python_version"):
        assert key in ignored
    assert len(app.ignored) == 4
    dockerfile = Path(app.build.dockerfile).read_text()
    assert "FROM python:3.11-slim@sha256:0123" in dockerfile  # a digest pin is kept exact
    for line in ("apt-get install -y --no-install-recommends curl", "/usr/local/bin/python3 -m pip install",
                 "COPY data /app/data", "RUN echo built > /built", "ENTRYPOINT []"):
        assert line in dockerfile
    assert "CMD" not in dockerfile and "7000" not in dockerfile  # the start command is the container's
    context = Path(app.build.context)
    assert (context / ".berth-build/requirements.txt").read_text() == "numpy==1.26.4\n"
    assert (context / "data/vocab.txt").is_file() and not (context / "config.yaml").exists()


@pytest.fixture
def builder(monkeypatch: pytest.MonkeyPatch):
    """Choose the builder this machine has: the Dockerfiles berth writes use BuildKit's
    cache mounts only where it builds with BuildKit."""
    from providers.buildkit import Builder

    def choose(kind: str) -> None:
        found = Builder("legacy") if kind == "legacy" else Builder("buildkit", "/usr/bin/docker", "20.10.24")
        monkeypatch.setattr("providers.buildkit.find_builder", lambda: found)

    return choose


def test_truss_requirements_txt_beside_the_file_makes_a_layer(in_tmp: Path, builder) -> None:
    builder("legacy")
    write(in_tmp / "t" / "requirements.txt", "requests\n")
    file = write(in_tmp / "t" / "config.yaml", """
        base_image: {image: "debian:bookworm-slim"}
        docker_server: {start_command: "python3 -m http.server", server_port: 8000, predict_endpoint: /,
                        readiness_endpoint: /, liveness_endpoint: /}
    """)
    app = only_app(load_stack(str(file)))
    assert app.name == "t"  # no model_name: the directory's name
    assert "pip install --no-cache-dir -r /tmp/berth-requirements.txt" in Path(app.build.dockerfile).read_text()


def test_truss_no_build_runs_the_image_as_it_is(in_tmp: Path) -> None:
    file = write(in_tmp / "n" / "config.yaml", """
        base_image: {image: "nvcr.io/nim/meta/llama:1.0"}
        docker_server: {no_build: true, server_port: 8000, predict_endpoint: /v1, readiness_endpoint: /r,
                        liveness_endpoint: /l}
    """)
    app = only_app(load_stack(str(file)))
    assert (app.image, app.build, app.command) == ("nvcr.io/nim/meta/llama:1.0", None, None)


@pytest.mark.parametrize(("value", "cores"), [("1", 1.0), ("500m", 0.5), (2, 2.0), ("0", None), ("1x", None)])
def test_truss_cpu(value: object, cores: float | None) -> None:
    assert cpu_count(value) == cores


@pytest.mark.parametrize(("value", "size"), [("2Gi", 2 * 1024**3), ("512Mi", 512 * 1024**2), ("4G", 4 * 10**9),
                                             ("1000", 1000), ("2gb", None), ("x", None)])
def test_truss_memory(value: str, size: int | None) -> None:
    assert memory_bytes(value) == size


@pytest.mark.parametrize(("value", "parsed"), [("L4", ("L4", 1)), ("H100:8", ("H100", 8)),
                                               ({"accelerator": "A10G", "count": 2}, ("A10G", 2))])
def test_truss_accelerator(value: object, parsed: tuple[str, int]) -> None:
    assert accelerator(value) == parsed


# -- from = in berth.toml --------------------------------------------------------------


def test_from_reads_the_file_and_the_table_overrides_it(in_tmp: Path) -> None:
    example("truss-vllm", in_tmp / "apps")
    write(in_tmp / "berth.toml", """
        [stack]
        name = "mixed"
        [apps.llm]
        from = "apps/truss-vllm/config.yaml"
        host_port = 18000
        replicas = 2
        env = { LOG_LEVEL = "debug" }
        readiness_timeout = 1800
        [apps.web]
        image = "busybox:latest"
        port = 80
        depends_on = ["llm"]
    """)
    stack = load_stack(None)
    llm = stack.apps["llm"]
    assert (llm.name, llm.port, llm.host_port, llm.replicas, llm.readiness_timeout) == ("llm", 8000, 18000, 2, 1800.0)
    assert llm.env == {"LOG_LEVEL": "debug"} and llm.gpu_type == "L4" and llm.predict_concurrency == 128
    assert llm.origin == "apps/truss-vllm/config.yaml (Truss)"
    assert llm.build.dockerfile == str(in_tmp / ".berth/build/llm/Dockerfile")  # beside the stack file
    assert stack.apps["web"].origin == "berth.toml"


def test_from_a_directory_and_a_port_override(in_tmp: Path) -> None:
    example("cerebrium-fastapi", in_tmp)
    write(in_tmp / "berth.toml", '[apps.api]\nfrom = "cerebrium-fastapi"\nport = 9000\n')
    api = load_stack(None).apps["api"]
    assert (api.port, api.host_port, api.readiness) == (9000, 9000, "/ready")


# -- bad input, as data ----------------------------------------------------------------

CEREBRIUM_BAD = [
    ('[deployment]\nname = "a"\n[runtime.python]\nport = 0\n', "runtime.python.port", 4, "expected an integer from 1 to 65535"),
    ('[deployment]\nname = "a"\n[runtime.python]\nentrypoint = ""\n', "runtime.python.entrypoint", 4, "non-empty list"),
    ('[deployment]\nname = "a"\n[runtime.python]\nprot = 1\n', "runtime.python.prot", 4, 'did you mean "port"'),
    # the default runtime (no table, or [runtime.cortex]) needs main.py; the hint is in the file's form
    ('[deployment]\nname = "a"\n', "deployment", 1, "no main.py beside the file"),
    ('[deployment]\nname = "a"\n[runtime.cortex]\n', "deployment", 1, "add [runtime.python]"),
    ('[cerebrium.deployment]\nname = "a"\n', "cerebrium.deployment", 1, "add [cerebrium.runtime.custom]"),
    ('[deployment]\nname = "a"\n[runtime.python]\n[runtime.docker]\ndockerfile_path = "D"\n',
     "runtime.docker", 4, "only one runtime"),
    ('[cerebrium.deployment]\nname = "a"\n[runtime.python]\n', "runtime", 3, "use one form"),
    ('[deployment]\nname = "a"\n[runtime.python]\n[hardware]\ncompute = "TPU_V5"\n', "hardware.compute", 5, "unknown compute"),
    ('[deployment]\nname = "a"\n[runtime.docker]\ndockerfile_path = "nope/Dockerfile"\n',
     "runtime.docker.dockerfile_path", 4, "not found"),
    ('[deployment]\nname = "a"\n[runtime.python]\n[dependencies.conda]\ncuda = "12"\n', "dependencies.conda", 4, "conda"),
    ('[deployment]\nname = "a"\n[runtime.python]\n[scaling]\nmin_replicas = 3\nmax_replicas = 1\n',
     "scaling.max_replicas", 6, "below min_replicas"),
    ('[deployment]\nname = "a"\n[runtime.python]\n[dependencies.pip]\nx = "1"\n[dependencies.paths]\npip = "r.txt"\n',
     "dependencies.paths.pip", 7, "use one"),
    ('[runtime.python]\n', "deployment", None, "missing [deployment]"),
    ('[deployment]\nname = "a"\n[runtime.python\n', None, 3, "invalid TOML"),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), CEREBRIUM_BAD)
def test_cerebrium_bad_input(in_tmp: Path, text: str, key: str | None, line: int | None, words: str) -> None:
    (in_tmp / "cerebrium.toml").write_text(text)
    found = errors(".")
    assert any(d.key == key and d.line == line and words in d.summary and d.file == "cerebrium.toml"
               for d in found), [str(d) for d in found]


SERVER = ("docker_server:\n  start_command: run\n  server_port: 8000\n  predict_endpoint: /p\n"
          "  readiness_endpoint: /r\n  liveness_endpoint: /l\n")
IMAGE = "base_image:\n  image: busybox:latest\n"
TRUSS_BAD = [
    (IMAGE + SERVER.replace("  server_port: 8000\n", ""), "docker_server.server_port", 3, "missing required key"),
    (IMAGE + SERVER.replace("  start_command: run\n", ""), "docker_server.start_command", 3, "no_build"),
    (IMAGE + SERVER.replace("/r", "health"), "docker_server.readiness_endpoint", 7, 'starting with "/"'),
    (IMAGE + SERVER + "resources:\n  accelerator: l4\n", "resources.accelerator", 10, 'did you mean "L4"'),
    (IMAGE + SERVER + "resources:\n  accelerator: H100:x\n", "resources.accelerator", 10, "positive integer"),
    (IMAGE + SERVER + "resources:\n  memory: 2 gigs\n", "resources.memory", 10, "invalid memory"),
    (IMAGE + SERVER + "resources:\n  cpu: lots\n", "resources.cpu", 10, "invalid cpu"),
    (IMAGE + SERVER + "modle_name: x\n", "modle_name", 9, 'did you mean "model_name"'),
    (IMAGE + SERVER + "requirements: [a]\nrequirements_file: r.txt\n", "requirements_file", 10, "mutually exclusive"),
    (IMAGE + SERVER + "requirements_file: pyproject.toml\n", "requirements_file", 9, "pip's format"),
    (IMAGE + SERVER + "docker_server: {}\n", None, 9, "duplicate key"),
    (IMAGE + "model_name: m\n", None, None, "no docker_server"),
    (SERVER.replace("  start_command: run\n", "  no_build: true\n"), "docker_server.no_build", 2, "name one"),
    ("trt_llm:\n  build: {base_model: decoder}\n", "trt_llm", 1, "Baseten's engine builder"),
    (IMAGE + SERVER + "resources:\n  instance_type: H100:x\n", "resources.instance_type", 10, "invalid instance_type"),
    (IMAGE + SERVER + "runtime:\n  predict_concurrency: 0\n", "runtime.predict_concurrency", 10, "at least 1"),
    ("base_image: [\n", None, 2, "invalid YAML"),
    ("- a\n- b\n", None, None, "expected a mapping"),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), TRUSS_BAD)
def test_truss_bad_input(in_tmp: Path, text: str, key: str | None, line: int | None, words: str) -> None:
    (in_tmp / "config.yaml").write_text(text)
    found = errors(".")
    assert any(d.key == key and d.line == line and words in d.summary and d.file == "config.yaml"
               for d in found), [str(d) for d in found]


@pytest.mark.parametrize(("files", "words"), [
    (("berth.toml", "config.yaml"), "holds berth.toml and config.yaml: pass -f with the one you mean"),
    (("cerebrium.toml", "config.yaml"), "holds cerebrium.toml and config.yaml"),
])
def test_a_directory_with_more_than_one_stack_file(in_tmp: Path, files: tuple[str, ...], words: str) -> None:
    for name in files:
        (in_tmp / name).write_text("")
    with pytest.raises(DiagnosticsError) as caught:
        find_stack_file(".")
    assert words in caught.value.diagnostics[0].summary


@pytest.mark.parametrize(("from_", "words"), [
    ('"nope/config.yaml"', "nope/config.yaml not found"),
    ('"other.toml"', "not a cerebrium.toml or Truss config.yaml"),
    ('"empty"', "holds no cerebrium.toml or config.yaml"),
    ("3", "expected a path"),
])
def test_from_bad_input(in_tmp: Path, from_: str, words: str) -> None:
    (in_tmp / "other.toml").write_text("")
    (in_tmp / "empty").mkdir()
    write(in_tmp / "berth.toml", f"[apps.x]\nfrom = {from_}\n")
    found = errors("berth.toml")
    assert any(d.key == "apps.x.from" and d.line == 2 and words in d.summary for d in found), [str(d) for d in found]


def test_errors_in_a_from_file_name_that_file(in_tmp: Path) -> None:
    write(in_tmp / "m" / "config.yaml", IMAGE + SERVER.replace("8000", "0"))
    write(in_tmp / "berth.toml", '[apps.m]\nfrom = "m"\n')
    [diagnostic] = errors("berth.toml")
    assert (diagnostic.file, diagnostic.key, diagnostic.line) == ("m/config.yaml", "docker_server.server_port", 5)


def test_with_buildkit_the_written_dockerfiles_keep_pip_uv_and_apt_downloads_in_cache_mounts(in_tmp: Path, builder) -> None:
    from berth.stackfile.platforms.staging import apt_install, pip_install, truss_dockerfile

    builder("buildkit")
    directory = example("cerebrium-fastapi", in_tmp)
    app = only_app(load_stack(str(directory)))
    dockerfile = Path(app.build.dockerfile).read_text()
    assert "RUN --mount=type=cache,target=/var/cache/berth/uv UV_CACHE_DIR=/var/cache/berth/uv" in dockerfile
    assert "--no-cache" not in dockerfile.split("uv pip install", 1)[1]
    assert pip_install("/r.txt", cached=True) == [
        "RUN --mount=type=cache,target=/var/cache/berth/pip PIP_CACHE_DIR=/var/cache/berth/pip python3 -m pip install -r /r.txt"]
    apt = apt_install(["curl"], cached=True)
    assert apt.startswith("RUN --mount=type=cache,target=/var/cache/apt,sharing=locked "
                          "--mount=type=cache,target=/var/lib/apt/lists,sharing=locked ")
    assert "docker-clean" in apt and "rm -rf /var/lib/apt/lists" not in apt
    layer = {"apt": ["curl"], "generated": {"requirements.txt": ""}, "data": None, "commands": []}
    assert truss_dockerfile("base:1", "python3", layer, "config.yaml").count("--mount=type=cache") == 3


def test_with_the_legacy_builder_the_written_dockerfiles_have_no_mounts(in_tmp: Path, builder) -> None:
    builder("legacy")
    directory = example("cerebrium-fastapi", in_tmp)
    app = only_app(load_stack(str(directory)))
    dockerfile = Path(app.build.dockerfile).read_text()
    assert "--mount" not in dockerfile and "--no-cache" in dockerfile


def test_a_port_override_over_a_truss_reaches_its_start_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "config.yaml").write_text(dedent("""
        base_image: {image: "vllm/vllm-openai:v0.6.3"}
        docker_server: {start_command: "vllm serve m --port 8000 --max-model-len 80001", server_port: 8000,
                        predict_endpoint: /v1/chat/completions, readiness_endpoint: /health, liveness_endpoint: /health}
    """))
    (tmp_path / "berth.toml").write_text('[apps.llm]\nfrom = "v/config.yaml"\nport = 9000\n')
    app = load_stack(None).apps["llm"]
    assert (app.command, app.port) == (("sh", "-c", "vllm serve m --port 9000 --max-model-len 80001"), 9000)
