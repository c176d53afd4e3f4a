"""berth/stackfile: berth.toml → Stack, and every problem as a located, readable Diagnostic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from berth.stackfile.load import find_stack_file, load_stack
from berth.stackfile.locate import find_line
from berth.stackfile.models import memory_bytes
from planner.desired import AppConfig, BuildSource
from planner.diagnostics import Diagnostic, DiagnosticsError

# pydantic's own wording, which users should never see
UNREADABLE = ("pydantic", "Traceback", "Input should", "For further information", "Field required")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs beside its stack file, so diagnostics name it "berth.toml"."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(directory: Path, text: str, contexts: tuple[str, ...] = ("web",)) -> Path:
    for context in contexts:
        (directory / context).mkdir(parents=True, exist_ok=True)
        (directory / context / "Dockerfile").write_text("FROM scratch\n")
    file = directory / "berth.toml"
    file.write_text(dedent(text).lstrip("\n"))
    return file


def errors(directory: Path, text: str) -> list[Diagnostic]:
    write(directory, text)
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(None)
    found = caught.value.diagnostics
    for diagnostic in found:
        assert not any(word in str(diagnostic) for word in UNREADABLE), str(diagnostic)
        assert "\n" not in diagnostic.summary
    return found


# -- valid files --------------------------------------------------------------------------

FULL = """
[stack]
name = "demo"

[apps.db]
image = "postgres@sha256:abc"
port = 5432
host_port = 15432

[apps.web]
build = "./web"
command = ["python", "serve.py"]
port = 8000
host_port = 18000
readiness = "/ready"
liveness = "/health"
readiness_timeout = 900
env = { LOG_LEVEL = "info", WORKERS = 4, DEBUG = false, RATIO = 0.5 }
depends_on = ["db"]
replicas = 2
host = "local"
restart = "on-failure"
cpus = 1.5
memory = "2g"
"""


def test_full_file_maps_every_key(in_tmp: Path) -> None:
    write(in_tmp, FULL)
    stack = load_stack(None)
    assert stack.name == "demo"
    assert stack.file == str(in_tmp / "berth.toml")
    assert list(stack.apps) == ["db", "web"]  # the file's order
    assert stack.apps["web"] == AppConfig(
        name="web",
        host="local",
        build=BuildSource(context=str((in_tmp / "web").resolve())),
        image=None,
        command=("python", "serve.py"),
        port=8000,
        host_port=18000,
        readiness="/ready",
        liveness="/health",
        readiness_timeout=900.0,
        env={"LOG_LEVEL": "info", "WORKERS": "4", "DEBUG": "false", "RATIO": "0.5"},
        depends_on=("db",),
        replicas=2,
        restart="on-failure",
        cpus=1.5,
        memory=2 * 1024**3,
        origin="berth.toml",
    )
    assert stack.apps["db"].image == "postgres@sha256:abc"
    assert stack.apps["db"].build is None


def test_defaults(in_tmp: Path) -> None:
    write(in_tmp, '[apps.web]\nimage = "srv:1"\nport = 8000\n')
    app = load_stack(None).apps["web"]
    assert app == AppConfig(name="web", image="srv:1", port=8000, host_port=8000)
    assert (app.host, app.restart, app.replicas, app.readiness_timeout) == ("local", "unless-stopped", 1, 600.0)
    assert (app.command, app.readiness, app.liveness, app.cpus, app.memory) == (None,) * 5


def test_build_table_form(in_tmp: Path) -> None:
    (in_tmp / "srv").mkdir()
    (in_tmp / "srv" / "Dockerfile.gpu").write_text("FROM scratch\n")
    write(
        in_tmp,
        """
        [apps.web]
        build = { context = "srv", dockerfile = "Dockerfile.gpu", args = { X = "1", N = 2, ON = true } }
        port = 80
        """,
        contexts=(),
    )
    assert load_stack(None).apps["web"].build == BuildSource(
        context=str((in_tmp / "srv").resolve()), dockerfile="Dockerfile.gpu", args={"X": "1", "N": "2", "ON": "true"}
    )


def test_build_context_is_relative_to_the_stack_file_not_the_cwd(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = in_tmp / "project"
    project.mkdir()
    write(project, '[apps.web]\nbuild = "./web"\nport = 80\n')
    monkeypatch.chdir("/")
    stack = load_stack(str(project))
    assert stack.apps["web"].build.context == str((project / "web").resolve())
    assert stack.file == str(project / "berth.toml")


def test_command_string_runs_with_sh(in_tmp: Path) -> None:
    write(in_tmp, '[apps.web]\nimage = "srv"\nport = 80\ncommand = "python serve.py --port $PORT"\n')
    assert load_stack(None).apps["web"].command == ("sh", "-c", "python serve.py --port $PORT")


def test_stack_name_defaults_to_the_sanitised_directory_name(in_tmp: Path) -> None:
    project = in_tmp / "My Models.v2"
    project.mkdir()
    write(project, '[apps.web]\nimage = "srv"\nport = 80\n')
    assert load_stack(str(project / "berth.toml")).name == "my-models-v2"


def test_dotted_keys_and_empty_stack(in_tmp: Path) -> None:
    write(in_tmp, 'apps.web.image = "srv"\napps.web.port = 80\n')
    assert load_stack(None).apps["web"].port == 80
    write(in_tmp, '[stack]\nname = "empty"\n')
    assert load_stack(None).apps == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1024, 1024),
        ("1024", 1024),
        ("512m", 512 * 1024**2),
        ("512M", 512 * 1024**2),
        ("2g", 2 * 1024**3),
        ("2Gi", 2 * 1024**3),
        ("500Mi", 500 * 1024**2),
        ("1GB", 1024**3),  # Docker's meaning: docker run -m 1gb is 1 GiB
        ("1.5g", 3 * 1024**3 // 2),
        ("64k", 64 * 1024),
        ("1 t", 1024**4),
        ("100b", 100),
    ],
)
def test_memory_sizes(text: int | str, expected: int) -> None:
    assert memory_bytes(text) == expected


def test_memory_in_the_file(in_tmp: Path) -> None:
    write(in_tmp, '[apps.web]\nimage = "srv"\nport = 80\nmemory = "500Mi"\n')
    assert load_stack(None).apps["web"].memory == 500 * 1024**2


# -- one error each: (file, key path, line, words in the message) ------------------------

WEB = '[apps.web]\nimage = "srv"\nport = 8000\n'  # lines 1-3; cases add lines from 4

ERROR_CASES = [
    pytest.param('[apps.web]\nimage = "srv"\nport = \n', None, 3, "invalid TOML", id="toml-syntax"),
    pytest.param('[apps.web]\nimage = "srv"\nport = 1\nport = 2\n', None, 4, "invalid TOML", id="toml-duplicate"),
    pytest.param(WEB + "prot = 3\n", "apps.web.prot", 4, 'unknown key; did you mean "port"?', id="unknown-key"),
    pytest.param(WEB + "zzz = 3\n", "apps.web.zzz", 4, "unknown key", id="unknown-key-no-match"),
    pytest.param('[stak]\nname = "x"\n' + WEB, "stak", 1, 'did you mean "stack"', id="unknown-top-level"),
    pytest.param('[stack]\nnmae = "x"\n' + WEB, "stack.nmae", 2, 'did you mean "name"', id="unknown-in-stack"),
    pytest.param(
        '[apps.web]\nport = 80\nbuild = { context = "web", dockerfil = "D" }\n',
        "apps.web.build.dockerfil", 3, 'did you mean "dockerfile"', id="unknown-in-build-table",
    ),
    pytest.param(
        '[apps.web]\nimage = "srv"\nport = "eighty"\n',
        "apps.web.port", 3, 'expected an integer from 1 to 65535, got "eighty"', id="port-type",
    ),
    pytest.param('[apps.web]\nimage = "srv"\nport = 0\n', "apps.web.port", 3, "from 1 to 65535, got 0", id="port-low"),
    pytest.param('[apps.web]\nimage = "srv"\nport = 70000\n', "apps.web.port", 3, "got 70000", id="port-high"),
    pytest.param('[apps.web]\nimage = "srv"\nport = true\n', "apps.web.port", 3, "got true", id="port-bool"),
    pytest.param('[apps.web]\nimage = "srv"\n', "apps.web.port", 1, "missing required key", id="port-missing"),
    pytest.param(WEB + "host_port = -1\n", "apps.web.host_port", 4, "from 1 to 65535", id="host-port"),
    pytest.param(WEB + "replicas = 0\n", "apps.web.replicas", 4, "at least 1, got 0", id="replicas"),
    pytest.param(WEB + "readiness_timeout = 0\n", "apps.web.readiness_timeout", 4, "greater than 0", id="timeout"),
    pytest.param(WEB + 'readiness = "ready"\n', "apps.web.readiness", 4, 'starting with "/"', id="readiness"),
    pytest.param(WEB + 'liveness = "health"\n', "apps.web.liveness", 4, 'starting with "/"', id="liveness"),
    pytest.param(WEB + 'restart = "never"\n', "apps.web.restart", 4, '"unless-stopped"', id="restart"),
    pytest.param(WEB + "cpus = 0\n", "apps.web.cpus", 4, "greater than 0", id="cpus"),
    pytest.param(WEB + 'memory = "lots"\n', "apps.web.memory", 4, 'like "512m"', id="memory-text"),
    pytest.param(WEB + "memory = 0\n", "apps.web.memory", 4, "got 0", id="memory-zero"),
    pytest.param(WEB + "env = { A = [1] }\n", "apps.web.env.A", 4, "string, number or boolean", id="env-value"),
    pytest.param(WEB + 'env = "A=1"\n', "apps.web.env", 4, 'expected a table, got "A=1"', id="env-table"),
    pytest.param(WEB + "command = 5\n", "apps.web.command", 4, "list of strings, got 5", id="command-type"),
    pytest.param(WEB + "command = []\n", "apps.web.command", 4, "non-empty list", id="command-empty"),
    pytest.param(WEB + 'depends_on = "db"\n', "apps.web.depends_on", 4, "list of app names", id="depends-type"),
    pytest.param('[apps.web]\nport = 80\nbuild = 5\n', "apps.web.build", 3, "context directory", id="build-type"),
    pytest.param('[apps.web]\nport = 80\nimage = "a b"\n', "apps.web.image", 3, "image reference", id="image"),
    pytest.param(
        '[apps.Web]\nimage = "srv"\nport = 80\n', "apps.Web", 1, 'app name "Web" must be lowercase letters',
        id="app-name",
    ),
    pytest.param('[stack]\nname = "My Stack"\n', "stack.name", 2, "lowercase letters", id="stack-name"),
    pytest.param('stack = "demo"\n', "stack", 1, 'expected a table, got "demo"', id="stack-type"),
    pytest.param("apps = 3\n", "apps", 1, "table of apps", id="apps-type"),
    pytest.param('apps.web.image = "srv"\napps.web.port = "x"\n', "apps.web.port", 2, "got \"x\"", id="dotted"),
    pytest.param('[apps.web]\nport = 80\n', "apps.web", 1, "needs build", id="neither-build-nor-image"),
    pytest.param(
        '[apps.web]\nport = 80\nbuild = "web"\nimage = "srv"\n',
        "apps.web.image", 4, "either build or image, not both", id="both-build-and-image",
    ),
    pytest.param(WEB + 'host = "gpu1"\n', "apps.web.host", 4, "unknown host \"gpu1\" (defined: \"local\"", id="host"),
    pytest.param(
        WEB + 'host = "gpu-b"\n[hosts.gpu-a]\nssh = "root@10.0.0.5"\n', "apps.web.host", 4,
        'unknown host "gpu-b"; did you mean "gpu-a"?', id="host-typo",
    ),
    pytest.param(WEB + '[hosts.gpu-a]\nssh = "root@"\n', "hosts.gpu-a.ssh", 5, "an SSH destination", id="ssh-empty"),
    pytest.param(WEB + '[hosts.gpu-a]\nssh = "a@b:0"\n', "hosts.gpu-a.ssh", 5, "an SSH destination", id="ssh-port-0"),
    pytest.param(WEB + '[hosts.gpu-a]\nssh = "a@b:65536"\n', "hosts.gpu-a.ssh", 5, "an SSH destination", id="ssh-port-65536"),
    pytest.param(WEB + '[hosts.gpu-a]\nssh = "a@b"\nidentity_file = "keys/none"\n', "hosts.gpu-a.identity_file", 6,
                 "no such key file", id="identity-file-missing"),
    pytest.param(WEB + '[hosts.gpu-a]\nidentity_file = "k"\n', "hosts.gpu-a.ssh", 4, "missing required key", id="ssh-missing"),
    pytest.param(WEB + '[hosts.gpu-a]\nssh = "a@b"\nknonw_hosts = "x"\n', "hosts.gpu-a.knonw_hosts", 6,
                 'did you mean "known_hosts"?', id="host-key-typo"),
    pytest.param(WEB + '[hosts.local]\nssh = "a@b"\n', "hosts.local", 4, "the engine berth runs beside", id="host-local"),
    pytest.param(WEB + '[hosts.gpu-a]\nssh = "a@b"\nsecrets_dir = "~/s"\n', "hosts.gpu-a.secrets_dir", 6,
                 'expected an absolute directory path like "/srv/berth/secrets", got "~/s"', id="secrets-dir-relative"),
    pytest.param(WEB + 'gpus = 0\n', "apps.web.gpus", 4, "a number of GPUs of at least 1", id="gpus-zero"),
    pytest.param(WEB + 'accelerator = "H100:0"\n', "apps.web.accelerator", 4, 'an accelerator like "H100"', id="accelerator-bad"),
    pytest.param(WEB + 'gpus = 1\naccelerator = "H100:2"\n', "apps.web.accelerator", 5, "not both", id="gpus-and-accelerator"),
    pytest.param(
        WEB + 'depends_on = ["dbb"]\n[apps.db]\nimage = "pg"\nport = 5432\n',
        "apps.web.depends_on", 4, 'unknown app "dbb"; did you mean "db"?', id="depends-unknown",
    ),
    pytest.param(
        WEB + 'depends_on = ["web"]\n', "apps.web.depends_on", 4, "cannot depend on itself", id="depends-self",
    ),
    pytest.param(
        '[apps.a]\nimage = "x"\nport = 1\ndepends_on = ["b"]\n'
        '[apps.b]\nimage = "x"\nport = 2\ndepends_on = ["c"]\n'
        '[apps.c]\nimage = "x"\nport = 3\ndepends_on = ["a"]\n',
        "apps.a.depends_on", 4, "depends_on cycle: a -> b -> c -> a", id="depends-cycle",
    ),
    pytest.param(
        '[apps.a]\nimage = "x"\nport = 80\nhost_port = 18000\nreplicas = 3\n'
        '[apps.b]\nimage = "x"\nport = 80\nhost_port = 18002\n',
        "apps.b.host_port", 9, "host port 18002 is published by both a (ports 18000-18002) and b (port 18002)",
        id="host-port-overlap",
    ),
    pytest.param(
        '[apps.a]\nimage = "x"\nport = 8000\n[apps.b]\nimage = "x"\nport = 8000\n',
        "apps.b.port", 6, "host port 8000 is published by both a (port 8000) and b (port 8000)",
        id="default-port-overlap",
    ),
    pytest.param(
        WEB + "host_port = 65535\nreplicas = 2\n", "apps.web.replicas", 5, "past 65535", id="ports-past-65535",
    ),
    pytest.param(
        '[apps.web]\nport = 80\nbuild = "./nope"\n', "apps.web.build", 3, "build context ./nope not found",
        id="context-missing",
    ),
    pytest.param(
        '[apps.web]\nport = 80\nbuild = { context = "./nope" }\n', "apps.web.build.context", 3, "not found",
        id="context-missing-table",
    ),
    pytest.param(
        '[apps.web]\nport = 80\nbuild = "./web/Dockerfile"\n', "apps.web.build", 3, "is not a directory",
        id="context-is-a-file",
    ),
    pytest.param(
        '[apps.web]\nport = 80\nbuild = { context = "web", dockerfile = "Dockerfile.gpu" }\n',
        "apps.web.build.dockerfile", 3, "no Dockerfile.gpu in build context web (looked for ", id="dockerfile-missing",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), ERROR_CASES)
def test_each_error_is_located_and_readable(in_tmp: Path, text: str, key: str, line: int, words: str) -> None:
    [diagnostic] = errors(in_tmp, text)
    assert (diagnostic.file, diagnostic.key, diagnostic.line) == ("berth.toml", key, line)
    assert words in diagnostic.summary
    assert diagnostic.severity == "error"


def test_missing_dockerfile_in_a_string_context(in_tmp: Path) -> None:
    (in_tmp / "empty").mkdir()
    [diagnostic] = errors(in_tmp, '[apps.web]\nport = 80\nbuild = "./empty"\n')
    assert (diagnostic.key, diagnostic.line) == ("apps.web.build", 3)
    looked = in_tmp.resolve() / "empty" / "Dockerfile"
    assert diagnostic.summary == f"no Dockerfile in build context ./empty (looked for {looked})"


def test_rendered_like_a_compiler_error(in_tmp: Path) -> None:
    write(in_tmp, '[stack]\nname = "demo"\n\n[apps.web]\nimage = "srv"\n\nport = "eighty"\n')
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(None)
    assert str(caught.value) == 'berth.toml:7: apps.web.port: expected an integer from 1 to 65535, got "eighty"'


def test_unknown_key_without_a_close_match_lists_the_known_ones(in_tmp: Path) -> None:
    [diagnostic] = errors(in_tmp, WEB + "zzz = 1\n")
    assert diagnostic.detail.startswith("known keys here: build, image, command, port")


def test_many_errors_are_reported_together(in_tmp: Path) -> None:
    found = errors(
        in_tmp,
        """
        [apps.web]
        build = "./web"
        port = "eighty"
        prot = 3
        depends_on = ["api"]

        [apps.api]
        image = "srv"
        build = "./web"
        port = 80
        host = "gpu1"
        depends_on = ["web"]
        """,
    )
    assert [(d.key, d.line) for d in found] == [
        ("apps.web.port", 3),
        ("apps.web.prot", 4),
        ("apps.web.depends_on", 5),  # the cycle, found although web itself is invalid
        ("apps.api.image", 8),
        ("apps.api.host", 11),
    ]


def test_toml_error_at_the_end_of_the_file(in_tmp: Path) -> None:
    [diagnostic] = errors(in_tmp, '[apps.web]\nimage = "srv"\nport = 80\nenv = { A = "1"\n')
    assert diagnostic.line is not None
    assert diagnostic.summary.startswith("invalid TOML")


def test_file_that_is_not_utf8(in_tmp: Path) -> None:
    (in_tmp / "berth.toml").write_bytes(b'[stack]\nname = "\xff"\n')
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(None)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.file == "berth.toml"
    assert "not UTF-8" in diagnostic.summary


# -- finding the file -------------------------------------------------------------------


def test_find_stack_file_forms(in_tmp: Path) -> None:
    file = write(in_tmp, WEB)
    assert find_stack_file(None) == file
    assert find_stack_file(str(in_tmp)) == file
    assert find_stack_file("berth.toml") == file
    other = in_tmp / "prod.toml"
    other.write_text(WEB)
    assert find_stack_file("prod.toml") == other
    assert load_stack("prod.toml").apps["web"].origin == "prod.toml"


@pytest.mark.parametrize(
    ("argument", "words"),
    [
        (None, "no berth.toml in the current directory"),
        (".", "no berth.toml in directory ."),
        ("missing.toml", "stack file missing.toml not found"),
    ],
)
def test_find_stack_file_missing(argument: str | None, words: str) -> None:
    with pytest.raises(DiagnosticsError) as caught:
        find_stack_file(argument)
    [diagnostic] = caught.value.diagnostics
    assert words in diagnostic.summary
    assert "\n" not in str(diagnostic)


def test_loading_module_does_not_import_networkx() -> None:
    """The CLI imports berth.stackfile on every start; networkx waits until a file is checked."""
    code = "import sys, berth.stackfile.load; sys.exit('networkx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[4]).returncode == 0


# -- locate ----------------------------------------------------------------------------

LOCATE_TEXT = """\
# a comment [not.a.table]
[stack]
name = "demo"

[apps.web]
build = { context = "./web", args = { X = "1" }, dockerfile = "D" }
port = 8000   # inline comment
env."A.B" = "x"
command = [
  "python",
  ["nested = 1"],
]
notes = \"\"\"
[apps.fake]
port = 1
\"\"\"
"quoted key" = 1

[apps.db]
port = 5432
apps.ignored = 1
"""

LOCATE_TOP = 'apps.web.port = 1\nstack.name = "x"\n'


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        (LOCATE_TEXT, ("stack",), 2),
        (LOCATE_TEXT, ("stack", "name"), 3),
        (LOCATE_TEXT, ("apps", "web"), 5),
        (LOCATE_TEXT, ("apps",), 5),  # implied by [apps.web]
        (LOCATE_TEXT, ("apps", "web", "build"), 6),
        (LOCATE_TEXT, ("apps", "web", "build", "context"), 6),
        (LOCATE_TEXT, ("apps", "web", "build", "args", "X"), 6),
        (LOCATE_TEXT, ("apps", "web", "build", "dockerfile"), 6),
        (LOCATE_TEXT, ("apps", "web", "port"), 7),
        (LOCATE_TEXT, ("apps", "web", "env", "A.B"), 8),
        (LOCATE_TEXT, ("apps", "web", "command"), 9),
        (LOCATE_TEXT, ("apps", "web", "notes"), 13),
        (LOCATE_TEXT, ("apps", "fake"), 5),  # inside a multi-line string: falls back to [apps]
        (LOCATE_TEXT, ("nested",), None),  # inside an array
        (LOCATE_TEXT, ("apps", "web", "quoted key"), 17),
        (LOCATE_TEXT, ("apps", "db", "port"), 20),
        (LOCATE_TEXT, ("apps", "db", "apps", "ignored"), 21),
        (LOCATE_TEXT, ("apps", "db", "replicas"), 19),  # absent: its table
        (LOCATE_TEXT, ("apps", "web", "build", "missing"), 6),
        (LOCATE_TEXT, ("hosts", "gpu"), None),
        (LOCATE_TOP, ("apps", "web", "port"), 1),
        (LOCATE_TOP, ("apps", "web"), 1),
        (LOCATE_TOP, ("stack", "name"), 2),
        ("[[apps.web.volumes]]\nsrc = 1\n", ("apps", "web", "volumes", "src"), 2),
        ("[[apps.w.weights]]\nmount = 1\n[[apps.w.weights]]\nsource = 2\nmount = 3\n",
         ("apps", "w", "weights", "1", "mount"), 5),  # the Nth table of an array of tables
        ("x = [ { a = 1 }, { b = 2 } ]\n", ("x", "a"), 1),  # tables in arrays: the array's line
        ("", ("apps",), None),
    ],
)
def test_find_line(text: str, path: tuple[str, ...], line: int | None) -> None:
    assert find_line(text, path) == line


# -- secrets ------------------------------------------------------------------------------

SECRETS = """
[stack]
name = "demo"
secrets_file = ".berth/secrets.env"

[secrets.hf_access_token]
env = "HF_TOKEN"

[secrets.api_key]
file = "~/.config/api/key"

[secrets.pw]
command = ["pass", "show", "hf"]

[secrets.sh]
command = "pass show x | head -1"

[apps.web]
build = "./web"
port = 8000
secrets = ["hf_access_token", "api_key", "hf_access_token"]
secret_env = { HF_TOKEN = "hf_access_token", EXTRA = "from_file" }
"""


def test_secrets_map_to_sources(in_tmp: Path) -> None:
    write(in_tmp, SECRETS)
    stack = load_stack(None)
    web = stack.apps["web"]
    assert web.secrets == ("hf_access_token", "api_key")
    assert web.secret_env == {"HF_TOKEN": "hf_access_token", "EXTRA": "from_file"}
    s = stack.secrets
    assert set(s) == {"hf_access_token", "api_key", "pw", "sh", "from_file"}
    assert s["hf_access_token"].env == "HF_TOKEN" and s["hf_access_token"].source == "env HF_TOKEN"
    assert s["hf_access_token"].defined_key == "secrets.hf_access_token" and s["hf_access_token"].defined_line == 5
    assert s["api_key"].file == str(Path.home() / ".config/api/key") and s["api_key"].source == "file ~/.config/api/key"
    assert s["pw"].command == ("pass", "show", "hf") and s["pw"].source == "command pass show hf"
    assert s["sh"].command == ("sh", "-c", "pass show x | head -1")
    # A name no table defines comes from the secrets file, relative to the stack file.
    assert s["from_file"].secrets_file == str(in_tmp / ".berth" / "secrets.env")
    assert s["from_file"].defined_key == "stack.secrets_file" and s["from_file"].defined_line == 3
    assert stack.secrets_file == str(in_tmp / ".berth" / "secrets.env")


@pytest.mark.parametrize(("text", "key", "line", "words"), [
    ('[secrets.hf]\nenv = "HF"\n[apps.web]\nimage = "x"\nport = 1\nsecrets = ["hff"]\n',
     "apps.web.secrets", 6, 'unknown secret "hff"; did you mean "hf"?'),
    ('[apps.web]\nimage = "x"\nport = 1\nsecret_env = { T = "nope" }\n',
     "apps.web.secret_env.T", 4, 'unknown secret "nope"; define it in [secrets.nope]'),
    ('[secrets.hf]\nenv = "HF"\nfile = "/x"\n', "secrets.hf.file", 3, "set only one of env, file and command"),
    ('[secrets.hf]\n', "secrets.hf", 1, "needs a source"),
    ('[secrets.hf]\nenvv = "HF"\n', "secrets.hf.envv", 2, 'did you mean "env"?'),
    ('[secrets.hf]\nenv = "HF-TOKEN"\n', "secrets.hf.env", 2, "an environment variable name"),
    ('[secrets."a/b"]\nenv = "HF"\n', 'secrets."a/b"', 1, "must be letters, digits"),
    ('[secrets.hf]\nenv = "HF"\n[apps.web]\nimage = "x"\nport = 1\nsecret_env = { "1X" = "hf" }\n',
     "apps.web.secret_env.1X", 6, "is not an environment variable name"),
    ('[secrets.hf]\nenv = "HF"\n[apps.web]\nimage = "x"\nport = 1\nenv = { T = "1" }\nsecret_env = { T = "hf" }\n',
     "apps.web.secret_env.T", 7, "T is also set in env"),
    ('[apps.web]\nimage = "x"\nport = 1\nsecrets = "hf"\n', "apps.web.secrets", 4, "expected a list of secret names"),
])
def test_secret_errors_are_located(in_tmp: Path, text: str, key: str, line: int, words: str) -> None:
    found = errors(in_tmp, text)
    assert any(d.key == key and d.line == line and words in d.summary for d in found), [str(d) for d in found]


def test_a_secrets_file_admits_names_no_table_defines(in_tmp: Path) -> None:
    write(in_tmp, '[stack]\nsecrets_file = "s.env"\n[apps.web]\nimage = "x"\nport = 1\nsecrets = ["anything"]\n')
    assert load_stack(None).secrets["anything"].source == "secrets_file s.env"


def test_hosts_and_gpus_are_normalised(in_tmp: Path) -> None:
    write(in_tmp, WEB + 'host = "gpu-a"\naccelerator = "H100:2"\n'
          '[apps.embed]\nimage = "e"\nport = 9000\ngpus = 1\n'
          '[apps.plain]\nimage = "p"\nport = 9001\n'
          '[hosts.gpu-a]\nssh = "ubuntu@10.0.0.5:2222"\nidentity_file = "keys/id"\n'
          '[hosts.gpu-b]\nssh = "[fe80::1]"\nknown_hosts = "~/kh"\naccept_new_host_key = true\n'
          'secrets_dir = "/srv//berth/secrets/"\n')
    (in_tmp / "keys").mkdir()
    (in_tmp / "keys/id").write_text("a key\n")
    stack = load_stack(None)
    a, b = stack.hosts["gpu-a"], stack.hosts["gpu-b"]
    assert (a.user, a.address, a.port, a.identity_file) == ("ubuntu", "10.0.0.5", 2222, str(in_tmp.resolve() / "keys/id"))
    assert (a.known_hosts, a.accept_new_host_key, a.docker_socket) == ("~/.ssh/known_hosts", False, "/var/run/docker.sock")
    assert (a.secrets_dir, b.secrets_dir) == (None, "/srv/berth/secrets")  # normalised
    assert (b.address, b.port, b.known_hosts, b.accept_new_host_key) == ("fe80::1", 22, "~/kh", True)
    web, embed, plain = stack.apps["web"], stack.apps["embed"], stack.apps["plain"]
    assert (web.host, web.gpus, web.gpu_type, web.host_auto) == ("gpu-a", 2, "H100", False)
    # No host named but GPUs asked for: placement picks the host.
    assert (embed.gpus, embed.gpu_type, embed.host_auto) == (1, None, True)
    assert (plain.gpus, plain.host, plain.host_auto) == (0, "local", False)


# -- serving: the gateway and the keys it reads -------------------------------------------

SERVED = """
[stack]
gateway_port = 8080

[apps.llm]
build = "./web"
port = 8000
predict = "/v1/chat/completions"
replicas = 2
deploy = "recreate"
liveness_failure_threshold = 5
probe_interval = 2.5
"""


def test_serving_keys_map_to_the_stack_and_app(in_tmp: Path) -> None:
    write(in_tmp, SERVED)
    stack = load_stack(None)
    assert (stack.gateway_port, stack.gateway_admin_port) == (8080, 2019)
    app = stack.apps["llm"]
    assert (app.predict, app.deploy, app.liveness_failure_threshold, app.probe_interval) == (
        "/v1/chat/completions", "recreate", 5, 2.5)


def test_serving_defaults(in_tmp: Path) -> None:
    write(in_tmp, '[apps.web]\nbuild = "./web"\nport = 80\n')
    stack = load_stack(None)
    assert stack.gateway_port is None
    app = stack.apps["web"]
    assert (app.predict, app.deploy, app.liveness_failure_threshold, app.probe_interval) == (None, "rolling", 3, 10.0)


def test_served_apps_with_rolling_deploys_publish_on_picked_ports(in_tmp: Path) -> None:
    write(in_tmp, "[stack]\ngateway_port = 8080\n" + WEB
          + '[apps.old]\nimage = "srv"\nport = 8000\nhost_port = 18000\ndeploy = "recreate"\n'
          + '[apps.gpu]\nimage = "srv"\nport = 8000\nhost_port = 19000\ngpus = 1\n')
    apps = load_stack(None).apps
    # GPU replicas are replaced in place: the new one needs the old one's devices.
    assert (apps["web"].host_port, apps["old"].host_port, apps["gpu"].host_port) == (None, 18000, 19000)


def test_a_served_gpu_app_that_fixes_no_host_port_publishes_on_a_picked_port(in_tmp: Path) -> None:
    """So its replace can start the new replica beside the old one when the host has a
    free GPU for it (planner.placement.start_first)."""
    write(in_tmp, "[stack]\ngateway_port = 8080\n" + '[apps.gpu]\nimage = "srv"\nport = 8000\ngpus = 1\n')
    assert load_stack(None).apps["gpu"].host_port is None


def test_an_app_may_publish_the_gateways_admin_port_which_stays_inside_its_container(in_tmp: Path) -> None:
    write(in_tmp, "[stack]\ngateway_port = 8080\ngateway_admin_port = 8000\n" + WEB + 'deploy = "recreate"\n')
    stack = load_stack(None)
    assert (stack.gateway_admin_port, stack.apps["web"].host_port) == (8000, 8000)


SERVING_ERRORS = [
    pytest.param("[stack]\ngateway_port = 0\n" + WEB, "stack.gateway_port", 2, "expected an integer from 1 to 65535",
                 id="gateway-port-range"),
    pytest.param("[stack]\ngateway_port = 8000\n" + WEB + 'deploy = "recreate"\n', "apps.web.port", 5,
                 "host port 8000 is the gateway's", id="gateway-port-taken-by-app"),
    pytest.param("[stack]\ngateway_port = 8080\ngateway_admin_port = 8080\n" + WEB, "stack.gateway_admin_port", 3,
                 "cannot share port 8080", id="admin-port-is-gateway-port"),
    pytest.param("[stack]\ngateway_port = 8080\n" + WEB + "host_port = 18000\n", "apps.web.host_port", 6,
                 'set deploy = "recreate"', id="fixed-port-with-rolling-deploy"),
    pytest.param("[stack]\ngateway_prot = 8080\n" + WEB, "stack.gateway_prot", 2, 'did you mean "gateway_port"',
                 id="gateway-port-typo"),
    pytest.param(WEB + 'predict = "predict"\n', "apps.web.predict", 4, 'an HTTP path starting with "/"', id="predict-path"),
    pytest.param(WEB + 'deploy = "blue-green"\n', "apps.web.deploy", 4, 'one of "rolling" or "recreate"', id="deploy"),
    pytest.param(WEB + "liveness_failure_threshold = 0\n", "apps.web.liveness_failure_threshold", 4,
                 "an integer of at least 1", id="threshold"),
    pytest.param(WEB + "probe_interval = 0\n", "apps.web.probe_interval", 4, "greater than 0", id="interval"),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), SERVING_ERRORS)
def test_serving_errors_are_located(in_tmp: Path, text: str, key: str, line: int, words: str) -> None:
    [diagnostic] = errors(in_tmp, text)
    assert (diagnostic.file, diagnostic.key, diagnostic.line) == ("berth.toml", key, line)
    assert words in diagnostic.summary
