"""A platform app's image is rebuilt only when what goes into it changes (issue 17 item 16):
an edit to cerebrium.toml or config.yaml that changes only how the container runs (port,
entrypoint, replicas, limits, probes, scaling) keeps the content hash, so the plan replaces
the container and keeps the image; an edit that changes the image's content changes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.stackfile.load import load_stack
from planner.refresh import content_hashes

CEREBRIUM = """\
[deployment]
name = "app"
include = ["./*"]

[runtime.python]
entrypoint = ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]
port = 8000
healthcheck_endpoint = "/health"

[hardware]
cpu = 2

[scaling]
min_replicas = 1

[dependencies.pip]
fastapi = "latest"
"""

TRUSS = """\
model_name: m
base_image:
  image: debian:bookworm-slim
requirements:
  - fastapi
docker_server:
  start_command: python3 -m http.server 8000
  server_port: 8000
  predict_endpoint: /
  readiness_endpoint: /
  liveness_endpoint: /
resources:
  cpu: "1"
"""


def image_hash(file: Path) -> str:
    stack = load_stack(str(file))
    [value] = content_hashes(stack, None).values()
    return value


@pytest.mark.parametrize(("old", "new"), [
    pytest.param('"--port", "8000"]\nport = 8000', '"--port", "9000"]\nport = 9000', id="port-and-entrypoint"),
    pytest.param("min_replicas = 1", "min_replicas = 3", id="replicas"),
    pytest.param("cpu = 2", "cpu = 4\nmemory = 8.0", id="hardware"),
    pytest.param('healthcheck_endpoint = "/health"', 'healthcheck_endpoint = "/live"\nreadycheck_endpoint = "/ready"',
                 id="probes"),
    pytest.param("min_replicas = 1", "min_replicas = 1\ncooldown = 60", id="ignored-scaling-key"),
])
def test_a_cerebrium_edit_that_does_not_reach_the_image_keeps_its_hash(tmp_path: Path, old: str, new: str) -> None:
    (tmp_path / "main.py").write_text("app = None\n")
    file = tmp_path / "cerebrium.toml"
    file.write_text(CEREBRIUM)
    before = image_hash(file)
    file.write_text(CEREBRIUM.replace(old, new))
    assert image_hash(file) == before


@pytest.mark.parametrize(("old", "new"), [
    pytest.param('fastapi = "latest"', 'fastapi = "0.110.0"', id="pip-dependency"),
    pytest.param('[runtime.python]', '[runtime.python]\npython_version = "3.12"', id="python-version"),
    pytest.param('[runtime.python]', '[runtime.python]\nshell_commands = ["echo hi"]', id="shell-commands"),
])
def test_a_cerebrium_edit_that_reaches_the_image_changes_its_hash(tmp_path: Path, old: str, new: str) -> None:
    (tmp_path / "main.py").write_text("app = None\n")
    file = tmp_path / "cerebrium.toml"
    file.write_text(CEREBRIUM)
    before = image_hash(file)
    file.write_text(CEREBRIUM.replace(old, new))
    assert image_hash(file) != before


def test_the_app_s_own_files_still_change_the_hash(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("app = None\n")
    file = tmp_path / "cerebrium.toml"
    file.write_text(CEREBRIUM)
    before = image_hash(file)
    (tmp_path / "main.py").write_text("app = 1\n")
    assert image_hash(file) != before


@pytest.mark.parametrize(("old", "new"), [
    pytest.param("http.server 8000\n  server_port: 8000", "http.server 9000\n  server_port: 9000", id="port-and-command"),
    pytest.param('cpu: "1"', 'cpu: "2"\n  memory: 2Gi', id="resources"),
    pytest.param("readiness_endpoint: /", "readiness_endpoint: /ready", id="probes"),
])
def test_a_truss_edit_that_does_not_reach_the_image_keeps_its_hash(tmp_path: Path, old: str, new: str) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(TRUSS)
    before = image_hash(file)
    file.write_text(TRUSS.replace(old, new))
    assert image_hash(file) == before


def test_a_truss_edit_that_reaches_the_image_changes_its_hash(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(TRUSS)
    before = image_hash(file)
    file.write_text(TRUSS.replace("  - fastapi\n", "  - fastapi\n  - numpy\n"))
    assert image_hash(file) != before
