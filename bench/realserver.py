"""The real model server: time from `berth apply` to the first chat completion answered,
beside `docker run` of the same image with the same mounts, and a replace's downtime.

    .venv/bin/python bench/run.py realserver

The server is llama.cpp's llama-server (scripts/realserver.sh builds it once) with the tiny
Llama of scripts/tiny_weights.py, as in examples/llamacpp-cpu. Both sides end at the same
point: a 200 from /v1/chat/completions, polled every 10 ms from the moment the command
starts (`docker run -d` returns before the model loads; `berth apply` returns once
readiness passed, and then answers at once).

- cold: berth's weights cache is empty (a fresh BERTH_WEIGHTS_DIR, so the copy into it is
  timed) and no container runs; docker run has nothing to fetch (its weights are a bind
  mount), so its time is the floor for both.
- warm: the weights are in the cache (berth plans no weights step); each run starts from
  no container, so both sides create, start and load the model.
- replace: an env change applied while a loop sends chat completions through the gateway
  (one request at a time, 5 s timeout): requests that failed, and the longest gap between
  two answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import BERTH, REPO, free_port_block, goal_row, median, run

CHAT = json.dumps({"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0,
                   "max_tokens": 4}).encode()
ARGS = ["-m", "/models/tiny/tiny-llama.gguf", "--threads", "1", "--ctx-size", "512"]


def server_image() -> str:
    out = run(["bash", str(REPO / "scripts" / "realserver.sh")]).stdout.strip().splitlines()
    return out[-1].removeprefix("realserver: ").strip()


def make_weights(directory: Path) -> Path:
    run([str(Path(shutil.which("python3") or "python3")), str(REPO / "scripts" / "tiny_weights.py"), str(directory)])
    return directory


def chat(url: str, timeout: float = 5) -> bool:
    request = urllib.request.Request(url, data=CHAT, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200 and bool(json.loads(response.read())["choices"])
    except (OSError, ValueError, KeyError):
        return False


def until_answered(url: str, started: float, timeout: float = 180) -> float:
    """Seconds from `started` to the first answered chat completion at url."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if chat(url, timeout=2):
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"{url} answered no chat completion within {timeout} s")


def stack(directory: Path, name: str, port: int, env: str = "1") -> None:
    (directory / "berth.toml").write_text(f"""
[stack]
name = "{name}"
gateway_port = {port + 1}
gateway_admin_port = {port + 2}

[apps.llm]
image = "berth-test/llama-server:latest"
command = {json.dumps(ARGS)}
port = 8080
readiness = "/health"
readiness_timeout = 180
predict = "/v1/chat/completions"
shm_size = "256m"
env = {{ BENCH_ROUND = "{env}" }}

[[apps.llm.weights]]
source = "./weights"
mount = "/models/tiny"
""")


def docker_run(image: str, weights: Path, port: int) -> float:
    started = time.perf_counter()
    cid = run(["docker", "run", "-d", "--init", "-p", f"127.0.0.1:{port}:8080", "--shm-size", "256m",
               "-v", f"{weights}:/models/tiny:ro", image, *ARGS]).stdout.strip()
    try:
        return until_answered(f"http://127.0.0.1:{port}/v1/chat/completions", started)
    finally:
        run(["docker", "rm", "-f", cid])


def berth(*args: str, cwd: Path, check: bool = True) -> None:
    # the bench's own weights cache: "cold" is an empty one, and the machine's is left alone
    run([str(BERTH), *args], cwd=cwd, check=check, env={"BERTH_WEIGHTS_DIR": str(cwd / "weights-cache")})


def berth_apply(directory: Path, port: int) -> float:
    started = time.perf_counter()
    berth("apply", "--auto-approve", cwd=directory)
    return until_answered(f"http://127.0.0.1:{port + 1}/llm/predict", started)


def replica_gone(directory: Path) -> None:
    """No container of the app, the weights cache kept: the next apply starts it again."""
    berth("destroy", "--auto-approve", "--target", "app.llm.container[0]@local", cwd=directory)


class Loop:
    """Chat completions through the gateway, one at a time, counting what failed."""

    def __init__(self, url: str) -> None:
        self.url, self.ok, self.failed, self.gap = url, 0, 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Loop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            if chat(self.url):
                now = time.perf_counter()
                self.ok, self.gap, last = self.ok + 1, max(self.gap, now - last), now
            else:
                self.failed += 1


def measure(repeat: int = 3) -> tuple[list[dict[str, object]], dict[str, object]]:
    image = server_image()
    port = free_port_block(4)
    with tempfile.TemporaryDirectory(prefix="berth-bench-realserver-") as tmp:
        directory = Path(tmp)
        weights = make_weights(directory / "weights")
        name = f"benchreal{int(time.time()) % 100000}"
        stack(directory, name, port)
        times: dict[str, list[float]] = {"docker run": [], "berth cold": [], "berth warm": []}
        try:
            for _ in range(repeat):
                times["docker run"].append(docker_run(image, weights, port))
            times["berth cold"].append(berth_apply(directory, port))  # the weights step runs once
            for _ in range(repeat):
                replica_gone(directory)
                times["berth warm"].append(berth_apply(directory, port))
            with Loop(f"http://127.0.0.1:{port + 1}/llm/predict") as loop:
                time.sleep(1)
                stack(directory, name, port, env="2")
                berth("apply", "--auto-approve", cwd=directory)
                time.sleep(1)
        finally:
            berth("destroy", "--auto-approve", "--volumes", cwd=directory, check=False)
    peer, warm, cold = median(times["docker run"]), median(times["berth warm"]), times["berth cold"][0]
    rows = [
        {"figure": "docker run -> first chat completion", "berth": None, "peer": "docker run", "peer_value": peer,
         "unit": "s", "runs": repeat},
        {"figure": "berth apply, cold (weights not cached) -> first chat completion", "berth": cold, "unit": "s",
         "runs": 1},
        goal_row("berth apply, warm -> first chat completion, minus docker run's", warm - peer, 0.3,
                 runs=repeat, note=f"berth {warm:.2f} s, docker run {peer:.2f} s"),
        {"figure": "warm replace through the gateway: requests failed", "berth": loop.failed, "unit": "requests",
         "goal": "0", "met": "yes" if loop.failed == 0 else "NO",
         "note": f"{loop.ok} answered; longest gap between answers {loop.gap:.2f} s"},
    ]
    return rows, {"times": times, "replace": {"ok": loop.ok, "failed": loop.failed, "gap": loop.gap}}
