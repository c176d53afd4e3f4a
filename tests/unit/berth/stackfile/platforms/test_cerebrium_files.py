"""Cerebrium's default (cortex) runtime planned from small apps, and what the public
Cerebrium examples write that berth used to refuse: each case a cerebrium.toml (and
main.py) as data, and what berth makes of it."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from berth.stackfile.load import load_stack
from berth.stackfile.platforms import cortex_server
from planner.desired import AppConfig, BuildSource, Stack, VolumeMount
from planner.diagnostics import Diagnostic, DiagnosticsError
from planner.sources import describe
from providers.types import Observation, ObservedImage

MAIN = '''
import os

MODEL = "loaded at import"


def predict(prompt: str, run_id: str = ""):
    return {"echo": prompt}


async def embed(texts: list):
    return [len(t) for t in texts]


def _private():
    return None


class Model:
    def method(self):  # not top level: not served
        return None
'''


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
        assert "Traceback" not in str(diagnostic) and "Input should" not in str(diagnostic), str(diagnostic)
    return caught.value.diagnostics


def named(found: list[Diagnostic], key: str | None, words: str) -> Diagnostic:
    hits = [d for d in found if d.key == key and words in d.summary]
    assert hits, [str(d) for d in found]
    return hits[0]


# -- the default (cortex) runtime --------------------------------------------------------


def test_main_py_functions_are_found_without_importing_it() -> None:
    # an import that would fail, and a top level that would exit: never run at plan time
    text = "import not_installed_anywhere\nraise SystemExit(3)\n" + MAIN
    assert cortex_server.functions(text) == ["predict", "embed"]
    with pytest.raises(SyntaxError):
        cortex_server.functions("def broken(:\n")


LEGACY_CORTEX = """
[cerebrium.deployment]
name = "first-cortex"
python_version = "3.11"
include = ["./*", "main.py", "cerebrium.toml"]
exclude = [".*"]

[cerebrium.hardware]
cpu = 2
memory = 8.0
compute = "AMPERE_A10"
gpu_count = 1

[cerebrium.scaling]
min_replicas = 1
replica_concurrency = 4

[cerebrium.dependencies.pip]
pydantic = "latest"
"""


def test_a_default_runtime_file_plans_berths_server_for_main_py(in_tmp: Path) -> None:
    write(in_tmp / "app" / "main.py", MAIN)
    write(in_tmp / "app" / "cerebrium.toml", LEGACY_CORTEX)
    app = only_app(load_stack("app"))
    build_dir = in_tmp / "app" / ".berth" / "build" / "first-cortex"
    assert app.lines == {"gpu_type": 10, "gpus": 11}  # hardware.compute, hardware.gpu_count
    assert app.model_copy(update={"lines": {}}) == AppConfig(
        name="first-cortex",
        build=BuildSource(context=str(build_dir / "context"), dockerfile=str(build_dir / "Dockerfile"),
                          base="debian:bookworm-slim"),
        command=("python3", "/opt/berth/cortex_server.py", "--port", "8000", "predict", "embed"),
        port=8000, host_port=8000, readiness="/ready", liveness="/health", predict="/predict",
        cpus=2.0, memory=8 * 1024**3, gpus=1, gpu_type="A10", predict_concurrency=4,
        volumes=(VolumeMount(source="persistent-storage", target="/persistent-storage"),),
        origin="cerebrium.toml (Cerebrium)",
    )
    dockerfile = (build_dir / "Dockerfile").read_text()
    # FastAPI and uvicorn before the app's own packages (its pins win), then the server
    server = dockerfile.index("/tmp/berth-cortex-requirements.txt")
    assert server < dockerfile.index("/tmp/berth-requirements.txt") < dockerfile.index(
        "COPY .berth-build/cortex_server.py /opt/berth/cortex_server.py") < dockerfile.index("COPY . /app")
    context = build_dir / "context"
    assert (context / ".berth-build" / "cortex_server.py").read_text() == cortex_server.PROGRAM
    assert (context / ".berth-build" / "cortex-requirements.txt").read_text() == "fastapi>=0.100\nuvicorn>=0.23\n"
    assert (context / "main.py").is_file()
    compile(cortex_server.PROGRAM, "cortex_server.py", "exec")  # the program berth ships is Python


def test_runtime_cortex_table_takes_the_build_keys_and_predict_falls_back_to_the_first_function(in_tmp: Path) -> None:
    write(in_tmp / "main.py", "def run(x):\n    return x\n\ndef other():\n    return 1\n")
    write(in_tmp / "cerebrium.toml", """
        [deployment]
        name = "newer"

        [runtime.cortex]
        python_version = "3.11"
        docker_base_image_url = "debian:bookworm-slim"
        use_uv = true

        [runtime.cortex.deps.pip]
        numpy = "1.26.4"
    """)
    app = only_app(load_stack("."))
    assert app.command == ("python3", "/opt/berth/cortex_server.py", "--port", "8000", "run", "other")
    assert app.predict == "/run"
    dockerfile = Path(app.build.dockerfile).read_text()
    assert "uv pip install" in dockerfile
    assert (Path(app.build.context) / ".berth-build" / "requirements.txt").read_text() == "numpy==1.26.4\n"


@pytest.mark.parametrize(("files", "key", "line", "file", "words"), [
    ({}, "deployment", 1, "cerebrium.toml", "no main.py beside the file"),
    ({"main.py": "X = 1\n\ndef _hidden():\n    pass\n"}, None, None, "main.py", "no top-level function to serve"),
    ({"main.py": "def ok():\n    pass\n\ndef broken(:\n"}, None, 4, "main.py", "main.py is not valid Python"),
])
def test_a_default_runtime_app_without_functions_to_serve(in_tmp: Path, files: dict[str, str], key: str | None,
                                                         line: int | None, file: str, words: str) -> None:
    for name, text in files.items():
        write(in_tmp / name, text)
    write(in_tmp / "cerebrium.toml", '[deployment]\nname = "a"\n')
    found = named(errors("."), key, words)
    assert (found.line, found.file) == (line, file)
    assert "[runtime.python]" in found.summary or "valid Python" in found.summary  # the newer form's table


def test_main_py_left_out_by_include_is_an_error(in_tmp: Path) -> None:
    write(in_tmp / "main.py", MAIN)
    write(in_tmp / "cerebrium.toml", '[deployment]\nname = "a"\ninclude = ["src/*"]\n')
    named(errors("."), "deployment.include", "main.py is left out of the image")


# -- what the public examples write ----------------------------------------------------


def test_gpu_count_0_with_cpu_compute_is_ignored_with_a_warning(in_tmp: Path) -> None:
    write(in_tmp / "main.py", MAIN)
    write(in_tmp / "cerebrium.toml", LEGACY_CORTEX.replace('"AMPERE_A10"', '"CPU"').replace("gpu_count = 1", "gpu_count = 0"))
    app = only_app(load_stack("."))
    assert (app.gpus, app.gpu_type) == (0, None)
    assert any("cerebrium.toml:11: cerebrium.hardware.gpu_count: compute is CPU" in line for line in app.ignored), app.ignored


def test_gpu_count_0_with_a_gpu_compute_says_what_to_change(in_tmp: Path) -> None:
    write(in_tmp / "main.py", MAIN)
    write(in_tmp / "cerebrium.toml", LEGACY_CORTEX.replace("gpu_count = 1", "gpu_count = 0"))
    found = named(errors("."), "cerebrium.hardware.gpu_count", 'set compute = "CPU"')
    assert found.line == 11


def test_an_entrypoint_string_is_split_as_a_shell_would(in_tmp: Path) -> None:
    write(in_tmp / "cerebrium.toml", """
        [deployment]
        name = "a"

        [runtime.custom]
        entrypoint = "uvicorn main:app --host 0.0.0.0 --log-config 'log config.json'"
    """)
    assert only_app(load_stack(".")).command == (
        "uvicorn", "main:app", "--host", "0.0.0.0", "--log-config", "log config.json")


def test_tables_the_cli_ignores_are_ignored_with_a_warning(in_tmp: Path) -> None:
    write(in_tmp / "cerebrium.toml", """
        [cerebrium.deployment]
        name = "a"

        [cerebrium.build]
        use_uv = true

        [cerebrium.pip.dependancies]
        pydub = "latest"

        [cerebrium.hardwre]
        cpu = 2

        [cerebrium.runtime.custom]
        entrypoint = ["python3", "-m", "http.server"]
    """)
    app = only_app(load_stack("."))
    assert app.command == ("python3", "-m", "http.server") and app.cpus is None
    ignored = "\n".join(app.ignored)
    assert "cerebrium.toml:4: cerebrium.build: not a table the Cerebrium CLI reads" in ignored, ignored
    assert "use_uv goes in [cerebrium.deployment]" in ignored
    assert "cerebrium.toml:7: cerebrium.pip: not a table" in ignored and "[cerebrium.dependencies.pip]" in ignored
    assert 'cerebrium.hardwre: not a table the Cerebrium CLI reads, so it has no effect there or here; ' \
           'did you mean "hardware"?' in ignored
    assert "use_uv" not in (Path(app.build.dockerfile).read_text())


def test_the_legacy_hardware_gpu_key_points_at_compute(in_tmp: Path) -> None:
    write(in_tmp / "cerebrium.toml", """
        [cerebrium.deployment]
        name = "a"

        [cerebrium.hardware]
        gpu = "AMPERE_A100"

        [cerebrium.runtime.custom]
        entrypoint = ["python3", "-m", "http.server"]
    """)
    found = errors(".")
    hit = named(found, "cerebrium.hardware.gpu", 'write compute = "AMPERE_A100"')
    assert hit.line == 5 and not any("did you mean" in d.summary for d in found), [str(d) for d in found]


def test_without_refresh_no_base_image_is_said_to_be_missing_from_the_host(in_tmp: Path) -> None:
    write(in_tmp / "main.py", MAIN)
    write(in_tmp / "cerebrium.toml", '[deployment]\nname = "a"\ndocker_base_image_url = "my/base:latest"\n')
    stack = load_stack(".")
    nothing = {"local": Observation(host="local")}
    _, looked = describe(stack, nothing)
    _, unseen = describe(stack, nothing, looked=False)
    assert any("it is not on host local and will be pulled" in w for w in looked), looked
    assert not any("is not on host" in w for w in unseen), unseen
    assert any("my/base:latest is a mutable tag: berth did not look whether host local has it (--refresh=false)" in w
               for w in unseen), unseen
    write(in_tmp / "cerebrium.toml", '[deployment]\nname = "a"\ndocker_base_image_url = "my/base:1.0"\n')
    pinned = load_stack(".")
    assert describe(pinned, nothing, looked=False)[1] == []
    assert any("base image my/base:1.0 is not on host local" in w for w in describe(pinned, nothing)[1])


# -- python_version other than the base's ----------------------------------------------


@pytest.mark.parametrize(("base", "python"), [
    ("python:3.12-slim", ("3.12", None)), ("debian:bookworm-slim", ("3.11", "bookworm")), ("debian:12", ("3.11", "bookworm")),
    ("nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04", ("3.10", "jammy")), ("ubuntu:24.04", ("3.12", "noble")),
    ("localhost:5000/python:3.10", ("3.10", None)), ("michaelf34/infinity:0.0.77", (None, None)),
])
def test_what_a_base_images_name_tells_of_its_python(base: str, python: tuple[str | None, str | None]) -> None:
    from berth.stackfile.platforms.cerebrium import base_python

    assert base_python(base) == python


def cortex_app(in_tmp: Path, build_keys: str) -> Path:
    write(in_tmp / "main.py", MAIN)
    return write(in_tmp / "cerebrium.toml", '[cerebrium.deployment]\nname = "a"\n' + build_keys)


def test_a_python_version_the_base_lacks_is_installed_in_the_image(in_tmp: Path) -> None:
    cortex_app(in_tmp, 'python_version = "3.12"\n')  # on the default debian:bookworm-slim (3.11)
    dockerfile = Path(only_app(load_stack(".")).build.dockerfile).read_text()
    install = dockerfile.index('if [ "$have" != "3.12" ]')
    # Debian's package where the release has one, else uv's managed Python, in an environment
    # that is python3 from then on; the check that follows sees 3.12
    assert "apt-cache show python3.12-venv" in dockerfile and "uv python install 3.12" in dockerfile
    assert install < dockerfile.index("ENV PATH=/opt/berth/python/bin:$PATH") < dockerfile.index(
        "python_version 3.12 was asked for; the image has Python") < dockerfile.index("cortex-requirements")
    assert 'set python_version = \\"$have\\" or docker_base_image_url to an image with Python 3.12' in dockerfile


@pytest.mark.parametrize(("keys", "words"), [
    ('python_version = "2.7"\n', 'python_version 2.7 is asked for, but the base image debian:bookworm-slim has '
                                 'Python 3.11, bookworm packages no python2.7, and uv provides 3.8 to 3.14: '
                                 'set python_version = "3.11", or docker_base_image_url to an image with Python 2.7'),
    ('python_version = "3.7"\ndocker_base_image_url = "python:3.11-slim"\n', "the base image python:3.11-slim has Python 3.11, and uv"),
    ('python_version = "three"\n', 'expected a Python version like "3.11", got "three"'),
])
def test_a_python_version_that_cannot_be_had_fails_at_plan_time(in_tmp: Path, keys: str, words: str) -> None:
    cortex_app(in_tmp, keys)
    found = named(errors("."), "cerebrium.deployment.python_version", words)
    assert found.line == 3


def test_a_patch_version_is_read_as_its_minor(in_tmp: Path) -> None:
    cortex_app(in_tmp, 'python_version = "3.11.4"\n')
    dockerfile = Path(only_app(load_stack(".")).build.dockerfile).read_text()
    assert 'if [ "$have" != "3.11" ]' in dockerfile and "python_version 3.11 was asked for" in dockerfile


def test_aws_neuron_compute_is_refused_by_name(in_tmp: Path) -> None:
    cortex_app(in_tmp, '[cerebrium.hardware]\ncompute = "INF2"\n')
    found = named(errors("."), "cerebrium.hardware.compute", "INF2 is an AWS Inferentia accelerator (Neuron devices)")
    assert found.line == 4 and "NVIDIA GPUs" in found.summary


def test_an_app_on_an_ssh_host_has_its_base_image_looked_for_where_it_is_built(in_tmp: Path) -> None:
    write(in_tmp / "main.py", MAIN)
    write(in_tmp / "cerebrium.toml", '[deployment]\nname = "a"\ndocker_base_image_url = "my/base:1.0"\n')
    write(in_tmp / "berth.toml", '[stack]\nname = "s"\n[hosts.gpu]\nssh = "u@10.0.0.9"\n'
                                 '[apps.a]\nfrom = "cerebrium.toml"\nhost = "gpu"\n')
    stack = load_stack(str(in_tmp / "berth.toml"))
    base = Observation(host="local", images=(ObservedImage(id="sha256:" + "b" * 64, tags=("my/base:1.0",), digests=(), labels={}),))
    # built on berth's own engine (the default), so the local engine's copy is the one used
    _, warnings = describe(stack, {"local": base, "gpu": Observation(host="gpu")})
    assert not any("is not on host" in w for w in warnings), warnings
    _, missing = describe(stack, {"local": Observation(host="local"), "gpu": base})
    assert any("base image my/base:1.0 is not on host local" in w for w in missing), missing


@pytest.mark.parametrize(("runtime", "expected"), [
    # Cerebrium's default runtime: berth's cortex server
    ("", ("python3", "/opt/berth/cortex_server.py", "--port", "9100", "predict", "embed")),
    # the python runtime's default entrypoint, and one written with --port=
    ('[cerebrium.runtime.python]\n', ("uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "9100")),
    ('[cerebrium.runtime.custom]\nport = 5000\nentrypoint = ["uvicorn", "main:app", "--port=5000"]\n',
     ("uvicorn", "main:app", "--port=9100")),
])
def test_a_port_override_in_berth_toml_reaches_the_servers_command_line(in_tmp: Path, runtime: str,
                                                                        expected: tuple[str, ...]) -> None:
    write(in_tmp / "app" / "main.py", MAIN)
    write(in_tmp / "app" / "cerebrium.toml", '[cerebrium.deployment]\nname = "a"\n' + runtime)
    write(in_tmp / "berth.toml", '[apps.web]\nfrom = "app/cerebrium.toml"\nport = 9100\n')
    app = load_stack(None).apps["web"]
    assert (app.command, app.port, app.host_port) == (expected, 9100, 9100)
    assert not [note for note in app.ignored if "apps.web.port" in note]


def test_a_port_override_on_a_command_that_does_not_name_the_port_is_a_note(in_tmp: Path) -> None:
    write(in_tmp / "app" / "cerebrium.toml",
          '[cerebrium.deployment]\nname = "a"\n[cerebrium.runtime.custom]\nport = 5000\nentrypoint = ["python3", "serve.py"]\n')
    write(in_tmp / "berth.toml", '[apps.web]\nfrom = "app/cerebrium.toml"\nport = 9100\n')
    app = load_stack(None).apps["web"]
    assert (app.command, app.port) == (("python3", "serve.py"), 9100)
    [note] = [note for note in app.ignored if "apps.web.port" in note]
    assert "does not name port 5000" in note and "listen on 9100" in note


def test_a_port_override_with_its_own_command_keeps_that_command(in_tmp: Path) -> None:
    write(in_tmp / "app" / "main.py", MAIN)
    write(in_tmp / "app" / "cerebrium.toml", '[cerebrium.deployment]\nname = "a"\n[cerebrium.runtime.python]\n')
    write(in_tmp / "berth.toml", '[apps.web]\nfrom = "app/cerebrium.toml"\nport = 9100\n'
          'command = ["uvicorn", "app.main:app", "--port", "8000"]\n')
    assert load_stack(None).apps["web"].command == ("uvicorn", "app.main:app", "--port", "8000")
