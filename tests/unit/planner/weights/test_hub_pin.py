"""huggingface_hub is pinned in several places that cannot import one constant: the weights
fetcher's image (a Dockerfile, built by its content hash), the fetch script's message (it
runs in that image), the Truss bake stage (truss_server.BAKE_HUB_PACKAGE), the test extra
and the README. They name one version, or a hub download tested here is not the one users
run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
PIN = re.compile(r"huggingface_hub(?:==| )(\d+\.\d+\.\d+)")


def test_every_pin_of_huggingface_hub_names_the_same_version() -> None:
    from berth.stackfile.platforms.truss_server import BAKE_HUB_PACKAGE

    places = {
        "planner/weights/fetcher/Dockerfile": (ROOT / "planner/weights/fetcher/Dockerfile").read_text(),
        "planner/weights/fetch_script.py": (ROOT / "planner/weights/fetch_script.py").read_text(),
        "truss_server.BAKE_HUB_PACKAGE": BAKE_HUB_PACKAGE,
        "pyproject.toml": (ROOT / "pyproject.toml").read_text(),
        "README.md": (ROOT / "README.md").read_text(),
    }
    found = {where: set(PIN.findall(text)) for where, text in places.items()}
    assert all(found.values()), {where: versions for where, versions in found.items() if not versions}
    assert len(set().union(*found.values())) == 1, found
