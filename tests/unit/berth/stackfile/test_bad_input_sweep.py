"""The bad-input sweep (issue 17 item 11): broken berth.toml, cerebrium.toml and Truss
config.yaml files, each refused with a clean message naming the file (and the key path
and line where there is one): no traceback, no "internal error", no hang (under 1 s each).

Each case is (file name, text, the key path one diagnostic names; "" for none), where a
key path is given, that diagnostic names a line too; a case with no key names a line
whenever the problem sits on one (syntax errors)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from berth.stackfile.load import load_stack
from planner.diagnostics import DiagnosticsError

WEB = '[apps.web]\nimage = "busybox"\nport = 8080\n'
SECRET = '\n[secrets.tok]\nenv = "TOK"\n'
CEREBRIUM = '[deployment]\nname = "app"\n\n[runtime.python]\nentrypoint = ["python3", "-m", "http.server"]\n'
CER_HEAD = '[deployment]\nname = "app"\n'
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
TRUSS_NO_SERVER = "model_name: m\nbase_image:\n  image: busybox\n"
DEEP_TOML = WEB + "env = { A = " + "[" * 5000 + "]" * 5000 + " }\n"
DEEP_YAML = TRUSS + "description: " + "[" * 5000 + "]" * 5000 + "\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)) + TRUSS
LONG = "a" * 303

BERTH_TOML = [
    ("port-string", WEB.replace("8080", '"8080"'), "apps.web.port"),
    ("port-zero", WEB.replace("8080", "0"), "apps.web.port"),
    ("port-past-65535", WEB.replace("8080", "70000"), "apps.web.port"),
    ("port-negative", WEB.replace("8080", "-1"), "apps.web.port"),
    ("host-port-float", WEB + "host_port = 1e3\n", "apps.web.host_port"),
    ("replicas-negative", WEB + "replicas = -5\n", "apps.web.replicas"),
    ("replicas-huge", WEB + "replicas = 1000000000000000000000\n", "apps.web.replicas"),
    ("replicas-float", WEB + "replicas = 1.5\n", "apps.web.replicas"),
    ("cpus-nan", WEB + "cpus = nan\n", "apps.web.cpus"),
    ("cpus-minus-inf", WEB + "cpus = -inf\n", "apps.web.cpus"),
    ("cpus-inf", WEB + "cpus = inf\n", "apps.web.cpus"),
    ("cpus-1000", WEB + "cpus = 1000\n", "apps.web.cpus"),
    ("cpus-string", WEB + 'cpus = "2"\n', "apps.web.cpus"),
    ("memory-words", WEB + 'memory = "lots"\n', "apps.web.memory"),
    ("memory-1-byte", WEB + "memory = 1\n", "apps.web.memory"),
    ("memory-past-any-host", WEB + 'memory = "99999999999t"\n', "apps.web.memory"),
    ("timeout-nan", WEB + "readiness_timeout = nan\n", "apps.web.readiness_timeout"),
    ("readiness-no-slash", WEB + 'readiness = "health"\n', "apps.web.readiness"),
    ("env-string", WEB + 'env = "A=B"\n', "apps.web.env"),
    ("env-nested-table", WEB + "env = { A = { B = 1 } }\n", "apps.web.env.A"),
    ("env-list", WEB + "env = { A = [1] }\n", "apps.web.env.A"),
    ("env-200-KiB", WEB + 'env = { A = "' + "x" * 200 * 1024 + '" }\n', "apps.web.env.A"),
    ("unknown-app-key", WEB + "portt = 1\n", "apps.web.portt"),
    ("unknown-top-key", WEB + '[app.db]\nimage = "x"\n', "app"),
    ("app-name-upper", WEB.replace("web", "Web"), "apps.Web"),
    ("app-name-300", WEB.replace("web", "a" * 300), "apps." + "a" * 300),
    ("depends-on-unknown", WEB + 'depends_on = ["nope"]\n', "apps.web.depends_on"),
    ("depends-on-cycle", WEB + 'depends_on = ["db"]\n[apps.db]\nimage = "x"\nport = 1\ndepends_on = ["web"]\n',
     "apps.web.depends_on"),
    ("secret-undefined", WEB + 'secrets = ["missing"]\n', "apps.web.secrets"),
    ("secret-env-bad-name", WEB + 'secret_env = { "1BAD" = "tok" }\n' + SECRET, 'apps.web.secret_env.1BAD'),
    ("secret-no-source", WEB + "\n[secrets.tok]\n", "secrets.tok"),
    ("secret-name-300", '[stack]\nsecrets_file = "s.env"\n' + WEB + f'secrets = ["{"s" * 300}"]\n', "apps.web.secrets"),
    ("secret-two-sources", WEB + SECRET + 'file = "x"\n', "secrets.tok.file"),
    ("ssh-address", WEB + '[hosts.gpu]\nssh = "not an address"\n', "hosts.gpu.ssh"),
    ("host-undefined", WEB + 'host = "nowhere"\n', "apps.web.host"),
    ("gateway-port", '[stack]\ngateway_port = 99999\n' + WEB, "stack.gateway_port"),
    ("stack-name-spaces", '[stack]\nname = "Bad Name"\n' + WEB, "stack.name"),
    ("stack-name-303", f'[stack]\nname = "{LONG}"\n' + WEB, "stack.name"),
    ("syntax-no-value", WEB + "cpus =\n", ""),
    ("syntax-duplicate-key", WEB + "port = 1\n", ""),
    ("syntax-unclosed-table", "[apps.web\n", ""),
    ("nested-5000-deep", DEEP_TOML, ""),
    ("build-missing", '[apps.web]\nbuild = "./missing"\nport = 1\n', "apps.web.build"),
    ("build-and-image", WEB + 'build = "."\n', "apps.web.image"),
    ("accelerator-zero", WEB + 'accelerator = "H100:0"\n', "apps.web.accelerator"),
    ("gpus-zero", WEB + "gpus = 0\n", "apps.web.gpus"),
    ("host-port-shared", WEB + '[apps.db]\nimage = "x"\nport = 8080\n', "apps.db.port"),
    ("restart-word", WEB + 'restart = "sometimes"\n', "apps.web.restart"),
    ("command-empty", WEB + "command = []\n", "apps.web.command"),
    ("deploy-word", WEB + 'deploy = "blue-green"\n', "apps.web.deploy"),
    ("apps-not-a-table", "apps = 5\n", "apps"),
    ("no-image-source", "[apps.web]\nport = 1\n", "apps.web"),
]

CEREBRIUM_TOML = [
    ("memory-inf", CEREBRIUM + "[hardware]\nmemory = inf\n", "hardware.memory"),
    ("cpu-inf", CEREBRIUM + "[hardware]\ncpu = inf\n", "hardware.cpu"),
    ("cpu-words", CEREBRIUM + '[hardware]\ncpu = "two"\n', "hardware.cpu"),
    ("cpu-negative", CEREBRIUM + "[hardware]\ncpu = -1\n", "hardware.cpu"),
    ("memory-tiny", CEREBRIUM + "[hardware]\nmemory = 0.001\n", "hardware.memory"),
    ("gpu-count-zero", CEREBRIUM + '[hardware]\ncompute = "ADA_L4"\ngpu_count = 0\n', "hardware.gpu_count"),
    ("compute-unknown", CEREBRIUM + '[hardware]\ncompute = "QUANTUM_Q1"\n', "hardware.compute"),
    ("replicas-negative", CEREBRIUM + "[scaling]\nmin_replicas = -1\n", "scaling.min_replicas"),
    ("replicas-huge", CEREBRIUM + "[scaling]\nmin_replicas = 1000000000000000000000\n", "scaling.min_replicas"),
    ("max-below-min", CEREBRIUM + "[scaling]\nmin_replicas = 3\nmax_replicas = 1\n", "scaling.max_replicas"),
    ("port-zero", CEREBRIUM + "port = 0\n", "runtime.python.port"),
    # the default runtime serves main.py's functions: none here
    ("cortex-without-main-py", CER_HEAD + "[runtime.cortex]\n", "deployment"),
    ("unknown-runtime", CER_HEAD + "[runtime.nope]\n", "runtime.nope"),
    ("two-runtimes", CEREBRIUM + '[runtime.docker]\ndockerfile_path = "Dockerfile"\n', "runtime.docker"),
    ("no-deployment", '[runtime.python]\nentrypoint = ["x"]\n', ""),  # no line to name: the table is missing
    ("empty-name", CEREBRIUM.replace('"app"', '""'), "deployment.name"),
    ("name-303", CEREBRIUM.replace('"app"', f'"{LONG}"'), "deployment.name"),
    ("mixed-forms", CEREBRIUM + '[cerebrium.hardware]\ncpu = 1\n', "deployment"),
    ("unknown-key", CEREBRIUM.replace("name =", 'nmae = "x"\nname ='), "deployment.nmae"),
    # one string is a command line, split as a shell would: an unclosed quote is no command
    ("entrypoint-unclosed-quote", CER_HEAD + '[runtime.python]\nentrypoint = "python \'main.py"\n',
     "runtime.python.entrypoint"),
    ("pip-version-list", CEREBRIUM + '[dependencies.pip]\ntorch = ["2.1"]\n', "dependencies.pip.torch"),
    ("conda", CEREBRIUM + '[dependencies.conda]\nnumpy = "1"\n', "dependencies.conda"),
    ("syntax", CEREBRIUM + "[hardware\n", ""),
    ("endpoint-no-slash", CEREBRIUM + 'healthcheck_endpoint = "health"\n', "runtime.python.healthcheck_endpoint"),
    ("dockerfile-missing", CER_HEAD + '[runtime.docker]\ndockerfile_path = "nope/Dockerfile"\n',
     "runtime.docker.dockerfile_path"),
    ("timeout-past-a-float", CEREBRIUM.replace('name = "app"\n', 'name = "app"\ndeployment_initialization_timeout = '
                                               + "9" * 400 + "\n"), "deployment.deployment_initialization_timeout"),
    ("nested-5000-deep", CEREBRIUM + "[hardware]\nregion = " + "[" * 5000 + "]" * 5000 + "\n", ""),
]

TRUSS_YAML = [
    ("port-words", TRUSS.replace("server_port: 8080", "server_port: eighty"), "docker_server.server_port"),
    ("port-past-65535", TRUSS.replace("server_port: 8080", "server_port: 70000"), "docker_server.server_port"),
    ("no-docker-server", TRUSS_NO_SERVER, ""),
    # without base_image a docker_server Truss builds on berth's local server base; no_build has nothing to run
    ("no-build-no-base-image", TRUSS.replace("base_image:\n  image: busybox\n", "").replace(
        "start_command: httpd -f", "no_build: true"), "docker_server.no_build"),
    ("trt-llm", "model_name: m\ntrt_llm:\n  build:\n    base_model: decoder\n", "trt_llm"),
    ("instance-type-unknown", TRUSS + "resources:\n  instance_type: Z100:4x16\n", "resources.instance_type"),
    ("env-nested-mapping", TRUSS + "environment_variables:\n  A:\n    b: 1\n", "environment_variables.A"),
    ("env-list-value", TRUSS + "environment_variables:\n  A: [1, 2]\n", "environment_variables.A"),
    ("env-not-a-mapping", TRUSS + "environment_variables: [a, b]\n", "environment_variables"),
    ("cpu-inf", TRUSS + "resources:\n  cpu: .inf\n", "resources.cpu"),
    ("cpu-words", TRUSS + "resources:\n  cpu: lots\n", "resources.cpu"),
    ("memory-1", TRUSS + "resources:\n  memory: 1\n", "resources.memory"),
    ("memory-words", TRUSS + "resources:\n  memory: 2 gigs\n", "resources.memory"),
    ("memory-past-a-float", TRUSS + "resources:\n  memory: 1e400\n", "resources.memory"),
    ("accelerator-unknown", TRUSS + "resources:\n  accelerator: H1000\n", "resources.accelerator"),
    ("accelerator-zero", TRUSS + "resources:\n  accelerator: H100:0\n", "resources.accelerator"),
    ("alias-bomb", BOMB, ""),
    ("duplicate-key", TRUSS + "model_name: again\n", ""),
    ("syntax-unclosed", TRUSS + "secrets: [a, b\n", ""),
    ("nested-5000-deep", DEEP_YAML, ""),
    ("unknown-key", TRUSS + "modle_name: x\n", "modle_name"),
    ("secrets-list", TRUSS + "secrets: [a, b]\n", "secrets"),
    ("secret-name-300", TRUSS + f"secrets:\n  {'s' * 300}: null\n", "secrets." + "s" * 300),
    ("requirements-string", TRUSS + "requirements: numpy\n", "requirements"),
    ("concurrency-zero", TRUSS + "runtime:\n  predict_concurrency: 0\n", "runtime.predict_concurrency"),
    ("seconds-huge", TRUSS + "runtime:\n  health_checks:\n    startup_threshold_seconds: " + "9" * 400 + "\n",
     "runtime.health_checks.startup_threshold_seconds"),
    ("empty-model-name", TRUSS.replace("model_name: m", 'model_name: ""'), "model_name"),
    ("model-name-303", TRUSS.replace("model_name: m", f"model_name: {LONG}"), "model_name"),
    ("document-a-list", "- a\n- b\n", ""),
    ("predict-no-slash", TRUSS.replace("predict_endpoint: /", "predict_endpoint: predict"), "docker_server.predict_endpoint"),
]

# Problems of the text itself, which sit on a line though they have no key path.
ON_A_LINE = ("syntax", "nested", "duplicate", "bomb")
CASES = [pytest.param(file, text, key, any(word in name for word in ON_A_LINE), id=f"{file}-{name}")
         for file, cases in (("berth.toml", BERTH_TOML), ("cerebrium.toml", CEREBRIUM_TOML), ("config.yaml", TRUSS_YAML))
         for name, text, key in cases]


def test_the_sweep_is_at_least_forty_inputs_across_the_three_formats() -> None:
    assert len(CASES) >= 40 and min(len(BERTH_TOML), len(CEREBRIUM_TOML), len(TRUSS_YAML)) >= 10


@pytest.mark.parametrize(("name", "text", "key", "on_a_line"), CASES)
def test_a_broken_input_is_refused_cleanly_and_fast(tmp_path: Path, name: str, text: str, key: str,
                                                    on_a_line: bool) -> None:
    file = tmp_path / name
    file.write_text(text)
    started = time.monotonic()
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(file))
    elapsed = time.monotonic() - started
    found = caught.value.diagnostics
    shown = "\n".join(str(d) for d in found)
    assert found and elapsed < 1.0, (elapsed, shown)
    for diagnostic in found:
        assert diagnostic.file and diagnostic.file.endswith(name), shown
        assert "internal error" not in str(diagnostic) and "Traceback" not in str(diagnostic), shown
        assert len(diagnostic.summary) < 400, shown  # one or two sentences
    if key:
        named = [d for d in found if d.key == key]
        assert named, f"no diagnostic names {key}:\n{shown}"
        assert all(d.line is not None for d in named), shown
    if on_a_line:
        assert any(d.line is not None for d in found), shown


def test_non_utf8_bytes_are_refused_naming_the_file(tmp_path: Path) -> None:
    for name in ("berth.toml", "cerebrium.toml", "config.yaml"):
        file = tmp_path / name
        file.write_bytes(b"\xff\xfe[apps.web]\n")
        with pytest.raises(DiagnosticsError) as caught:
            load_stack(str(file))
        assert all(d.file and d.file.endswith(name) for d in caught.value.diagnostics)
        file.unlink()


@pytest.mark.parametrize(("name", "text", "key"), [
    pytest.param("berth.toml", WEB + "replicas = 1000000000000000000000\n", "apps.web.replicas", id="berth.toml"),
    pytest.param("cerebrium.toml", CEREBRIUM + "[hardware]\nmemory = inf\n", "hardware.memory", id="cerebrium.toml"),
    pytest.param("config.yaml", TRUSS + "environment_variables:\n  A:\n    b: 1\n", "environment_variables.A",
                 id="config.yaml"),
])
def test_the_command_line_prints_the_file_key_and_line_and_exits_1(tmp_path: Path, name: str, text: str,
                                                                   key: str) -> None:
    import subprocess
    import sys

    (tmp_path / name).write_text(text)
    done = subprocess.run([sys.executable, "-m", "berth.cli", "plan", "-f", str(tmp_path / name)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"{name}:" in output and key in output, output
    assert "Traceback" not in output and "internal error" not in output, output
