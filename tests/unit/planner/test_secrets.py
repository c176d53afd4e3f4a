"""Secrets without Docker: reading sources, the digest key, the local secret files, and
that nothing berth stores or prints holds a value."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import stat
import sys
from pathlib import Path

import pytest

from berth.ui.plan_view import plan_document
from planner.desired import AppConfig, SecretSource, Stack
from planner.diagnostics import DiagnosticsError
from planner.resources import canonical_hash, config_hash, container_attributes, legacy_config_hashes, masked
from planner.secrets import SENSITIVE, SecretKey, SecretUnavailable, SecretValues, digest, parse_env_file
from providers.secret_files import LocalSecretFiles
from providers.types import ProviderError


def stack_with(tmp_path: Path, **sources: dict) -> Stack:
    made = {}
    for name, spec in sources.items():
        kind, ref = next(iter(spec.items()))
        shown = shlex.join(ref) if kind == "command" else ref
        made[name] = SecretSource(name=name, source=f"{kind} {shown}", defined_file="berth.toml",
                                  defined_key=f"secrets.{name}", defined_line=7, **{kind: ref})
    return Stack(name="demo", file=str(tmp_path / "berth.toml"), secrets=made)


def values(tmp_path: Path, **sources: dict) -> SecretValues:
    return SecretValues(stack_with(tmp_path, **sources), SecretKey(tmp_path / "secrets.key"))


# -- sources ------------------------------------------------------------------------------


def test_each_source_gives_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = secrets.token_hex(8)
    monkeypatch.setenv("W5_TOKEN", token)
    (tmp_path / "token").write_text(token + "-file\n")  # one trailing newline is stripped
    (tmp_path / "keep").write_bytes(b"two\n\n")  # only one
    (tmp_path / "s.env").write_text(f"# comment\n\nexport A_KEY='{token}-quoted'\nplain = {token}-plain\n")
    found = values(
        tmp_path,
        env={"env": "W5_TOKEN"},
        file={"file": str(tmp_path / "token")},
        keep={"file": str(tmp_path / "keep")},
        cmd={"command": (sys.executable, "-c", f"print('{token}-cmd')")},
        A_KEY={"secrets_file": str(tmp_path / "s.env")},
        plain={"secrets_file": str(tmp_path / "s.env")},
    )
    found.resolve(["env", "file", "keep", "cmd", "A_KEY", "plain"])
    assert found.value("env") == token.encode()
    assert found.value("file") == f"{token}-file".encode()
    assert found.value("keep") == b"two\n"
    assert found.value("cmd") == f"{token}-cmd".encode()
    assert found.value("A_KEY") == f"{token}-quoted".encode()
    assert found.value("plain") == f"{token}-plain".encode()
    assert token not in repr(found)


def test_every_missing_source_is_reported_at_once_without_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = secrets.token_hex(8)
    monkeypatch.delenv("W5_UNSET", raising=False)
    monkeypatch.setenv("W5_EMPTY", "")
    (tmp_path / "s.env").write_text(f"{token} without an equals sign\n")
    (tmp_path / "vault").write_text(token)
    found = values(
        tmp_path,
        unset={"env": "W5_UNSET"},
        empty={"env": "W5_EMPTY"},
        absent={"file": str(tmp_path / "nope")},
        failing={"command": ("sh", "-c", 'cat "$0"; cat "$0" >&2; exit 3', str(tmp_path / "vault"))},
        missing_cmd={"command": ("w5-no-such-command",)},
        bad_file={"secrets_file": str(tmp_path / "s.env")},
    )
    with pytest.raises(DiagnosticsError) as caught:
        found.resolve(["unset", "empty", "absent", "failing", "missing_cmd", "bad_file"])
    text = str(caught.value)
    assert token not in text
    summaries = [d.summary for d in caught.value.diagnostics]
    assert summaries[:3] == [
        "secret unset: environment variable W5_UNSET is not set",
        "secret empty: environment variable W5_EMPTY gives an empty value",
        f"secret absent: file {tmp_path / 'nope'} does not exist",
    ]
    # The command is config and is shown as written; what it printed is not.
    assert summaries[3].startswith("secret failing: command `sh -c")
    assert summaries[3].endswith("exited with status 3; its output is not shown, as it may hold the secret: "
                                 "run the command yourself to see why")
    assert summaries[4:] == [
        "secret missing_cmd: command `w5-no-such-command` cannot be run: w5-no-such-command not found",
        f"secret bad_file: secrets file {tmp_path / 's.env'} line 1 is not KEY=VALUE "
        "(its text is not shown: it may be a secret)",
    ]
    assert all(d.key and d.key.startswith("secrets.") and d.line == 7 for d in caught.value.diagnostics)
    with pytest.raises(SecretUnavailable, match="W5_UNSET is not set"):  # at apply time: a step error
        found.value("unset")


def test_a_failing_command_whose_argument_is_the_value_is_still_not_echoed_from_output(tmp_path: Path) -> None:
    token = secrets.token_hex(8)
    found = values(tmp_path, s={"command": ("sh", "-c", 'echo "$0" >&2; exit 1', token)})
    with pytest.raises(DiagnosticsError) as caught:
        found.resolve(["s"])
    assert str(caught.value).count(token) == 1  # in the command as written (config), not from stderr


def test_env_file_rules() -> None:
    def bad(n: int) -> ValueError:
        return ValueError(f"line {n}")

    assert parse_env_file(b'A=1\nA=2\nB="x=y"\n  C = spaced  \nD=\n', bad) == {
        "A": b"2", "B": b"x=y", "C": b"spaced", "D": b""}
    with pytest.raises(ValueError, match="line 2"):
        parse_env_file(b"A=1\nnot a line\n", bad)


# -- digests and the key ------------------------------------------------------------------


def test_digest_depends_on_key_name_and_value() -> None:
    key, other = b"k" * 32, b"o" * 32
    base = digest(key, "hf", b"value")
    assert base.startswith("hmac-sha256:") and "value" not in base
    assert digest(key, "hf", b"value") == base
    assert digest(other, "hf", b"value") != base  # two stacks, equal values: no match
    assert digest(key, "other", b"value") != base  # two secrets of a stack, equal values: not shown
    assert digest(key, "hf", b"value2") != base


def test_key_is_made_in_memory_and_saved_0600_once(tmp_path: Path) -> None:
    path = tmp_path / "state-dir" / "secrets.key"
    first = SecretKey(path)
    key = first.key()
    assert not path.exists()  # plan leaves no trace
    first.save()
    assert path.read_bytes() == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    first.save()  # idempotent
    assert SecretKey(path).key() == key
    path.write_bytes(b"short")
    with pytest.raises(DiagnosticsError, match="damaged"):
        SecretKey(path).key()


def test_redact_hides_values_read_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = secrets.token_hex(8)
    monkeypatch.setenv("W5_TOKEN", token)
    found = values(tmp_path, env={"env": "W5_TOKEN"})
    assert found.redact(f"log: {token}") == f"log: {token}"  # not read yet: nothing to hide
    found.resolve(["env"])
    assert found.redact(f"log: using token {token}!") == f"log: using token {SENSITIVE}!"


# -- local secret files -------------------------------------------------------------------


def test_secret_files_are_0600_in_0700_dirs_replaced_atomically_and_removed_with_their_dirs(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    files = LocalSecretFiles(root)
    parts = ("demo", "web", "hf")
    path = Path(files.write(parts, b"one"))
    assert path == root / "demo" / "web" / "hf" and path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (root, root / "demo", root / "demo" / "web"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    inode = path.stat().st_ino
    files.write(parts, b"two")
    assert path.read_bytes() == b"two" and path.stat().st_ino != inode  # renamed over, not rewritten
    files.write(("demo", "api", "hf"), b"x")
    assert files.list("demo") == (("api", "hf"), ("web", "hf"))
    files.remove(parts)
    assert not (root / "demo" / "web").exists() and (root / "demo" / "api" / "hf").exists()
    files.remove(("demo", "api", "hf"))
    files.remove(("demo", "api", "hf"))  # absent: not an error
    assert not (root / "demo").exists() and root.is_dir() and files.list("demo") == ()


def test_an_existing_root_keeps_its_mode_and_the_stack_directory_guards(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # as BERTH_SECRETS_DIR=/tmp would be: never narrowed by berth
    LocalSecretFiles(shared).write(("demo", "web", "hf"), b"v")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "demo").stat().st_mode) == 0o700


def test_secret_file_parts_cannot_leave_the_root(tmp_path: Path) -> None:
    with pytest.raises(ProviderError):
        LocalSecretFiles(tmp_path).write(("demo", "..", "x"), b"v")


# -- nothing serialisable holds a value ---------------------------------------------------


def test_config_hash_of_an_app_without_secrets_is_what_it_was_before_secrets() -> None:
    """Containers made before secrets existed keep their label: no upgrade replaces them."""
    app = AppConfig(name="web", port=8000, host_port=8000, image="busybox")
    attrs = container_attributes("demo", app, 0, "busybox")
    assert not {"secrets", "secret_env", "secret_versions"} & set(attrs)
    assert config_hash(attrs) == canonical_hash({k: attrs[k] for k in ("image", "command", "env", "port", "host_port")})
    labelled_before_renames = canonical_hash({k: attrs[k] for k in ("name", "image", "command", "env", "port", "host_port")})
    assert labelled_before_renames in legacy_config_hashes(attrs)


def test_config_hash_follows_the_mount_set_not_the_values() -> None:
    app = AppConfig(name="web", port=8000, host_port=8000, image="busybox", secrets=("hf",))
    one = container_attributes("demo", app, 0, "busybox", {"hf": "hmac-sha256:1"})
    two = container_attributes("demo", app, 0, "busybox", {"hf": "hmac-sha256:2"})
    assert config_hash(one) == config_hash(two)
    more = container_attributes("demo", app.model_copy(update={"secrets": ("hf", "x")}), 0, "busybox",
                                {"hf": "hmac-sha256:1", "x": "hmac-sha256:3"})
    assert config_hash(more) != config_hash(one)
    env = container_attributes("demo", app.model_copy(update={"secret_env": {"T": "hf"}}), 0, "busybox",
                               {"hf": "hmac-sha256:1"})
    assert config_hash(env) != config_hash(one)


def test_plan_json_and_masked_attributes_show_no_digest() -> None:
    from planner.plan import Action, Change, Plan

    attrs = {"name": "hf", "source": "env HF", "mount": "/secrets/hf", "value": "hmac-sha256:abc"}
    plan = Plan(stack="demo", changes=[Change(address="app.web.secret.hf@local", type="secret",
                                              action=Action.UPDATE, before=attrs | {"value": "hmac-sha256:old"},
                                              after=attrs, reasons=["value changed"])])
    text = json.dumps(plan_document(plan))
    assert "hmac-sha256" not in text and SENSITIVE in text
    assert masked({"secret_versions": {"hf": "hmac-sha256:x"}, "env": {}}) == {"secret_versions": SENSITIVE, "env": {}}


def test_no_value_in_the_container_spec_repr() -> None:
    from planner.resources import container_spec
    from state.address import Address

    app = AppConfig(name="web", port=8000, host_port=8000, image="busybox", secrets=("hf",), secret_env={"T": "hf"})
    attrs = container_attributes("demo", app, 0, "busybox", {"hf": "hmac-sha256:1"})
    spec = container_spec("demo", Address.container("web", 0, "local"), attrs, {"T": "s3cr3t-value"})
    assert spec.secret_env == {"T": "s3cr3t-value"} and "s3cr3t" not in repr(spec)
    assert [m.target for m in spec.secret_mounts] == ["/secrets/hf"]
    assert all("s3cr3t" not in v for v in spec.labels.values())


def test_loading_secrets_module_does_not_need_docker() -> None:
    import subprocess

    code = "import planner.secrets, providers.secret_files, sys; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[3], env={**os.environ})
    assert out.stdout.strip() == "False"


# -- which hosts list their secret files --------------------------------------------------


def test_secret_files_are_listed_only_where_the_stack_may_have_them(tmp_path: Path) -> None:
    from planner.desired import HostConfig
    from planner.refresh import secret_hosts
    from state.model import ResourceState, State

    def app(name: str, host: str, **extra: object) -> AppConfig:
        return AppConfig(name=name, port=8000, host_port=8000, image="busybox", host=host, **extra)

    hosts = {h: HostConfig(name=h, user="root", address=f"10.0.0.{i}") for i, h in enumerate(("gpu-a", "gpu-b", "gpu-c"))}
    apps = {"web": app("web", "gpu-a", secrets=("hf",)), "env": app("env", "local", secret_env={"T": "hf"}),
            "plain": app("plain", "gpu-b")}
    stack = Stack(name="demo", file=str(tmp_path / "berth.toml"), apps=apps, hosts=hosts)
    assert secret_hosts(stack, None) == {"gpu-a", "local"}
    # A file state records stays listed (a removed app's file must be found to be removed).
    key = "app.old.secret.hf@gpu-c"
    state = State(stack="demo", resources={key: ResourceState(address=key, type="secret", host="gpu-c")})
    assert secret_hosts(stack, state) == {"gpu-a", "local", "gpu-c"}
    # An app GPU placement may put on any host may have its files anywhere.
    placed = stack.model_copy(update={"apps": {"llm": app("llm", "local", gpus=1, host_auto=True, secrets=("hf",))}})
    assert secret_hosts(placed, None) == {"local", "gpu-a", "gpu-b", "gpu-c"}
    assert secret_hosts(stack.model_copy(update={"apps": {"plain": apps["plain"]}}), None) == set()


def test_an_apps_secret_files_removed_in_parallel_all_go_without_errors(tmp_path: Path) -> None:
    """destroy removes an app's secret files at once: a sibling taking the directory away
    mid-removal is not an error (clean-clone CI once failed on it)."""
    from concurrent.futures import ThreadPoolExecutor

    files = LocalSecretFiles(tmp_path)
    names = [f"s{i}" for i in range(6)]
    for _ in range(50):
        for name in names:
            files.write(("demo", "web", name), b"v")
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(lambda name: files.remove(("demo", "web", name)), names))
        assert not (tmp_path / "demo").exists()
