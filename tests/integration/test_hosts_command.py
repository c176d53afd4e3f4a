"""`berth hosts` against the simulated hosts of scripts/testhosts.sh (real sshd, real
dockerd per host). No GPU exists here: th1's `nvidia-smi` is a STAND-IN printing canned
CSV (two H100), th3 has none, and for the local machine a stand-in is put on PATH."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT = Path("/run/berth-testhosts")


@pytest.fixture(scope="module", autouse=True)
def testhosts() -> None:
    subprocess.run(["bash", str(REPO / "scripts/testhosts.sh"), "up"], check=True, capture_output=True)


def host(name: str, ssh: str) -> str:
    return (f'[hosts.{name}]\nssh = "{ssh}"\nidentity_file = "{ROOT / "id_ed25519"}"\n'
            f'known_hosts = "{ROOT / "known_hosts"}"\n')


def test_hosts_lists_docker_and_gpus_and_names_what_failed(project, tmp_path):
    # th1 and th3 as they are; "gone" is th2's address on a port nothing listens on.
    project.write(f'[stack]\nname = "{{stack}}"\n'
                  + host("th1", "root@10.203.1.2") + f'docker_socket = "{ROOT / "th1/docker.sock"}"\n'
                  + host("th3", "root@10.203.3.2") + f'docker_socket = "{ROOT / "th3/docker.sock"}"\n'
                  + 'build_on = "host"\n'
                  + host("gone", "root@10.203.2.2:2")
                  + '[apps.web]\nimage = "busybox:latest"\nport = 8000\n')
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    (stand_in / "nvidia-smi").write_text("#!/bin/sh\n# nvidia-smi STAND-IN: not CSV at all\necho 'NVIDIA-SMI has failed'\n")
    (stand_in / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{stand_in}:/usr/local/bin:/usr/bin:/bin"}

    shown = project.berth("hosts", "--json", check=False, env=env)
    assert shown.returncode == 1, shown.stdout + shown.stderr  # one host failed
    rows = {row["host"]: row for row in json.loads(shown.stdout)["hosts"]}
    assert list(rows) == ["local", "th1", "th3", "gone"]
    th1 = rows["th1"]
    assert th1["address"] == "root@10.203.1.2:22" and th1["docker"] and "error" not in th1
    # The engines' architecture (docker info's x86_64, as image platforms name it): every
    # engine here is amd64, so a plan's architecture check passes for these hosts.
    assert th1["architecture"] == rows["th3"]["architecture"] == "amd64"
    assert [(g["index"], g["name"], g["memory_mib"]) for g in th1["gpus"]] == [
        ("0", "NVIDIA H100 80GB HBM3", 81559), ("1", "NVIDIA H100 80GB HBM3", 81559)]
    assert all(g["uuid"].startswith("GPU-") for g in th1["gpus"])
    assert rows["th3"]["gpus"] == [] and "error" not in rows["th3"]  # no nvidia-smi: no GPUs
    assert rows["gone"]["error"] == "host gone (root@10.203.2.2:2) cannot be reached: Connection refused"
    # nvidia-smi answering nonsense is an error naming the host, not a traceback; the
    # engine was reached, so its version is still shown.
    assert rows["local"]["error"].startswith("host local: cannot read nvidia-smi's answer")
    assert rows["local"]["docker"]
    assert "Traceback" not in shown.stderr
    # The builder: Debian's docker.io CLI (scripts/setup.sh installs it) has BuildKit built in.
    builder = rows["local"]["builder"]
    assert builder.startswith("BuildKit (built into ") and builder == th1["builder"] == rows["th3"]["builder"]
    assert (th1["build_on"], rows["th3"]["build_on"]) == ("local", "host")

    text = project.berth("hosts", check=False, env=env).stdout
    lines = [" ".join(line.split()) for line in text.splitlines()]  # columns are padded
    assert lines[0] == f"local this machine Docker {rows['local']['docker']} (amd64) GPUs unknown builds: {builder}"
    assert lines[1].startswith("host local: cannot read nvidia-smi's answer")
    assert lines[2] == f"th1 root@10.203.1.2:22 Docker {th1['docker']} (amd64) 2 GPUs builds: on local, image sent"
    assert lines[3] == f"0 NVIDIA H100 80GB HBM3 81559 MiB {th1['gpus'][0]['uuid']}"
    assert lines[4] == f"1 NVIDIA H100 80GB HBM3 81559 MiB {th1['gpus'][1]['uuid']}"
    assert lines[5] == f"th3 root@10.203.3.2:22 Docker {rows['th3']['docker']} (amd64) no GPUs builds: {builder}"
    assert lines[6:] == ["gone root@10.203.2.2:2 unreachable", rows["gone"]["error"]]


def test_a_host_whose_docker_socket_refuses_is_named_with_the_socket(project):
    """The SSH connection works but the host has no engine at docker_socket: the error
    names the host, its address and that socket (not berth's local forwarder)."""
    project.write(f'[stack]\nname = "{{stack}}"\n' + host("th3", "root@10.203.3.2")
                  + 'docker_socket = "/run/berth-no-such-engine.sock"\n'
                  + '[apps.web]\nimage = "busybox:latest"\nport = 8000\nhost = "th3"\n')
    for command in (("plan",), ("hosts",)):
        result = project.berth(*command, check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        assert ("host th3 (root@10.203.3.2:22): cannot reach its Docker engine at /run/berth-no-such-engine.sock: "
                "Connect failed") in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_resources_on_a_host_no_longer_defined_are_refused_not_forgotten(project):
    import docker

    th3 = host("th3", "root@10.203.3.2") + f'docker_socket = "{ROOT / "th3/docker.sock"}"\n'
    head = f'[stack]\nname = "{{stack}}"\n'
    web = '[apps.web]\nimage = "busybox:latest"\nport = 8000\nhost_port = {port0}\nhost = "th3"\ncommand = ["httpd", "-f", "-p", "8000"]\n'
    engine = docker.DockerClient(base_url=f"unix://{ROOT / 'th3/docker.sock'}", timeout=60)
    had_busybox = any("busybox:latest" in (i.get("RepoTags") or ()) for i in engine.api.images())  # no inspect per image: other tests remove theirs meanwhile
    try:
        project.write(head + th3 + web)
        project.berth("apply", "--auto-approve")
        assert engine.containers.list(filters={"label": f"berth.stack={project.stack}"})

        project.write(head)  # the host and its app gone from the file
        for command in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
            refused = project.berth(*command, check=False)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert ("the state has 2 resources on host th3 (app.web.container[0]@th3, app.web.image@th3), but the "
                    "stack file no longer defines [hosts.th3]") in refused.stderr
        assert engine.containers.list(filters={"label": f"berth.stack={project.stack}"})  # nothing touched

        project.write(head + th3)  # the host back, without the app: destroy removes it there
        emptied = project.berth("apply", "--auto-approve", check=False)  # no apps at all: refused (issue 17 item 5)
        assert emptied.returncode == 1 and "the stack file declares no apps" in emptied.stderr
        project.berth("destroy", "--auto-approve")
        assert not engine.containers.list(all=True, filters={"label": f"berth.stack={project.stack}"})
        assert project.berth("state", "list").stdout.strip() == ""
    finally:
        for c in engine.containers.list(all=True, filters={"label": f"berth.stack={project.stack}"}):
            c.remove(force=True)
        if not had_busybox:  # berth sent it for this test: leave th3 as the test found it
            try:
                engine.images.remove("busybox:latest")
            except docker.errors.APIError:
                pass  # another test run is using it
        engine.close()
