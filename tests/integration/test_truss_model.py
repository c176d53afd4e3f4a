"""A model-class Truss (model/model.py with load() and predict()) applied for real: the
truss library renders its build context, berth builds it on the local debian:bookworm-slim
base (Baseten's server base cannot be pulled here), Truss's own server answers its predict
route through the gateway, and a second plan is empty. The build installs the server's
packages from PyPI."""

from __future__ import annotations

import json
import urllib.request

MODEL = '''
import os
from pathlib import Path


class Model:
    def __init__(self, **kwargs):
        self._greeting = None

    def load(self):
        # secrets at /secrets/NAME, as Truss mounts them; environment_variables as set
        secret = Path("/secrets/greeting_secret").read_text().strip()
        self._greeting = f"{os.environ['GREETING']} {secret}"

    def predict(self, model_input):
        return {"greeting": self._greeting, "echo": model_input, "doubled": [2 * x for x in model_input["xs"]]}
'''


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_model_class_truss_answers_predict_through_the_gateway(project, monkeypatch) -> None:
    truss = project.path / "echo"
    (truss / "model").mkdir(parents=True)
    (truss / "model" / "model.py").write_text(MODEL)
    (truss / "config.yaml").write_text("""
model_name: echo-model
python_version: py311
requirements:
  - six==1.16.0
environment_variables:
  GREETING: hello
secrets:
  greeting_secret: null
resources:
  cpu: "1"
  memory: 2Gi
  use_gpu: false
runtime:
  health_checks:
    startup_threshold_seconds: 300
""")
    project.write("""
        [stack]
        name = "{stack}"
        gateway_port = {port10}
        gateway_admin_port = {port11}

        [apps.echo]
        from = "echo/config.yaml"
    """)
    monkeypatch.setenv("GREETING_SECRET", "from-a-secret")

    entry = json.loads(project.berth("plan", "--json").stdout)["apps"]["echo"]
    assert entry["origin"] == "echo/config.yaml (Truss)"
    assert (entry["port"], entry["readiness"], entry["predict"]) == (8080, "/v1/models/model", "/v1/models/model:predict")
    assert entry["build"]["base"] == "debian:bookworm-slim"
    # Truss's cpu/memory are an instance size on Baseten: what the app needs, not Docker limits
    assert entry.get("cpus") is None and entry.get("memory") is None

    project.berth("apply", "--auto-approve", timeout=900)
    status, answer = _post(f"http://127.0.0.1:{project.ports[10]}/echo/predict", {"xs": [1, 2, 3]})
    assert status == 200
    assert answer == {"greeting": "hello from-a-secret", "echo": {"xs": [1, 2, 3]}, "doubled": [2, 4, 6]}
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
