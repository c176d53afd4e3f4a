"""Weights end to end: the real `berth` against the real Docker engine and an SSH test host.

A local directory is copied into the host's weights cache once (content-addressed: every
run writes random bytes, so nothing of an earlier run can stand in), mounted read-only;
a second apply plans nothing and copies nothing; an env change replaces the container
with no weights step. An hf:// source is fetched on the host by the helper container from
a local stand-in of the Hub's file API (hub_standin.py: a stand-in, not the Hub), once.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from hub_standin import HubStandIn
from test_ssh_hosts import hosts, remote  # noqa: F401  (the SSH test hosts' fixtures)

STACK = """
[stack]
name = "{stack}"
{hosts}
[apps.llm]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
host = "{host}"
env = { MESSAGE = "{message}" }

[[apps.llm.weights]]
source = "./model"
mount = "/models/tiny"
ignore = ["*.md"]
"""


def make_model(path: Path) -> bytes:
    data = secrets.token_bytes(300_000)
    (path / "model").mkdir()
    (path / "model" / "weights.bin").write_bytes(data)
    (path / "model" / "sub").mkdir()
    (path / "model" / "sub" / "config.json").write_text('{"hidden": 64}')
    (path / "model" / "README.md").write_text("# not mounted\n")
    return data


@pytest.fixture(autouse=True)
def _test_hosts_cache_kept_clean(tmp_path_factory):
    """The SSH test hosts are network namespaces of this machine: their root's weights cache,
    /var/lib/berth/weights, is this machine's. Entries copied there from this run's
    directories are removed after each test (berth itself never deletes one); others, which
    tests running beside this one may mount, are left alone."""
    import json
    import shutil

    yield
    root, mine = Path("/var/lib/berth/weights"), str(tmp_path_factory.getbasetemp())
    for entry in (root / "entries").iterdir() if (root / "entries").is_dir() else ():
        try:
            source = json.loads((entry / "manifest.json").read_text()).get("source", "")
        except (OSError, ValueError):
            continue
        if source.startswith(mine):
            shutil.rmtree(entry, ignore_errors=True)
            shutil.rmtree(root / "partial" / entry.name, ignore_errors=True)


def stack(host: str, message: str, hosts: str = "") -> str:
    return STACK.replace("{host}", host).replace("{message}", message).replace("{hosts}", hosts)


def exec_in(container, *argv: str) -> tuple[int, bytes]:
    result = container.exec_run(list(argv))
    return result.exit_code, result.output


def only(containers: list):
    assert len(containers) == 1, containers
    return containers[0]


def check_mounted(container, data: bytes) -> None:
    code, out = exec_in(container, "cat", "/models/tiny/weights.bin")
    assert code == 0 and out == data
    assert exec_in(container, "cat", "/models/tiny/sub/config.json")[1] == b'{"hidden": 64}'
    assert exec_in(container, "ls", "/models/tiny/README.md")[0] != 0  # ignored
    code, out = exec_in(container, "sh", "-c", "echo x > /models/tiny/new")
    assert code != 0 and b"Read-only" in out


def test_a_local_directory_is_copied_once_and_mounted_read_only_on_local_docker(project, tmp_path):
    cache = tmp_path / "weights-cache"
    env = {"BERTH_WEIGHTS_DIR": str(cache)}
    project.copy_context("httpd")
    data = make_model(project.path)
    project.write(stack("local", "one"))
    out = project.berth("apply", "--auto-approve", env=env).stdout
    assert "app.llm.weights[0]@local" in out
    (entry,) = (cache / "entries").iterdir()
    assert (entry / "files" / "weights.bin").read_bytes() == data
    assert not (cache / "partial").exists() or not any((cache / "partial").iterdir())
    container = only(project.containers())
    check_mounted(container, data)

    stamp = (entry / "files" / "weights.bin").stat().st_mtime_ns
    assert project.berth("plan", "--detailed-exitcode", check=False, env=env).returncode == 0
    out = project.berth("apply", "--auto-approve", env=env).stdout
    assert "weights" not in out.split("berth will perform")[-1] or "No changes" in out
    assert (entry / "files" / "weights.bin").stat().st_mtime_ns == stamp

    project.write(stack("local", "two"))
    plan = project.berth("plan", "--no-color", env=env).stdout
    assert "app.llm.container[0]@local" in plan and "app.llm.weights[0]@local" not in plan
    out = project.berth("apply", "--auto-approve", env=env).stdout
    assert "fetch-weights" not in out and "app.llm.weights" not in out
    new = only(project.containers())
    assert new.id != container.id
    check_mounted(new, data)
    assert [p.name for p in (cache / "entries").iterdir()] == [entry.name]


def test_a_local_directory_travels_over_the_ssh_connection_once(project, remote):
    th1 = remote["th1"]
    project.copy_context("httpd")
    data = make_model(project.path)
    project.write(stack("th1", "one", th1.toml()))
    out = project.berth("apply", "--auto-approve").stdout
    assert "app.llm.weights[0]@th1" in out
    container = only(list(th1.stack_containers(project.stack).values()))
    check_mounted(container, data)
    mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == "/models/tiny")
    assert mount["Source"].startswith("/var/lib/berth/weights/entries/") and mount["RW"] is False

    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    project.write(stack("th1", "two", th1.toml()))
    out = project.berth("apply", "--auto-approve").stdout
    assert "app.llm.weights" not in out
    new = only(list(th1.stack_containers(project.stack).values()))
    assert new.id != container.id
    check_mounted(new, data)


HUB_STACK = """
[stack]
name = "{stack}"

[secrets.hf_access_token]
env = "W_HF_TOKEN"

[apps.llm]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "{message}" }

[[apps.llm.weights]]
source = "hf://tiny/model@main"
mount = "/models/tiny"
allow = ["*.json", "*.bin"]
secret = "hf_access_token"
"""


def test_an_hf_source_is_fetched_on_the_host_through_the_hub_stand_in_once(project, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    data = secrets.token_bytes(2 * (1 << 20))  # over the stand-in's LFS threshold: sha256 checked
    (repo / "model.bin").write_bytes(data)
    (repo / "config.json").write_text('{"hidden": 64}')
    (repo / "README.md").write_text("# skipped by allow\n")
    cache = tmp_path / "weights-cache"
    project.copy_context("httpd")
    # The helper container shares the host's network: the stand-in on this machine's loopback.
    token = "hf_" + secrets.token_hex(12)
    with HubStandIn(token=token) as hub:  # a gated repo: nothing without the token
        hub.add_repo("tiny/model", repo)
        env = {"BERTH_WEIGHTS_DIR": str(cache), "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1",
               "W_HF_TOKEN": token}
        project.write(HUB_STACK.replace("{message}", "one"))
        out = project.berth("apply", "--auto-approve", env=env, timeout=900).stdout
        assert "app.llm.weights[0]@local" in out
        assert hub.file_bytes_sent >= len(data)
        container = only(project.containers())
        assert exec_in(container, "cat", "/models/tiny/model.bin")[1] == data
        assert exec_in(container, "ls", "/models/tiny/README.md")[0] != 0
        for where in (out, project.berth("state", "show", "app.llm.weights[0]@local", env=env).stdout):
            assert token not in where
        assert token not in str(container.attrs)  # neither argv nor env of the app (nor the fetcher's)

        hub.reset_counts()
        assert project.berth("plan", "--detailed-exitcode", check=False, env=env).returncode == 0
        project.write(HUB_STACK.replace("{message}", "two"))
        out = project.berth("apply", "--auto-approve", env=env).stdout
        assert "app.llm.weights" not in out
        assert hub.requests == []  # neither the plan nor the replace asked the stand-in anything
        new = only(project.containers())
        assert new.id != container.id
        assert exec_in(new, "cat", "/models/tiny/model.bin")[1] == data


def test_an_interrupted_copy_to_an_ssh_host_resumes_sending_only_what_is_missing_or_wrong(project, remote):
    """A copy that died midway left partial/KEY on the host: the big file already whole,
    another one corrupt. The next apply sends only the corrupt one, and mounts the right bytes."""
    import re

    import paramiko

    from planner.desired import WeightsSource
    from planner.weights.cache import local_key
    from test_ssh_hosts import ROOT

    th1 = remote["th1"]
    project.copy_context("httpd")
    data = make_model(project.path)
    key = local_key(WeightsSource(source=str(project.path / "model"), mount="/models/tiny", ignore=("*.md",)))
    staging = f"/var/lib/berth/weights/partial/{key}/files"
    ssh = paramiko.SSHClient()
    ssh.load_host_keys(str(ROOT / "known_hosts"))
    ssh.connect(th1.address, username="root", key_filename=str(ROOT / "id_ed25519"), look_for_keys=False)
    try:
        for name, body in (("weights.bin", data), ("sub/config.json", b'{"hidden": 1}')):
            stdin, stdout, _ = ssh.exec_command(f"mkdir -p {staging}/sub && cat > {staging}/{name}")
            stdin.write(body)
            stdin.channel.shutdown_write()
            assert stdout.channel.recv_exit_status() == 0
    finally:
        ssh.close()
    project.write(stack("th1", "one", th1.toml()))
    out = project.berth("apply", "--auto-approve").stdout
    sent = re.search(r"app\.llm\.weights\[0\]@th1: Weights in cache after .*sent ([0-9.]+) MB", out)
    assert sent and float(sent.group(1)) < 0.01, out  # 14 bytes of config, not the 300 kB file again
    check_mounted(only(list(th1.stack_containers(project.stack).values())), data)


def test_an_hf_source_is_fetched_on_an_ssh_host_by_a_helper_image_sent_there(project, remote, tmp_path):
    """The helper image is built here and sent to the host; the fetch runs there, against the
    hub stand-in on the address the host reaches this machine at (its veth's peer)."""
    th1 = remote["th1"]
    repo = tmp_path / "repo"
    repo.mkdir()
    data = secrets.token_bytes(1 << 20)
    (repo / "model.bin").write_bytes(data)
    (repo / "config.json").write_text('{"hidden": 64}')
    project.copy_context("httpd")
    token = "hf_" + secrets.token_hex(12)
    text = HUB_STACK.replace("{message}", "one").replace('[apps.llm]', th1.toml() + '\n[apps.llm]\nhost = "th1"')
    with HubStandIn(host="10.203.1.1", token=token) as hub:
        hub.add_repo("tiny/model", repo)
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "W_HF_TOKEN": token}
        project.write(text)
        project.berth("apply", "--auto-approve", env=env, timeout=900)
        container = only(list(th1.stack_containers(project.stack).values()))
        assert exec_in(container, "cat", "/models/tiny/model.bin")[1] == data
        hub.reset_counts()
        project.write(text.replace('"one"', '"two"'))
        out = project.berth("apply", "--auto-approve", env=env).stdout
        assert "app.llm.weights" not in out and hub.requests == []
        assert exec_in(only(list(th1.stack_containers(project.stack).values())), "cat", "/models/tiny/model.bin")[1] == data


def test_a_changed_directory_sends_only_the_changed_file_to_an_ssh_host(project, remote):
    import re

    th1 = remote["th1"]
    project.copy_context("httpd")
    data = make_model(project.path)
    (project.path / "model" / "gone.txt").write_text("dropped in the new version\n")
    project.write(stack("th1", "one", th1.toml()))
    project.berth("apply", "--auto-approve")
    first = only(list(th1.stack_containers(project.stack).values()))
    (project.path / "model" / "sub" / "config.json").write_text('{"hidden": 128}')
    (project.path / "model" / "gone.txt").unlink()
    out = project.berth("apply", "--auto-approve").stdout
    sent = re.search(r"app\.llm\.weights\[0\]@th1: Weights in cache after .*sent ([0-9.]+) MB", out)
    assert sent and float(sent.group(1)) < 0.01, out  # the config, not the 300 kB file again
    new = only(list(th1.stack_containers(project.stack).values()))
    assert new.id != first.id
    assert exec_in(new, "cat", "/models/tiny/sub/config.json")[1] == b'{"hidden": 128}'
    assert exec_in(new, "cat", "/models/tiny/weights.bin")[1] == data
    assert exec_in(new, "ls", "/models/tiny/gone.txt")[0] != 0
    old_mount = next(m for m in first.attrs["Mounts"] if m["Destination"] == "/models/tiny")["Source"]
    reader = th1.client.containers.run(new.image.id, ["cat", "/old/sub/config.json"], detach=True,
                                       volumes={old_mount: {"bind": "/old", "mode": "ro"}})
    try:
        assert reader.wait(timeout=30)["StatusCode"] == 0
        seen = reader.logs(stdout=True, stderr=False)
    finally:
        reader.remove(force=True)
    assert seen == b'{"hidden": 64}'  # the old entry is as it was, though the new one began as its links


def test_a_url_pinned_by_its_sha256_is_fetched_once_and_planned_from_its_hash(project, tmp_path):
    import hashlib

    repo = tmp_path / "repo"
    repo.mkdir()
    data = secrets.token_bytes(1 << 20)
    (repo / "model.gguf").write_bytes(data)
    cache = tmp_path / "weights-cache"
    project.copy_context("httpd")
    with HubStandIn() as hub:
        hub.add_repo("tiny/model", repo)
        url = f"{hub.url}/tiny/model/resolve/main/model.gguf#sha256={hashlib.sha256(data).hexdigest()}"
        env = {"BERTH_WEIGHTS_DIR": str(cache)}
        project.write(stack("local", "one").replace('source = "./model"', f'source = "{url}"')
                      .replace('ignore = ["*.md"]', ""))
        plan = project.berth("plan", "--no-color", env=env).stdout
        assert "(known after apply)" not in plan  # the hash names the entry before anything is fetched
        project.berth("apply", "--auto-approve", env=env)
        container = only(project.containers())
        assert exec_in(container, "cat", "/models/tiny/model.gguf")[1] == data
        hub.reset_counts()
        assert project.berth("plan", "--detailed-exitcode", check=False, env=env).returncode == 0
        assert hub.requests == []
