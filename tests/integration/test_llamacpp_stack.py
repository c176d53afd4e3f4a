"""A real model server through berth, end to end: examples/llamacpp-cpu (llama.cpp's
llama-server, chat and embeddings) applied by the real `berth` against the real engine and
an SSH test host, with its tiny weights delivered through `weights` from a local directory
and mounted read-only, a named volume, and the shared-memory, IPC and ulimit settings
model servers need. The server image and the weights are the ones test_realserver.py
makes (built once, then found by content hash). BERTH_SKIP_REALSERVER=1 skips this file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from test_realserver import _post, llama_server_image, serving, tiny_weights, wait_ready  # noqa: F401 (fixtures)
from test_ssh_hosts import hosts, remote  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llamacpp-cpu" / "berth.toml"
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0, "max_tokens": 8, "seed": 1}

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_SKIP_REALSERVER") == "1",
                                reason="BERTH_SKIP_REALSERVER=1")


def example(project, weights: Path, *, host: str | None = None, apps: tuple[str, ...] = ("llm", "embed"),
            head: str = "") -> str:
    """The example as the test's own stack: its name, ports and (optionally) host, its
    weights directory copied beside it, only `apps` kept."""
    shutil.copytree(weights, project.path / "weights")
    # A file of the test's own: the host's weights cache is shared by every stack, so the
    # same bytes another run sent would (rightly) cost this one nothing.
    (project.path / "weights" / "RUN").write_text(project.stack)
    text = EXAMPLE.read_text()
    text = text.replace('name = "llamacpp"', 'name = "{stack}"', 1)
    text = re.sub(r"gateway_port = \d+", "gateway_port = {port10}\ngateway_admin_port = {port11}", text, count=1)
    tables = re.split(r"(?m)^(?=\[)", text)
    kept = [t for t in tables if not re.match(r"\[\[?apps\.(\w+)", t) or re.match(r"\[\[?apps\.(\w+)", t)[1] in apps]
    text = "".join(kept)
    if host:
        text = re.sub(r"(?m)^(\[apps\.\w+\]\n)", rf'\1host = "{host}"\n', text)
    project.write(head + text)
    return text


def volumes_of(docker_client, stack: str) -> list[str]:
    return [v.name for v in docker_client.volumes.list(filters={"label": f"berth.stack={stack}"})]


def plan_doc(project) -> dict:
    return json.loads(project.berth("plan", "--json").stdout)


def test_the_example_serves_chat_and_embeddings_and_a_replace_fetches_nothing(
        project, docker_client, llama_server_image, tiny_weights):  # noqa: F811
    example(project, tiny_weights)
    gateway = f"http://127.0.0.1:{project.ports[10]}"
    first = plan_doc(project)
    weights_steps = [c["address"] for c in first["changes"] if ".weights[" in c["address"]]
    assert weights_steps == ["app.embed.weights[0]@local", "app.llm.weights[0]@local"], first["changes"]
    applied = project.berth("apply", "--auto-approve", timeout=600)
    assert applied.stdout.count("sent 9.1 MB]") == 1 and "nothing sent]" in applied.stdout, \
        "one source, one copy: the second app finds it in the host's cache"

    status, answer = _post(gateway + "/llm/predict", CHAT)
    assert status == 200, answer
    assert answer["choices"] and answer["choices"][0]["message"]["role"] == "assistant"
    status, embedded = _post(gateway + "/embed/predict", {"input": "hello world"})
    assert status == 200 and len(embedded["data"][0]["embedding"]) == 64, embedded

    (llm,) = [c for c in project.containers() if c.labels.get("berth.address", "").startswith("app.llm.container")]
    host_config = llm.attrs["HostConfig"]
    assert host_config["ShmSize"] == 256 * 2**20
    assert host_config["IpcMode"] == "private"
    assert host_config["Ulimits"] == [{"Name": "core", "Soft": 0, "Hard": 0}]
    mounts = {m["Destination"]: m for m in llm.attrs["Mounts"]}
    assert mounts["/models/tiny"]["RW"] is False
    assert mounts["/cache"]["Type"] == "volume" and mounts["/cache"]["RW"] is True
    assert llm.exec_run(["sh", "-c", "echo kept > /cache/marker"]).exit_code == 0
    assert llm.exec_run(["sh", "-c", "echo x > /models/tiny/x"]).exit_code != 0, "weights are read-only"

    # Nothing changed: no step at all, the weights included.
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0

    # An env change replaces the chat server: no weights step, no image sent.
    project.write(project.file.read_text().replace('env = { LLAMA_CACHE = "/cache" }',
                                                   'env = { LLAMA_CACHE = "/cache", LLAMA_ARG_N_PREDICT = "16" }'))
    changed = plan_doc(project)
    addresses = [c["address"] for c in changed["changes"]]
    # the gateway's routes follow the new replica's port (an update in place)
    assert addresses == ["app.llm.container[0]@local", "gateway@local"], addresses
    assert [c["action"] for c in changed["changes"]] == ["replace", "update"]
    project.berth("apply", "--auto-approve", timeout=600)
    (new,) = [c for c in project.containers() if c.labels.get("berth.address", "").startswith("app.llm.container")]
    assert new.id != llm.id
    assert new.exec_run(["cat", "/cache/marker"]).output.strip() == b"kept", "the named volume outlived the replace"
    assert _post(gateway + "/llm/predict", CHAT)[1]["choices"][0]["message"]["content"] \
        == answer["choices"][0]["message"]["content"], "temperature 0: the same answer after the replace"

    (volume,) = volumes_of(docker_client, project.stack)
    destroyed = project.berth("destroy", "--auto-approve")
    assert "kept: volume.llm-cache@local (destroy --volumes removes it)" in destroyed.stdout, destroyed.stdout
    assert volumes_of(docker_client, project.stack) == [volume], "destroy keeps named volumes"
    project.berth("destroy", "--volumes", "--auto-approve")
    assert volumes_of(docker_client, project.stack) == []
    assert applied.returncode == 0


def test_the_same_stack_on_an_ssh_host_answers_as_docker_run_does(
        project, remote, docker_client, llama_server_image, tiny_weights):  # noqa: F811
    th3 = remote["th3"]
    with serving(docker_client, llama_server_image, tiny_weights, "--ctx-size", "512") as (_c, base):
        wait_ready(base)
        expected = _post(base + "/v1/chat/completions", CHAT)[1]["choices"][0]["message"]["content"]
    text = example(project, tiny_weights, host="th3", apps=("llm",))
    project.write(text.replace("[apps.llm]", th3.toml() + "\n[apps.llm]", 1))
    project.berth("apply", "--auto-approve", timeout=900)
    status, answer = _post(f"http://{th3.address}:{project.ports[10]}/llm/predict", CHAT)
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == expected
    (llm,) = [c for a, c in th3.stack_containers(project.stack).items() if a.startswith("app.llm.container")]
    assert {m["Destination"]: m["RW"] for m in llm.attrs["Mounts"]}["/models/tiny"] is False
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    project.berth("destroy", "--volumes", "--auto-approve", timeout=300)
