"""What Docker and Linux would refuse is refused when the stack file is read, with the
file, key path and line (issue 17 items 7 and 11): never an internal error, and never a
plan that stops a serving container before the new one is refused at create."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from berth.stackfile.load import load_stack
from planner.desired import AppConfig, container_name
from planner.diagnostics import DiagnosticsError

WEB = '[apps.web]\nimage = "busybox"\nport = 8080\n'
GATEWAY = '[stack]\nname = "s"\ngateway_port = 8000\n' + WEB  # no host_port: nothing else bounds replicas
CEREBRIUM = '[deployment]\nname = "app"\n\n[runtime.python]\nentrypoint = ["python3", "-m", "http.server"]\n'
TRUSS = """\
model_name: m
base_image:
  image: busybox
docker_server:
  start_command: httpd -f
  server_port: 8080
  predict_endpoint: /
  readiness_endpoint: /
  liveness_endpoint: /
"""


def refused(tmp_path: Path, name: str, text: str) -> list[tuple[str | None, int | None, str]]:
    (tmp_path / name).write_text(text)
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(tmp_path / name))
    found = caught.value.diagnostics
    assert all(d.file and d.file.endswith(name) for d in found), found
    return [(d.key, d.line, d.summary) for d in found]


def one(tmp_path: Path, name: str, text: str) -> tuple[str | None, int | None, str]:
    [found] = refused(tmp_path, name, text)
    return found


@pytest.mark.parametrize(("text", "key", "line", "words"), [
    pytest.param(GATEWAY + "replicas = 1000000000000000000000\n", "apps.web.replicas", 7, "at most 1000", id="replicas-huge"),
    pytest.param(WEB + "memory = 1\n", "apps.web.memory", 4, "below Docker's minimum of 6 MiB", id="memory-1"),
    pytest.param(WEB + 'memory = "6m"\n', None, None, None, id="memory-6m-is-docker's-least"),
    pytest.param(WEB + 'memory = "5m"\n', "apps.web.memory", 4, "6 MiB", id="memory-5m"),
    pytest.param(WEB + "cpus = 1000\n", "apps.web.cpus", 4, "to 512", id="cpus-1000"),
    pytest.param(WEB + "cpus = inf\n", "apps.web.cpus", 4, "got inf", id="cpus-inf"),
    pytest.param(WEB + "cpus = 0.001\n", "apps.web.cpus", 4, "from 0.01", id="cpus-below-docker's-least"),
    pytest.param(WEB + "readiness_timeout = inf\n", "apps.web.readiness_timeout", 4, "got inf", id="timeout-inf"),
    pytest.param(WEB + "probe_interval = 1e300\n", "apps.web.probe_interval", 4, "7 days", id="interval-huge"),
    pytest.param(WEB + 'accelerator = "H100:100000000000000000000"\n', "apps.web.accelerator", 4, "at most 256",
                 id="accelerator-count"),
    pytest.param(WEB + "gpus = 100000\n", "apps.web.gpus", 4, "at most 256", id="gpus-huge"),
    pytest.param(WEB + "liveness_failure_threshold = 1000000000000000000000\n", "apps.web.liveness_failure_threshold",
                 4, "at most", id="threshold-huge"),
])
def test_berth_toml_values_docker_would_refuse(tmp_path: Path, text: str, key: str | None, line: int | None,
                                               words: str | None) -> None:
    if key is None:
        assert load_stack(str(_write(tmp_path, "berth.toml", text))).apps["web"].memory == 6 * 2**20
        return
    found_key, found_line, summary = one(tmp_path, "berth.toml", text)
    assert (found_key, found_line) == (key, line) and words in summary, summary


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_arrays_nested_5000_deep_are_refused_with_their_line(tmp_path: Path) -> None:
    for text in (WEB + "env = { A = " + "[" * 5000 + "]" * 5000 + " }\n", "x = " + "[" * 5000 + "]" * 5000 + "\n",
                 WEB + "command = " + "[" * 150 + "]" * 150 + "\n"):
        key, line, summary = one(tmp_path, "berth.toml", text)
        assert line == text.count("\n") and "nested too deeply" in summary


def test_a_303_character_stack_name_is_refused_not_file_name_too_long(tmp_path: Path) -> None:
    long = "a" * 303
    key, line, summary = one(tmp_path, "berth.toml", f'[stack]\nname = "{long}"\n' + WEB)
    assert (key, line) == ("stack.name", 2) and "at most 100 characters" in summary
    (tmp_path / "berth.toml").unlink()
    key, line, summary = one(tmp_path, "cerebrium.toml", CEREBRIUM.replace('"app"', f'"{long}"'))
    assert (key, line) == ("deployment.name", 2) and "100" in summary
    assert not (tmp_path / ".berth").exists()  # refused before a build directory is staged
    (tmp_path / "cerebrium.toml").unlink()
    key, line, summary = one(tmp_path, "config.yaml", TRUSS.replace("model_name: m", f"model_name: {long}"))
    assert (key, line) == ("model_name", 1) and "100" in summary


def test_a_long_directory_name_asks_for_a_stack_name(tmp_path: Path) -> None:
    directory = tmp_path / ("d" * 101)
    directory.mkdir()
    key, _, summary = one(directory, "berth.toml", WEB)
    assert key == "stack.name" and "set [stack] name" in summary


def test_a_300_character_app_name_is_refused(tmp_path: Path) -> None:
    name = "a" * 300
    key, line, summary = one(tmp_path, "berth.toml", f'[apps.{name}]\nimage = "busybox"\nport = 8080\n')
    assert (key, line) == (f"apps.{name}", 1) and "300 characters long; at most 100" in summary


def test_container_names_are_kept_to_200_characters(tmp_path: Path) -> None:
    stack, app = "s" * 100, "a" * 100  # each allowed, together berth-S-A-0 is 208 characters
    key, line, summary = one(tmp_path, "berth.toml", f'[stack]\nname = "{stack}"\n[apps.{app}]\nimage = "x"\nport = 1\n')
    assert (key, line) == (f"apps.{app}", 3) and "200" in summary
    # A stack of one is named as its app, and its containers are not named twice
    # (berth-NAME-0, not berth-NAME-NAME-0), so its longest name fits.
    (tmp_path / "berth.toml").unlink()
    (tmp_path / "cerebrium.toml").write_text(CEREBRIUM.replace('"app"', f'"{"n" * 98}"'))
    loaded = load_stack(str(tmp_path / "cerebrium.toml"))
    assert container_name(loaded.name, "n" * 98, 0) == f"berth-{'n' * 98}-0"


def test_a_built_app_needs_a_name_docker_takes_as_an_image_repository(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text("FROM busybox\n")
    text = '[stack]\nname = "s"\n[apps.web_]\nbuild = "./web"\nport = 1\n'
    key, line, summary = one(tmp_path, "berth.toml", text)
    assert (key, line) == ("apps.web_", 3) and "berth-s-web_" in summary
    # An app run from an image is never tagged by berth: the same name is fine there.
    _write(tmp_path, "berth.toml", text.replace('build = "./web"', 'image = "busybox"'))
    assert list(load_stack(str(tmp_path / "berth.toml")).apps) == ["web_"]
    key, line, summary = one(tmp_path, "berth.toml", '[stack]\nname = "s_"\n[apps.web]\nbuild = "./web"\nport = 1\n')
    assert (key, line) == ("stack.name", 2) and "berth-s_-app" in summary


def test_an_environment_linux_would_refuse_to_exec(tmp_path: Path) -> None:
    big = "x" * (200 * 1024)
    key, line, summary = one(tmp_path, "berth.toml", WEB + f'env = {{ A = "ok", BIG = "{big}" }}\n')
    assert (key, line) == ("apps.web.env.BIG", 4) and "128 KiB" in summary
    just = "z" * (128 * 1024 - len("A=") - 1)  # KEY=VALUE and its NUL: exactly what Linux takes
    assert load_stack(str(_write(tmp_path, "berth.toml", WEB + f'env = {{ A = "{just}" }}\n'))).apps["web"].env["A"]
    key, _, _ = one(tmp_path, "berth.toml", WEB + f'env = {{ A = "{just}z" }}\n')
    assert key == "apps.web.env.A"


@pytest.mark.parametrize(("table", "key", "words"), [
    pytest.param("[hardware]\nmemory = inf\n", "hardware.memory", "got inf", id="memory-inf"),
    pytest.param("[hardware]\ncpu = inf\n", "hardware.cpu", "got inf", id="cpu-inf"),
    pytest.param("[hardware]\ncpu = 1000\n", "hardware.cpu", "to 512", id="cpu-1000"),
    pytest.param("[hardware]\nmemory = 0.000001\n", "hardware.memory", "6 MiB", id="memory-1-kB"),
    pytest.param("[scaling]\nmin_replicas = 1000000000000000000000\n", "scaling.min_replicas", "at most 1000",
                 id="replicas-huge"),
    pytest.param("[scaling]\nreplica_concurrency = 1000000000000000000000\n", "scaling.replica_concurrency", "at most",
                 id="concurrency-huge"),
])
def test_cerebrium_values_docker_would_refuse(tmp_path: Path, table: str, key: str, words: str) -> None:
    text = CEREBRIUM + table
    found_key, line, summary = one(tmp_path, "cerebrium.toml", text)
    assert (found_key, line) == (key, text.count("\n")) and words in summary, summary


def test_cerebrium_deployment_timeout_past_a_float_is_refused(tmp_path: Path) -> None:
    text = CEREBRIUM.replace('name = "app"\n', 'name = "app"\ndeployment_initialization_timeout = ' + "9" * 400 + "\n")
    key, line, _ = one(tmp_path, "cerebrium.toml", text)
    assert (key, line) == ("deployment.deployment_initialization_timeout", 3)


@pytest.mark.parametrize(("tail", "key", "line", "words"), [
    pytest.param("environment_variables:\n  A:\n    b: 1\n", "environment_variables.A", 11, "got a table", id="env-mapping"),
    pytest.param("environment_variables:\n  A: [1, 2]\n", "environment_variables.A", 11, "got a list", id="env-list"),
    pytest.param("resources:\n  cpu: .inf\n", "resources.cpu", 11, "got inf", id="cpu-inf"),
    pytest.param("resources:\n  cpu: '1e400'\n", "resources.cpu", 11, "got inf", id="cpu-past-a-float"),
    pytest.param("resources:\n  memory: 1\n", "resources.memory", 11, "6 MiB", id="memory-1"),
    pytest.param("resources:\n  memory: 1e400\n", "resources.memory", 11, "invalid memory", id="memory-past-a-float"),
    pytest.param("resources:\n  accelerator: H100:100000\n", "resources.accelerator", 11, "GPUs", id="gpus-huge"),
    pytest.param("runtime:\n  health_checks:\n    startup_threshold_seconds: " + "9" * 400 + "\n",
                 "runtime.health_checks.startup_threshold_seconds", 12, "7 days", id="seconds-huge"),
    pytest.param("environment_variables:\n  BIG: " + "x" * (200 * 1024) + "\n", "environment_variables.BIG", 11,
                 "128 KiB", id="env-200-KiB"),
])
def test_truss_values_docker_would_refuse(tmp_path: Path, tail: str, key: str, line: int, words: str) -> None:
    found_key, found_line, summary = one(tmp_path, "config.yaml", TRUSS + tail)
    assert (found_key, found_line) == (key, line) and words in summary, summary


def test_truss_scalar_environment_values_are_still_taken_as_truss_takes_them(tmp_path: Path) -> None:
    text = TRUSS + "environment_variables:\n  A: 1\n  B: true\n  C: text\n"
    assert load_stack(str(_write(tmp_path, "config.yaml", text))).apps["m"].env == {"A": "1", "B": "true", "C": "text"}


def test_a_null_truss_environment_value_sets_nothing_and_says_so(tmp_path: Path) -> None:
    # as 22 of Baseten's public examples write it: `hf_access_token: null`
    app = load_stack(str(_write(tmp_path, "config.yaml", TRUSS + "environment_variables:\n  A:\n  B: b\n"))).apps["m"]
    assert app.env == {"B": "b"}
    assert any("environment_variables.A" in line and "not set" in line for line in app.ignored), app.ignored


def test_a_20_MB_value_is_refused_fast_as_a_file_too_big(tmp_path: Path) -> None:
    big = "x" * (20 * 2**20)
    started = time.monotonic()
    _, _, summary = one(tmp_path, "berth.toml", WEB + f'env = {{ BIG = "{big}" }}\n')
    assert "larger than 1 MiB" in summary and time.monotonic() - started < 1


def test_an_environment_and_command_past_linux_s_2_MiB_is_refused() -> None:
    values = {f"V{i}": "y" * 120_000 for i in range(20)}  # each fits; 2.4 MB together do not
    with pytest.raises(ValidationError, match="2 MiB"):
        AppConfig(name="web", port=1, host_port=1, env=values)
    AppConfig(name="web", port=1, host_port=1, env=dict(list(values.items())[:15]))  # 1.8 MB: fits


def test_a_recorded_configuration_berth_now_refuses_is_a_clean_error_for_rollback() -> None:
    from planner.recorded import stack_from_record

    record = {"stack": {"name": "s", "file": "/s/berth.toml",
                        "apps": {"web": {"name": "web", "port": 1, "host_port": 1, "memory": 1}}}}
    with pytest.raises(DiagnosticsError, match="apps.web.memory: a memory limit of 1 bytes is below Docker's minimum"):
        stack_from_record(record)
