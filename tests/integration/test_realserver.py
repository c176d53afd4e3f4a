"""The real model server, without berth: llama.cpp's llama-server image from
scripts/realserver.sh (built once, then found by its context's content hash) serving the
tiny Llama from scripts/tiny_weights.py, mounted read-only. These are the facts the stack
tests build on: /health answers 503 while loading and 200 when ready, chat completions at
temperature 0 answer with a `choices` list, `--embeddings --pooling mean` serves
/v1/embeddings.

The first run of the suite builds the image (about 5 minutes on 2 cores); later runs take
about a second to find it. BERTH_SKIP_REALSERVER=1 skips this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABEL = "berth-test.realserver"

pytestmark = pytest.mark.skipif(os.environ.get("BERTH_SKIP_REALSERVER") == "1",
                                reason="BERTH_SKIP_REALSERVER=1")


@pytest.fixture(scope="session")
def llama_server_image() -> str:
    r = subprocess.run(["bash", str(ROOT / "scripts" / "realserver.sh")], capture_output=True,
                       text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout.strip().splitlines()[-1].removeprefix("realserver: ").strip()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, llama_server_image) -> Path:  # the image's script fetches the sdist
    d = tmp_path_factory.mktemp("tiny-weights")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "tiny_weights.py"), str(d)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return d


def _get(url: str, timeout: float = 5) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None, b""  # refused or reset: the port is not answering yet


def _post(url: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@contextmanager
def serving(docker_client, image: str, weights: Path, *args: str):
    c = docker_client.containers.run(
        image, ["-m", "/models/tiny-llama.gguf", "--threads", "2", *args], detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)}, labels={LABEL: "1"},
        volumes={str(weights): {"bind": "/models", "mode": "ro"}})
    try:
        for _ in range(100):
            c.reload()
            ports = c.attrs["NetworkSettings"]["Ports"].get("8080/tcp")
            if ports:
                break
            time.sleep(0.05)
        assert ports, c.logs()[-2000:]
        yield c, f"http://127.0.0.1:{ports[0]['HostPort']}"
    finally:
        c.remove(force=True)


def wait_ready(base: str, timeout: float = 60) -> list[int | None]:
    """Poll /health until 200; return the distinct answers seen, in order."""
    seen: list[int | None] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = _get(base + "/health", timeout=2)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"/health never answered 200 within {timeout} s: {seen}")


def test_the_weights_are_the_same_bytes_every_time(tiny_weights, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "tiny_weights.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tiny-llama.gguf").read_bytes() == (tiny_weights / "tiny-llama.gguf").read_bytes()
    assert 8_000_000 < (tmp_path / "tiny-llama.gguf").stat().st_size < 10_000_000


def test_a_second_build_finds_the_image_by_its_content_hash(llama_server_image):
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(ROOT / "scripts" / "realserver.sh")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(llama_server_image)
    assert "no build" in r.stderr
    assert time.monotonic() - t0 < 10


def test_chat_completions_from_the_read_only_weights(docker_client, llama_server_image, tiny_weights):
    with serving(docker_client, llama_server_image, tiny_weights) as (c, base):
        seen = wait_ready(base)
        assert seen[-1] == 200 and set(seen) <= {None, 503, 200}, seen
        body = {"messages": [{"role": "user", "content": "Say hello."}],
                "temperature": 0, "max_tokens": 8, "seed": 1}
        status, answer = _post(base + "/v1/chat/completions", body)
        assert status == 200, answer
        assert isinstance(answer["choices"], list) and answer["choices"]
        assert answer["choices"][0]["message"]["role"] == "assistant"
        again = _post(base + "/v1/chat/completions", body)[1]
        assert again["choices"][0]["message"]["content"] == answer["choices"][0]["message"]["content"], \
            "temperature 0 is deterministic"
        mounts = c.attrs["Mounts"]
        assert [(m["Destination"], m["RW"]) for m in mounts] == [("/models", False)]


def test_embeddings_with_the_flag(docker_client, llama_server_image, tiny_weights):
    # The tiny Llama names no pooling, and 'none' is not OpenAI-compatible (400): ask for mean.
    with serving(docker_client, llama_server_image, tiny_weights,
                 "--embeddings", "--pooling", "mean") as (_c, base):
        wait_ready(base)
        status, answer = _post(base + "/v1/embeddings", {"input": "hello world"})
        assert status == 200, answer
        vec = answer["data"][0]["embedding"]
        assert len(vec) == 64 and all(isinstance(x, float) for x in vec)
