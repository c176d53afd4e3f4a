"""A Cerebrium app on the default (cortex) runtime applied for real: no runtime table, two
functions in main.py, served by the server berth bakes into the image (FastAPI and
uvicorn from PyPI on the local debian:bookworm-slim base), reached through the gateway
with Cerebrium's response shape and the X-Request-Id sent as the run id.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

MAIN = '''
import os

GREETING = "hello"  # the top level runs once, when the replica starts


def predict(prompt: str, run_id: str = ""):
    return {"echo": f"{GREETING} {prompt}", "seen_run_id": run_id}


async def add(a: int, b: int = 1):
    return a + b


def teapot():
    return {"status_code": 418, "why": "short and stout"}


def fails(why: str):
    raise ValueError(why)


async def count(n: int):
    for i in range(n):
        yield {"i": i}


def _helper():  # private: not served
    return None
'''


def post(url: str, body: dict, request_id: str | None = None) -> tuple[int, dict, str | None]:
    headers = {"Content-Type": "application/json", **({"X-Request-Id": request_id} if request_id else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers.get("X-Request-Id")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), err.headers.get("X-Request-Id")


def test_a_cortex_app_with_two_functions_answers_both_through_the_gateway(project) -> None:
    app = project.path / "app"
    app.mkdir()
    (app / "main.py").write_text(MAIN)
    project.write("""
        [cerebrium.deployment]
        name = "cortex-two"
        python_version = "3.11"

        [cerebrium.hardware]
        cpu = 1
        memory = 1.0
        compute = "CPU"
        gpu_count = 0

        [cerebrium.scaling]
        min_replicas = 1
    """, name="app/cerebrium.toml")
    project.write("""
        [stack]
        name = "{stack}"
        gateway_port = {port10}
        gateway_admin_port = {port11}

        [apps.cortex]
        from = "app/cerebrium.toml"
        probe_interval = 1
    """)

    plan = project.berth("plan").stdout
    assert '"python3", "/opt/berth/cortex_server.py", "--port", "8000", "predict", "add", "teapot", "fails", "count"' in plan, plan
    assert "readiness    = GET /ready" in plan and "liveness     = GET /health" in plan
    assert "ignored cerebrium.toml:10: cerebrium.hardware.gpu_count: compute is CPU" in plan, plan

    project.berth("apply", "--auto-approve", timeout=600)
    url = f"http://127.0.0.1:{project.ports[10]}/cortex"

    status, body, header = post(f"{url}/predict", {"prompt": "world"}, request_id="req-abc-1")
    assert status == 200 and header == "req-abc-1"
    assert set(body) == {"run_id", "result", "run_time_ms"}, body
    assert body["run_id"] == "req-abc-1" and isinstance(body["run_time_ms"], (int, float))
    assert body["result"] == {"echo": "hello world", "seen_run_id": "req-abc-1"}

    status, body, _ = post(f"{url}/add", {"a": 2, "b": 40}, request_id="req-abc-2")
    assert (status, body["run_id"], body["result"]) == (200, "req-abc-2", 42), body
    # The gateway's predict route is main.py's predict; without an id the gateway gives one.
    status, body, header = post(f"{url}/predict", {"prompt": "again"})
    assert status == 200 and body["run_id"] == header and body["result"]["seen_run_id"] == header
    # A status_code in the answer is the HTTP status; arguments it does not take are a 422;
    # private functions are not served.
    status, body, _ = post(f"{url}/teapot", {})
    assert (status, body["result"]) == (418, {"status_code": 418, "why": "short and stout"})
    assert post(f"{url}/add", {"a": 1, "c": 2})[0] == 422
    assert post(f"{url}/_helper", {})[0] == 404
    status, body, _ = post(f"{url}/fails", {"why": "bad input"}, request_id="req-abc-3")
    assert (status, body["run_id"], body["error"]) == (500, "req-abc-3", "ValueError: bad input"), body
    # a generator streams its items as server-sent events
    request = urllib.request.Request(f"{url}/count", data=b'{"n": 3}', method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in response.read().decode().splitlines() if line]
    assert events == [{"i": 0}, {"i": 1}, {"i": 2}]

    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    loading_then_ready(project)
    project.berth("destroy", "--auto-approve")
    assert project.labelled() == []


SLOW_MAIN = "import time\ntime.sleep(6)  # a model that takes a while to load\n\ndef predict(prompt):\n    return prompt\n"


def loading_then_ready(project) -> None:
    """The app's image with a main.py that loads slowly: /health answers at once, /ready is
    503 until main.py is imported, then 200; a stop while it loads is quick (the server is
    PID 1, which ignores SIGTERM unless it handles it)."""
    [replica] = [c for c in project.containers() if c.labels.get("berth.address", "").startswith("app.")]
    (project.path / "slow_main.py").write_text(SLOW_MAIN)
    command = ["python3", "/opt/berth/cortex_server.py", "--port", "8000", "predict"]
    volumes = {str(project.path / "slow_main.py"): {"bind": "/app/main.py", "mode": "ro"}}

    def start():
        container = project.client.containers.run(replica.image.id, command, detach=True, volumes=volumes,
                                                  labels={"berth.stack": project.stack})
        container.reload()
        return container, f"http://{container.attrs['NetworkSettings']['IPAddress']}:8000"

    def get(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    container, base = start()
    try:
        deadline = time.monotonic() + 5
        while get(f"{base}/health") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get(f"{base}/health") == 200 and get(f"{base}/ready") == 503
        started = time.monotonic()
        container.stop(timeout=10)
        assert time.monotonic() - started < 5, "SIGTERM while main.py loads stops the server"
    finally:
        container.remove(force=True)
    container, base = start()
    try:
        deadline = time.monotonic() + 30
        while get(f"{base}/ready") != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert get(f"{base}/ready") == 200
    finally:
        container.remove(force=True)
