"""A model-class Truss's model_cache with use_volume: false, baked into its image at build
time as Baseten bakes it (issue 19): berth's build stage fetches the repository from a
local stand-in of the Hub's file API (hub_standin.py: a stand-in, not the Hub), with the
token as a BuildKit secret, into the Hugging Face cache that the server's image carries at
/root/.cache/huggingface/hub, where Truss puts it; load() reads it there, in the layout
from_pretrained(REPO) resolves. The Truss's requirements are test_truss_model's, so the
server's layers (its PyPI install) are the ones that test built; only the bake stage is new."""

from __future__ import annotations

import json
import secrets
import urllib.request

from hub_standin import HubStandIn

MODEL = '''
import json
from pathlib import Path

CACHE = Path("/root/.cache/huggingface/hub/models--tiny--baked")


class Model:
    def __init__(self, **kwargs):
        self._found = None

    def load(self):
        # as huggingface_hub resolves REPO at main from its cache: refs/main, then snapshots/SHA
        sha = (CACHE / "refs" / "main").read_text().strip()
        snapshot = CACHE / "snapshots" / sha
        self._found = {"config": json.loads((snapshot / "config.json").read_text()),
                       "weights": (snapshot / "model.bin").read_bytes().hex(),
                       "readme": (snapshot / "README.md").exists()}

    def predict(self, model_input):
        return self._found
'''


def _bridge_gateway(client) -> str:
    """The address of this machine on Docker's default bridge, where build steps run."""
    return client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]


def test_use_volume_false_model_cache_is_baked_into_the_image_from_the_hub(project, tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    weights = secrets.token_bytes(64)
    (repo / "config.json").write_text('{"hidden": 64}')
    (repo / "model.bin").write_bytes(weights)
    (repo / "README.md").write_text("# left out by allow_patterns\n")
    truss = project.path / "baked"
    (truss / "model").mkdir(parents=True)
    (truss / "model" / "model.py").write_text(MODEL)
    (truss / "config.yaml").write_text("""
model_name: baked-model
python_version: py311
requirements:
  - six==1.16.0
secrets:
  hf_access_token: null
model_cache:
  - repo_id: tiny/baked
    allow_patterns: ["*.json", "*.bin"]
    use_volume: false
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

        [apps.baked]
        from = "baked/config.yaml"
    """)
    token = "hf_" + secrets.token_hex(12)
    with HubStandIn(host="0.0.0.0", token=token) as hub:  # gated: nothing without the token
        hub.add_repo("tiny/baked", repo)
        port = hub.url.rsplit(":", 1)[1]
        env = {"HF_ENDPOINT": f"http://{_bridge_gateway(project.client)}:{port}", "HF_HUB_DISABLE_XET": "1",
               "HF_ACCESS_TOKEN": token}
        assert project.berth("plan", env=env).returncode == 0
        assert hub.requests == []  # planning asks the Hub nothing: the build does
        out = project.berth("apply", "--auto-approve", env=env, timeout=900).stdout
        assert hub.file_bytes_sent >= len(weights)
        assert token not in out

    request = urllib.request.Request(f"http://127.0.0.1:{project.ports[10]}/baked/predict", data=b"{}",
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"config": {"hidden": 64}, "weights": weights.hex(), "readme": False}
    [container] = [c for c in project.containers() if c.labels.get("berth.app") == "baked"]
    image = container.image
    assert token not in json.dumps(image.attrs) + json.dumps(image.history()) + json.dumps(container.attrs)
    # the stand-in is gone: the weights are in the image, not fetched when the server starts
    assert project.berth("plan", "--detailed-exitcode", "--refresh=false", check=False, env=env).returncode == 0
