"""berth.toml's container keys (volumes, shm_size, ipc, ulimits, entrypoint,
stop_timeout): what each becomes in the Stack, and each bad value as a located error."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.stackfile.load import load_stack
from planner.desired import VolumeMount
from unit.berth.stackfile.test_spec import errors, write

WEB = '[apps.web]\nimage = "busybox"\nport = 80\n'


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_key_reaches_the_app(in_tmp: Path) -> None:
    write(in_tmp, WEB + '''volumes = ["hf-cache:/root/.cache/huggingface", "/srv/models/:/models:ro", "/data:/data:rw"]
shm_size = "16g"
ipc = "host"
ulimits = { memlock = -1, stack = 67108864 }
entrypoint = ["python3", "-m", "vllm.entrypoints.openai.api_server"]
stop_timeout = 60
''')
    app = load_stack(None).apps["web"]
    assert app.volumes == (VolumeMount(source="hf-cache", target="/root/.cache/huggingface"),
                           VolumeMount(source="/srv/models", target="/models", read_only=True),
                           VolumeMount(source="/data", target="/data"))
    assert [m.named for m in app.volumes] == [True, False, False]
    assert app.shm_size == 16 * 2**30
    assert app.ipc == "host"
    assert app.ulimits == {"memlock": -1, "stack": 67108864}
    assert app.entrypoint == ("python3", "-m", "vllm.entrypoints.openai.api_server")
    assert app.stop_timeout == 60


def test_unset_keys_leave_docker_defaults(in_tmp: Path) -> None:
    write(in_tmp, WEB)
    app = load_stack(None).apps["web"]
    assert (app.volumes, app.shm_size, app.ipc, app.ulimits, app.entrypoint, app.stop_timeout) == \
        ((), None, None, {}, None, None)


def test_an_entrypoint_string_is_split_as_compose_does(in_tmp: Path) -> None:
    write(in_tmp, WEB + 'entrypoint = "python3 -m server"\n')
    assert load_stack(None).apps["web"].entrypoint == ("python3", "-m", "server")


@pytest.mark.parametrize(("line", "key", "words"), [
    pytest.param('volumes = ["x"]', "apps.web.volumes[0]", 'expected a volume like "hf-cache:', id="no-path"),
    pytest.param('volumes = "a:/b"', "apps.web.volumes", "expected a list of volumes", id="not-a-list"),
    pytest.param('volumes = ["./models:/models"]', "apps.web.volumes[0]", "must be an absolute path", id="relative"),
    pytest.param('volumes = ["models/x:/models"]', "apps.web.volumes[0]", "must be an absolute path", id="relative-2"),
    pytest.param('volumes = ["a:models"]', "apps.web.volumes[0]", "inside the container must be absolute", id="target"),
    pytest.param('volumes = ["Hf_Cache:/c"]', "apps.web.volumes[0]", "is not a volume name", id="bad-name"),
    pytest.param('volumes = ["a:/c:rox"]', "apps.web.volumes[0]", "expected a volume like", id="bad-mode"),
    pytest.param('volumes = ["a:/c", "b:/c"]', "apps.web.volumes", "two volumes are mounted at /c", id="same-target"),
    pytest.param('ipc = "none"', "apps.web.ipc", 'expected one of "host", "private" or "shareable", got "none"',
                 id="ipc"),
    pytest.param('shm_size = "lots"', "apps.web.shm_size", 'a /dev/shm size in bytes, or a string like', id="shm"),
    pytest.param('shm_size = 0', "apps.web.shm_size", 'a /dev/shm size', id="shm-zero"),
    pytest.param('ulimits = { nofile = "x" }', "apps.web.ulimits", 'ulimit nofile: expected an integer', id="ulimit"),
    pytest.param('ulimits = { nofile = -2 }', "apps.web.ulimits", 'or -1 for unlimited, got -2', id="ulimit-neg"),
    pytest.param('ulimits = { open_files = 1 }', "apps.web.ulimits", '"open_files" is not a ulimit Docker knows',
                 id="ulimit-name"),
    pytest.param('ulimits = 5', "apps.web.ulimits", 'a table of ulimits', id="ulimit-table"),
    pytest.param('entrypoint = []', "apps.web.entrypoint", 'expected an entrypoint', id="entrypoint-empty"),
    pytest.param('stop_timeout = -1', "apps.web.stop_timeout", 'a number of seconds greater than 0', id="stop"),
    pytest.param('stop_timeout = "60s"', "apps.web.stop_timeout", 'a number of seconds', id="stop-text"),
])
def test_bad_values_are_located_errors(in_tmp: Path, line: str, key: str, words: str) -> None:
    [diagnostic] = errors(in_tmp, WEB + line + "\n")
    assert (diagnostic.file, diagnostic.key, diagnostic.line) == ("berth.toml", key, 4)
    assert words in diagnostic.summary, diagnostic.summary


def test_cerebrium_persistent_storage_is_a_named_volume_and_from_can_override_it(in_tmp: Path) -> None:
    import shutil

    examples = Path(__file__).resolve().parents[4] / "examples"
    shutil.copytree(examples / "cerebrium-fastapi", in_tmp / "api")
    write(in_tmp, '[stack]\nname = "demo"\n[apps.api]\nfrom = "./api"\n[apps.other]\nfrom = "./api"\nport = 5001\n'
                  'volumes = ["/srv/state:/persistent-storage", "hf:/hf"]\nshm_size = "1g"\n')
    apps = load_stack(None).apps
    assert apps["api"].volumes == (VolumeMount(source="persistent-storage", target="/persistent-storage"),)
    assert apps["other"].volumes == (VolumeMount(source="/srv/state", target="/persistent-storage"),
                                     VolumeMount(source="hf", target="/hf"))
    assert apps["other"].shm_size == 2**30
    assert apps["other"].lines == {"volumes[0]": 8, "volumes[1]": 8}


def test_cerebrium_response_grace_period_is_the_stop_timeout(in_tmp: Path) -> None:
    import shutil

    examples = Path(__file__).resolve().parents[4] / "examples"
    shutil.copytree(examples / "cerebrium-fastapi", in_tmp / "api")
    toml = in_tmp / "api" / "cerebrium.toml"
    assert "[scaling]" not in toml.read_text()
    toml.write_text(toml.read_text() + "\n[scaling]\nresponse_grace_period = 120\n")
    write(in_tmp, '[stack]\nname = "demo"\n[apps.api]\nfrom = "./api"\n')
    assert load_stack(None).apps["api"].stop_timeout == 120


def test_a_volume_over_the_secrets_mount_is_refused(in_tmp: Path) -> None:
    [problem] = errors(in_tmp, WEB + 'secrets = ["tok"]\nvolumes = ["/srv:/secrets"]\n'
                                    '[secrets.tok]\nenv = "TOK"\n')
    assert (problem.key, problem.line) == ("apps.web.volumes", 5)
    assert "is where the app's secrets are mounted" in problem.summary
