"""The platforms' own formats applied for real on the local engine.

One Cerebrium python-runtime app (berth builds it: FastAPI and uvicorn from PyPI on the
local debian:bookworm-slim base, with uv), applied alone from its directory; one Truss
docker_server app (a layer on the local busybox:latest, its start command serving HTTP),
applied as an app of a berth.toml through `from =`. Each: it serves, the plan shows where
it came from, and a second plan is empty. The vLLM example is only planned: its image
cannot be pulled here, and the plan says so.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.request

import pytest
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_cerebrium_python_runtime_applies_alone(project) -> None:
    shutil.copy(EXAMPLES / "cerebrium-fastapi" / "main.py", project.path / "main.py")
    project.write("""
        [deployment]
        name = "{stack}"

        [runtime.python]
        entrypoint = ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "{port0}"]
        port = {port0}
        healthcheck_endpoint = "/health"
        readycheck_endpoint = "/ready"
        python_version = "3.11"
        docker_base_image_url = "debian:bookworm-slim"
        use_uv = true

        [dependencies.pip]
        fastapi = "latest"
        uvicorn = "latest"

        [scaling]
        min_replicas = 0
    """, name="cerebrium.toml")

    plan = project.berth("plan").stdout
    assert f"App {project.stack}, from cerebrium.toml (Cerebrium):" in plan
    assert "readiness    = GET /ready" in plan and "liveness     = GET /health" in plan
    assert f"Warning: app {project.stack}: ignored cerebrium.toml:19: scaling.min_replicas: scaling to zero" in plan

    project.berth("apply", "--auto-approve", timeout=600)
    assert project.get(project.ports[0], "/ready") == (200, '"OK"')
    request = urllib.request.Request(f"http://127.0.0.1:{project.ports[0]}/hello", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"message": "Hello Cerebrium!"}
    # berth's own .berth/ (state, build files) sits in the app directory but never in the image
    unchanged = project.berth("plan", "--detailed-exitcode", check=False)
    assert unchanged.returncode == 0 and "from cerebrium.toml (Cerebrium):" not in unchanged.stdout, \
        "the app's block is shown when it changes"
    assert f"App {project.stack}, from cerebrium.toml (Cerebrium):" in project.berth("plan", "-v").stdout

    # A stack of one is not named twice; one named the old way is renamed in place.
    (container,) = [c for c in project.containers() if c.labels.get("berth.address", "").startswith("app.")]
    assert container.name == f"berth-{project.stack}-0"
    container.rename(f"berth-{project.stack}-{project.stack}-0")
    plan = project.berth("plan").stdout
    assert f'~ name' in plan and f'"berth-{project.stack}-{project.stack}-0" -> "berth-{project.stack}-0"' in plan
    project.berth("apply", "--auto-approve")
    container.reload()
    assert container.name == f"berth-{project.stack}-0" and container.status == "running"

    project.berth("destroy", "--auto-approve")
    assert project.labelled() == []


def test_truss_docker_server_applies_through_from(project) -> None:
    truss = project.path / "server"
    truss.mkdir()
    (truss / "config.yaml").write_text(project.render("""
        model_name: tiny-server
        base_image:
          image: busybox:latest
        docker_server:
          start_command: mkdir -p /www && cp /built /www/health && echo "$GREETING" > /www/index.html && exec httpd -f -p {port0} -h /www
          server_port: {port0}
          readiness_endpoint: /health
          liveness_endpoint: /health
          predict_endpoint: /
        build_commands:
          - echo built > /built
        environment_variables:
          GREETING: from truss
        runtime:
          predict_concurrency: 2
          health_checks:
            startup_threshold_seconds: 60
    """))
    project.write("""
        [stack]
        name = "{stack}"

        [apps.server]
        from = "server/config.yaml"
        host_port = {port1}
        env = { GREETING = "from berth.toml" }
    """)

    plan = project.berth("plan", "--json").stdout
    entry = json.loads(plan)["apps"]["server"]
    assert entry["origin"] == "server/config.yaml (Truss)"
    assert entry["port"] == project.ports[0] and entry["host_port"] == project.ports[1]
    assert entry["readiness_timeout"] == 60 and entry["predict_concurrency"] == 2
    assert entry["build"]["base"] == "busybox:latest" and entry["image_id"].startswith("sha256:")
    text = project.berth("plan").stdout
    assert "busybox:latest is a mutable tag: host local has it as sha256:" in text

    project.berth("apply", "--auto-approve")
    assert project.get(project.ports[1], "/health") == (200, "built\n")
    assert project.get(project.ports[1], "/") == (200, "from berth.toml\n")  # the table's env wins
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_vllm_example_needs_its_token_and_a_gpu(project) -> None:
    """The vLLM Truss as it is, on this machine: its secret comes from HF_ACCESS_TOKEN (no
    [secrets] table names a source), and its L4 must be on the host. test_ssh_hosts plans
    it onto a (simulated) L4 host."""
    shutil.copytree(EXAMPLES / "truss-vllm", project.path / "vllm")
    result = project.berth("plan", "-f", str(project.path / "vllm"), "--detailed-exitcode", check=False)
    assert result.returncode == 1
    assert "HF_ACCESS_TOKEN" in result.stderr and "is not set" in result.stderr, result.stderr
    assert "config.yaml:12: apps.vllm-model-server.secrets: secret hf_access_token" in result.stderr  # its line
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: whether it has an L4 is its own affair")
    token = "hf_" + secrets.token_hex(12)
    result = project.berth("plan", "-f", str(project.path / "vllm"), "--detailed-exitcode", check=False,
                           env={"HF_ACCESS_TOKEN": token})
    assert result.returncode == 1, result.stdout
    assert ("config.yaml (Truss):10: apps.vllm-model-server: app vllm-model-server asks for accelerator L4, "
            "but host local has none") in result.stderr  # resources.accelerator's line
    assert token not in result.stdout + result.stderr
