"""A model-class Truss (model/model.py) planned from its files, Trusses berth refuses by
design, and the resources real Truss configs write (issue 19): a fixture per case."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from berth.stackfile.load import load_stack
from berth.stackfile.platforms import truss_server
from berth.stackfile.platforms.truss import instance_type
from planner.desired import AppConfig
from planner.diagnostics import DiagnosticsError

MODEL = "class Model:\n    def load(self):\n        pass\n\n    def predict(self, model_input):\n        return model_input\n"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"))
    return path


def model_truss(directory: Path, config: str) -> Path:
    write(directory / "model" / "model.py", MODEL)
    return write(directory / "config.yaml", config)


def only_app(path: Path) -> AppConfig:
    [app] = load_stack(str(path)).apps.values()
    return app


def refused(path: Path) -> list:
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(path))
    return caught.value.diagnostics


def test_a_model_class_truss_is_an_app_on_truss_own_server(in_tmp: Path) -> None:
    file = model_truss(in_tmp / "echo", """
        model_name: Echo
        python_version: py311
        requirements: [six==1.16.0]
        system_packages: [jq]
        environment_variables: {GREETING: hi}
        secrets: {hf_access_token: do-not-bake-me}
        resources: {cpu: "1", memory: 2Gi, accelerator: L4}
        runtime: {predict_concurrency: 2}
    """)
    app = only_app(file)
    assert (app.name, app.port, app.readiness, app.liveness, app.predict) == (
        "echo", 8080, "/v1/models/model", "/v1/models/model", "/v1/models/model:predict")
    assert (app.command, app.image, app.env, app.secrets) == (None, None, {"GREETING": "hi"}, ("hf_access_token",))
    assert (app.gpus, app.gpu_type, app.cpus, app.memory, app.predict_concurrency) == (1, "L4", None, None, 2)
    assert app.build is not None and app.build.base == "debian:bookworm-slim"
    dockerfile = Path(app.build.dockerfile).read_text()
    # Baseten's server base cannot be pulled: its FROM is berth's local base with what it has
    assert "baseten/truss-server-base" not in dockerfile
    assert "FROM debian:bookworm-slim AS truss_server" in dockerfile and "pip install --no-cache-dir uv" in dockerfile
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in dockerfile
    assert 'ENTRYPOINT ["python3", "/app/main.py"]' in dockerfile  # Truss's own server
    context = Path(app.build.context)
    assert (context / "model" / "model.py").read_text() == MODEL
    assert (context / "server" / "truss_server.py").is_file()
    assert "six==1.16.0" in (context / "requirements.txt").read_text()
    assert "fastapi" in (context / "requirements.txt").read_text()  # the server's own, merged in by Truss
    assert (context / "system_packages.txt").read_text().split() == ["jq"]
    assert not (context / "Dockerfile").exists() and not (context / "build_hash").exists()
    baked = (context / "config.yaml").read_text()
    assert "do-not-bake-me" not in baked and "hf_access_token" in baked  # secret values never in a layer
    ignored = "\n".join(app.ignored)
    assert "do-not-bake-me" not in ignored and "resources.cpu" in ignored


def test_a_model_class_truss_on_its_own_base_image_keeps_it(in_tmp: Path) -> None:
    file = model_truss(in_tmp / "m", """
        base_image: {image: "python:3.12-slim"}
        python_version: py312
    """)
    app = only_app(file)
    assert app.build.base == "python:3.12-slim"
    assert "FROM python:3.12-slim AS truss_server" in Path(app.build.dockerfile).read_text()
    assert app.ignored == ()  # the named base's Python is the one that runs, as on Baseten


def test_a_python_version_berths_base_lacks_is_a_note(in_tmp: Path) -> None:
    app = only_app(model_truss(in_tmp / "m", "python_version: py312\n"))
    assert any("python_version" in note and "3.11" in note for note in app.ignored), app.ignored


def test_without_the_truss_library_the_error_names_the_command(in_tmp: Path, monkeypatch) -> None:
    monkeypatch.setattr(truss_server, "_truss_handle", lambda: None)
    [problem] = refused(model_truss(in_tmp / "m", "model_name: m\n"))
    assert "pip install 'berth[truss]'" in problem.summary and truss_server.TRUSS_VERSION in problem.summary


def test_a_truss_with_neither_server_nor_model_is_refused(in_tmp: Path) -> None:
    [problem] = refused(write(in_tmp / "m" / "config.yaml", "model_name: m\n"))
    assert "no docker_server and no model/model.py" in problem.summary
    assert "above it" not in problem.summary


def test_a_tensorrt_llm_truss_is_refused_saying_what_runs_instead(in_tmp: Path) -> None:
    file = model_truss(in_tmp / "t", """
        model_name: llama
        resources: {accelerator: H100}
        trt_llm:
          build:
            base_model: decoder
            checkpoint_repository: {source: HF, repo: meta-llama/Llama-3.1-8B-Instruct}
    """)
    [problem] = refused(file)
    assert (problem.key, problem.line) == ("trt_llm", 3)
    assert "Baseten's engine builder" in problem.summary
    assert "docker_server" in problem.summary and "vLLM" in problem.summary and "trtllm-serve" in problem.summary


def test_a_docker_server_truss_without_base_image_builds_on_the_local_server_base(in_tmp: Path) -> None:
    file = write(in_tmp / "tts" / "config.yaml", """
        model_name: qwen-tts
        docker_server:
          start_command: python3 -m http.server 8000
          server_port: 8000
          predict_endpoint: /
          readiness_endpoint: /
          liveness_endpoint: /
        requirements: [six]
    """)
    app = only_app(file)
    assert app.build.base == "debian:bookworm-slim" and app.command == ("sh", "-c", "python3 -m http.server 8000")
    dockerfile = Path(app.build.dockerfile).read_text()
    assert dockerfile.count("FROM ") == 1 and "FROM debian:bookworm-slim\n" in dockerfile
    assert "python3 python3-pip curl ca-certificates" in dockerfile and "ENTRYPOINT []" in dockerfile


SERVER = """
    base_image: {image: "vllm/vllm-openai:v0.6.3"}
    docker_server: {start_command: "vllm serve m", server_port: 8000, predict_endpoint: /v1/chat/completions,
                    readiness_endpoint: /health, liveness_endpoint: /health}
"""


def test_truss_default_cpu_and_memory_are_no_limits_on_an_8_gpu_server(in_tmp: Path) -> None:
    app = only_app(write(in_tmp / "v" / "config.yaml", SERVER + """
    resources: {cpu: "1", memory: 2Gi, accelerator: "H100:8", use_gpu: true}
    """))
    assert (app.cpus, app.memory, app.gpus, app.gpu_type) == (None, None, 8, "H100")
    assert (app.needs_cpus, app.needs_memory) == (1.0, 2 * 1024**3)  # what it needs of its host
    [note] = [n for n in app.ignored if "resources.cpu" in n]
    assert "what the app needs" in note and "not limits" in note


def test_berth_toml_cpus_and_memory_remain_limits_over_a_truss(in_tmp: Path) -> None:
    write(in_tmp / "v" / "config.yaml", SERVER + "    resources: {cpu: '1', memory: 2Gi}\n")
    write(in_tmp / "berth.toml", '[apps.llm]\nfrom = "v/config.yaml"\ncpus = 4\nmemory = "8g"\n')
    app = load_stack(None).apps["llm"]
    assert (app.cpus, app.memory) == (4.0, 8 * 1024**3)


@pytest.mark.parametrize(("sku", "gpus", "gpu_type"), [("H100", 8, "H100"), ("H100:8x80", 1, "H100"),
                                                        ("L4:4x16", 1, "L4"), ("H100:8", 8, "H100"),
                                                        ("CPU:4x16", 0, None)])
def test_instance_type_overrides_cpu_memory_and_accelerator(in_tmp: Path, sku: str, gpus: int,
                                                            gpu_type: str | None) -> None:
    expected_gpus = 1 if sku == "H100" else gpus
    app = only_app(write(in_tmp / "i" / "config.yaml", SERVER + f"""
    resources: {{cpu: "1", memory: 2Gi, accelerator: "A10G:2", instance_type: "{sku}"}}
    """))
    assert (app.gpus, app.gpu_type, app.cpus, app.memory) == (expected_gpus, gpu_type, None, None)
    cores, size = instance_type(sku)[2:]
    assert (app.needs_cpus, app.needs_memory) == (cores, size)  # the SKU's, not cpu: "1" and memory: 2Gi
    overridden = [n for n in app.ignored if "instance_type overrides it" in n]
    assert len(overridden) == 3  # cpu, memory, accelerator


@pytest.mark.parametrize(("sku", "parsed"), [
    ("H100", ("H100", 1, None, None)), ("H100:8x80", ("H100", 1, 8.0, 80 * 1024**3)),
    ("L4:4x16", ("L4", 1, 4.0, 16 * 1024**3)), ("A100:2", ("A100", 2, None, None)), ("CPU:4x16", (None, 0, 4.0, 16 * 1024**3)),
    ("4x16", (None, 0, 4.0, 16 * 1024**3)),  # Baseten's bare CPU-only SKU
])
def test_instance_type_parsed(sku: str, parsed: tuple) -> None:
    assert instance_type(sku) == parsed


@pytest.mark.parametrize(("sku", "words"), [("h100", 'did you mean "H100"'), ("H100:x", "invalid instance_type"),
                                             ("Z9:4x16", "unknown accelerator")])
def test_instance_type_refused(sku: str, words: str) -> None:
    message = instance_type(sku)
    assert isinstance(message, str) and words in message


def test_a_model_class_truss_model_cache_is_not_fetched_while_planning(in_tmp: Path) -> None:
    # The truss library would ask the Hub for the repositories' files while rendering: at
    # plan time, and here, where the Hub is not reachable, it fails. berth fetches
    # use_volume entries itself at apply and mounts them where Baseten does.
    file = model_truss(in_tmp / "cached", """
        model_name: cached
        secrets: {hf_access_token: null}
        model_cache:
          - repo_id: NousResearch/Llama-2-7b-chat-hf
            revision: main
            use_volume: true
            volume_folder: llama
          - repo_id: openai/whisper-tiny
            use_volume: false
    """)
    app = only_app(file)
    assert [(w.source, w.mount, w.secret) for w in app.weights] == [
        ("hf://NousResearch/Llama-2-7b-chat-hf@main", "/app/model_cache/llama", "hf_access_token")]
    assert "model_cache: []" in (Path(app.build.context) / "config.yaml").read_text()
    # the use_volume: false entry is baked at build time, not while planning (below)
    assert "openai/whisper-tiny" in (Path(app.build.context) / ".berth-build" / "model_cache.json").read_text()


def test_model_cache_without_use_volume_is_baked_into_the_image_as_baseten_does(in_tmp: Path, monkeypatch) -> None:
    # Truss bakes use_volume: false entries at build time (a cache_warmer stage, COPY --from
    # into /root/.cache/huggingface/hub); berth's own stage does the same, on its local base
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example:8080")
    file = model_truss(in_tmp / "baked", """
        model_name: baked
        secrets: {hf_access_token: null}
        model_cache:
          - repo_id: meta-llama/Llama-2-7b-chat-hf
            allow_patterns: ["*.json", "*.safetensors"]
            ignore_patterns: [original/*]
            use_volume: false
          - repo_id: tiny/public
            revision: abc123
            runtime_secret_name: not_listed
    """)
    app = only_app(file)
    assert app.weights == () and not [n for n in app.ignored if "model_cache" in n]
    assert app.build is not None
    assert (app.build.secrets, app.build.args) == (("hf_access_token",), {"HF_ENDPOINT": "http://hub.example:8080"})
    dockerfile = Path(app.build.dockerfile).read_text()
    stage = dockerfile.index("FROM debian:bookworm-slim AS berth_model_cache")
    server = dockerfile.index("FROM debian:bookworm-slim AS truss_server")
    baking = dockerfile.index("RUN --mount=type=secret,id=hf_access_token python3 /berth/model_cache.py")
    copied = dockerfile.index("COPY --from=berth_model_cache /root/.cache/huggingface/hub /root/.cache/huggingface/hub")
    assert stage < baking < server < copied < dockerfile.index("./server ${APP_HOME}")
    assert "'huggingface_hub==1.17.0'" in dockerfile[stage:server]
    context = Path(app.build.context) / ".berth-build"
    assert json.loads((context / "model_cache.json").read_text()) == [
        {"repo_id": "meta-llama/Llama-2-7b-chat-hf", "revision": "", "allow": ["*.json", "*.safetensors"],
         "ignore": ["original/*"], "secret": "hf_access_token"},
        {"repo_id": "tiny/public", "revision": "abc123", "allow": [], "ignore": [], "secret": None}]
    compile((context / "model_cache.py").read_text(), "model_cache.py", "exec")


def test_a_truss_without_model_cache_has_no_bake_stage(in_tmp: Path) -> None:
    app = only_app(model_truss(in_tmp / "plain", "model_name: plain\n"))
    assert app.build is not None and app.build.secrets == () and app.build.args == {}
    assert "berth_model_cache" not in Path(app.build.dockerfile).read_text()


def test_what_the_truss_library_refuses_is_an_error_at_its_key(in_tmp: Path) -> None:
    # truss 0.18.36's own validator: python_version is one of the versions it supports
    file = model_truss(in_tmp / "old", """
        model_name: old
        python_version: py27
    """)
    [problem] = refused(file)
    assert (problem.key, problem.line) == ("python_version", 2)
    assert problem.summary.startswith("truss 0.18.36 refuses this Truss: value error, please ensure that `python_version`")


def test_a_model_cache_entry_without_use_volume_is_read_as_older_trusses_wrote_it(in_tmp: Path) -> None:
    # binocular, metavoice-1b, playground-v2-trt and stable-diffusion-xl-1.0-trt(-h100) in
    # Baseten's examples: truss 0.18.36's schema wants use_volume on every entry; older
    # trusses had no such key and baked every entry (use_volume: false is that)
    file = model_truss(in_tmp / "old", """
        model_name: old
        model_cache:
          - repo_id: a/b
            use_volume: false
          - repo_id: c/d
    """)
    app = only_app(file)
    assert app.build is not None and "model_cache: []" in (Path(app.build.context) / "config.yaml").read_text()
    baked = json.loads((Path(app.build.context) / ".berth-build" / "model_cache.json").read_text())
    assert [entry["repo_id"] for entry in baked] == ["a/b", "c/d"]  # both baked, as use_volume: false


@pytest.mark.parametrize("written", ["2.0", "2", "'2.0'"])
def test_a_numeric_spec_version_is_read_as_its_string(in_tmp: Path, written: str) -> None:
    # deepfloyd-xl, image-segmentation and stable-diffusion in Baseten's examples write
    # spec_version: 2.0, which truss 0.18.36's schema (a string) refuses
    app = only_app(model_truss(in_tmp / "old", f"model_name: old\nspec_version: {written}\n"))
    assert app.build is not None
    baked = (Path(app.build.context) / "config.yaml").read_text()
    assert f"spec_version: '{written.strip(chr(39))}'" in baked


@pytest.mark.parametrize("workers", [1, 2])
def test_runtime_num_workers_is_ignored_with_a_note_naming_it(in_tmp: Path, workers: int) -> None:
    # the mixtral TRT ones in Baseten's examples: a key truss dropped in 0.9.49 (and refuses
    # for any value but 1)
    app = only_app(model_truss(in_tmp / "old", f"""
        model_name: old
        runtime: {{num_workers: {workers}, predict_concurrency: 4}}
    """))
    assert app.predict_concurrency == 4
    [note] = [n for n in app.ignored if "runtime.num_workers" in n]
    assert "one worker" in note
    assert app.build is not None and "num_workers" not in (Path(app.build.context) / "config.yaml").read_text()


def test_a_config_for_the_truss_above_it_says_so(in_tmp: Path) -> None:
    # comfyui-truss/examples/anime-style-transfer: a config.yaml and a workflow, to copy over
    # comfyui-truss's own (which has the model)
    model_truss(in_tmp / "comfyui-truss", "model_name: comfy\n")
    file = write(in_tmp / "comfyui-truss" / "examples" / "anime" / "config.yaml", "model_name: anime\n")
    [problem] = refused(file)
    assert "not a whole Truss" in problem.summary
    assert "comfyui-truss/ above it has the model" in problem.summary and "deploy comfyui-truss/config.yaml" in problem.summary
