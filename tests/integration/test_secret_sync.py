"""Secrets end to end: the real `berth` against the real Docker engine.

Every value is random per run, so a leak cannot hide behind a fixed string: each test
reads it back inside the container, then searches everything berth stores or prints,
and what the engine reports, and finds it nowhere else.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import stat
from pathlib import Path

import pytest

from providers.secret_files import default_root

SOURCES = """
[stack]
name = "{stack}"
secrets_file = "secrets.env"

[secrets.from_env]
env = "W5_SECRET"

[secrets.from_file]
file = "vault/token"

[secrets.from_cmd]
command = ["cat", "vault/cmd"]

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
secrets = ["from_env", "from_file", "from_cmd", "from_dotenv"]
"""

ROTATE = """
[stack]
name = "{stack}"

[secrets.token]
env = "W5_TOKEN"

[apps.model]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { READY_DELAY = "1" }
secrets = ["token"]

[apps.web]
build = "./httpd"
port = 8000
host_port = {port1}
readiness = "/ready"
depends_on = ["model"]
secret_env = { TOKEN = "token" }
"""


@pytest.fixture
def secret_project(project):
    """project, and its stack's secret directory removed even when a test fails midway."""
    yield project
    shutil.rmtree(default_root() / project.stack, ignore_errors=True)


def value(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(16)}"


def leaks(needles: list[str], **haystacks: str) -> list[str]:
    """Which haystack holds which needle (raw, or base64 as Docker and JSON might encode it)."""
    found = []
    for needle in needles:
        forms = (needle, base64.b64encode(needle.encode()).decode())
        found += [f"{needle} in {name}" for name, text in haystacks.items() if any(f in text for f in forms)]
    return found


def files_holding(directory: Path, needles: list[str]) -> list[str]:
    """Every file under directory (binary too: SQLite, WAL, diskcache blobs) holding a needle."""
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{needle} in {path}" for needle in needles if needle.encode() in data]
    return found


def container_of(project, app: str):
    (found,) = [c for c in project.containers() if c.labels["berth.app"] == app]
    return found


def cat(container, name: str) -> str:
    code, out = container.exec_run(["cat", f"/secrets/{name}"])
    assert code == 0, out
    return out.decode()


def test_each_source_is_mounted_and_the_value_is_stored_and_shown_nowhere(secret_project, docker_client):
    project = secret_project
    values = {name: value(name) for name in ("from_env", "from_file", "from_cmd", "from_dotenv")}
    needles = list(values.values())
    project.copy_context("httpd")
    (project.path / "vault").mkdir()
    (project.path / "vault" / "token").write_text(values["from_file"] + "\n")
    (project.path / "vault" / "cmd").write_text(values["from_cmd"])
    (project.path / "secrets.env").write_text(f"# not committed\nfrom_dotenv={values['from_dotenv']}\n")
    project.write(SOURCES)
    env = {"W5_SECRET": values["from_env"]}

    plan_text = project.berth("plan", env=env).stdout
    plan_json = project.berth("plan", "--json", env=env).stdout
    changes = {c["address"]: c for c in json.loads(plan_json)["changes"]}
    assert changes["app.web.secret.from_env@local"]["after"]["value"] == "(sensitive value)"
    assert changes["app.web.secret.from_env@local"]["after"]["source"] == "env W5_SECRET"
    assert "value  = (sensitive value)" in plan_text
    # Saved, then applied exactly: the digests in the file are checked against the values
    # read at apply, so the key they were made with must already be kept.
    project.berth("plan", "--out", "saved.plan", env=env)
    saved_plan = (project.path / "saved.plan").read_text()
    applied = project.berth("apply", "saved.plan", env=env)
    assert "Apply complete! Resources: 6 added, 0 changed, 0 destroyed." in applied.stdout

    web = container_of(project, "web")
    for name, expected in values.items():
        assert cat(web, name) == expected  # one trailing newline of the file source stripped
    info = docker_client.api.inspect_container(web.id)
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {f"/secrets/{name}" for name in values}
    root = default_root() / project.stack / "web"
    for name in values:
        mount = mounts[f"/secrets/{name}"]
        assert mount["Type"] == "bind" and mount["RW"] is False and mount["Source"] == str(root / name)
        assert stat.S_IMODE(os.stat(mount["Source"]).st_mode) == 0o600
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and stat.S_IMODE(root.parent.stat().st_mode) == 0o700
    assert project.berth("plan", "--detailed-exitcode", check=False, env=env).returncode == 0

    state_show = "".join(project.berth("state", "show", address, *flags).stdout
                         for address in ("app.web.secret.from_env@local", "app.web.container[0]@local")
                         for flags in ((), ("--json",)))
    assert "(sensitive value)" in state_show and "hmac-sha256" not in state_show
    state_pull = project.berth("state", "pull").stdout
    history = project.berth("state", "history", "--json").stdout
    status = project.berth("status", "--json").stdout
    assert "app.web.secret.from_env@local" in state_pull
    image = docker_client.api.inspect_image(info["Image"])
    assert not leaks(
        needles, plan_text=plan_text, plan_json=plan_json, apply=applied.stdout + applied.stderr,
        state_show=state_show, state_pull=state_pull, history=history, status=status, saved_plan=saved_plan, inspect=json.dumps(info), image=json.dumps(image),
        labels=json.dumps([c.labels for c in project.containers()]),
    )
    assert not files_holding(project.path / ".berth", needles)
    assert (project.path / ".berth" / "secrets.key").stat().st_mode & 0o777 == 0o600

    # Every source gone: one plan error per secret, naming it and its source; no value
    # and nothing touched (same container, not restarted; files as they were).
    (project.path / "vault" / "token").unlink()
    (project.path / "vault" / "cmd").unlink()
    (project.path / "secrets.env").write_text("other=1\n")
    started = info["State"]["StartedAt"]
    for command in (("plan",), ("apply", "--auto-approve")):
        failed = project.berth(*command, check=False)  # W5_SECRET not set
        assert failed.returncode == 1
        err = failed.stderr
        assert "secret from_env: environment variable W5_SECRET is not set" in err
        assert "secret from_file: file vault/token does not exist" in err
        assert "secret from_cmd: command `cat vault/cmd` exited with status 1" in err
        assert "secret from_dotenv: secrets file secrets.env has no line from_dotenv=..." in err
        assert "berth.toml:" in err and "secrets.from_file" in err
        assert not leaks(needles, stdout=failed.stdout, stderr=err)
    after = docker_client.api.inspect_container(web.id)
    assert after["State"]["StartedAt"] == started and after["State"]["Running"]
    assert cat(web, "from_file") == values["from_file"]

    # Destroy needs no values: it removes the files and the directories berth made.
    destroyed = project.berth("destroy", "--auto-approve")
    assert "Destroy complete! Resources: 6 destroyed." in destroyed.stdout
    assert not root.parent.exists() and project.labelled() == []
    assert not files_holding(project.path / ".berth", needles)


def test_rotation_restarts_a_mount_and_replaces_a_secret_env_in_dependency_order(secret_project, docker_client):
    project = secret_project
    old, new = value("old"), value("new")
    project.copy_context("httpd")
    project.write(ROTATE)
    project.berth("apply", "--auto-approve", env={"W5_TOKEN": old})
    model, web = container_of(project, "model"), container_of(project, "web")
    assert cat(model, "token") == old and cat(web, "token") == old
    model_env = docker_client.api.inspect_container(model.id)["Config"]["Env"]
    web_env = docker_client.api.inspect_container(web.id)["Config"]["Env"]
    assert f"TOKEN={old}" in web_env  # asked for with secret_env
    assert not leaks([old], model_env=json.dumps(model_env))  # only mounted: not in docker inspect
    model_started = docker_client.api.inspect_container(model.id)["State"]["StartedAt"]

    plan = project.berth("plan", "--detailed-exitcode", check=False, env={"W5_TOKEN": new})
    plan_json = project.berth("plan", "--json", env={"W5_TOKEN": new}).stdout
    assert plan.returncode == 2
    assert "# app.model.secret.token@local will be updated in place (value changed)" in plan.stdout
    assert "~ value  = (sensitive value) -> (sensitive value)" in plan.stdout
    assert "(secret token changed: the container is restarted to read it)" in plan.stdout
    assert "(secret token changed; as environment variable TOKEN it needs a new container)" in plan.stdout
    assert "Plan: 1 to add, 3 to change, 1 to destroy." in plan.stdout
    applied = project.berth("apply", "--auto-approve", env={"W5_TOKEN": new})
    assert "1 added, 3 changed, 1 destroyed" in applied.stdout

    # The mount: same container, restarted, reading the new file.
    assert container_of(project, "model").id == model.id
    model_info = docker_client.api.inspect_container(model.id)
    assert model_info["State"]["StartedAt"] != model_started and model_info["State"]["Running"]
    assert cat(model, "token") == new
    # secret_env: a new container with the new value in its environment.
    web_now = container_of(project, "web")
    assert web_now.id != web.id and cat(web_now, "token") == new
    assert f"TOKEN={new}" in docker_client.api.inspect_container(web_now.id)["Config"]["Env"]
    # depends_on: web starts only once model answered its probe again.
    lines = applied.stdout.splitlines()
    ready = lines.index(next(l for l in lines if l.startswith("app.model.container[0]@local: Ready")))
    creating = lines.index("app.web.container[0]@local: Creating...")
    assert lines.index("app.model.container[0]@local: Modifying...") < ready < creating
    assert "restarted, id=" in applied.stdout

    assert project.berth("plan", "--detailed-exitcode", check=False, env={"W5_TOKEN": new}).returncode == 0
    assert not leaks([old, new], plan=plan.stdout + plan.stderr, plan_json=plan_json,
                     apply=applied.stdout + applied.stderr,
                     labels=json.dumps([c.labels for c in project.containers()]))
    assert not files_holding(project.path / ".berth", [old, new])
    project.berth("destroy", "--auto-approve")
    assert not (default_root() / project.stack).exists()


def test_plan_without_refresh_needs_no_secret_value_that_was_applied(project):
    project.copy_context("httpd")
    project.write(ROTATE)
    token = secrets.token_hex(16)
    project.berth("apply", "--auto-approve", env={"W5_TOKEN": token})
    # Unset is what CI without credentials has.
    unset = without(project, "W5_TOKEN", "plan", "--refresh=false", "--detailed-exitcode")
    assert unset.returncode == 0, unset.stderr
    assert "environment variable W5_TOKEN is not set; planned with the digest of the value last applied" in unset.stdout
    assert token not in unset.stdout + unset.stderr
    rotated = project.berth("plan", "--refresh=false", "--detailed-exitcode", check=False,
                            env={"W5_TOKEN": secrets.token_hex(16)})
    assert rotated.returncode == 2, "a value that can be read is compared as before"
    online = without(project, "W5_TOKEN", "plan")
    assert online.returncode == 1 and "W5_TOKEN is not set" in online.stderr, "a plan that reads the hosts still needs it"


def without(project, variable: str, *args: str):
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != variable} | {"COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(project.argv(*args), cwd=project.path, env=env, capture_output=True, text=True, timeout=120)
