"""The serving gateway against real Docker: routes, X-Request-Id, readiness-driven
traffic, routes that follow the apps without restarting the proxy, rolling replaces
that no request notices, destroy."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from email.message import Message

from conftest import RequestLoop

STACK = """
[stack]
name = "{stack}"
gateway_port = {port10}
gateway_admin_port = {port11}

[apps.llm]
build = "./echo"
port = 8000
replicas = REPLICAS
readiness = "/ready"
predict = "/v1/chat/completions"
probe_interval = 1
"""


def served(project, replicas: int = 2) -> str:
    project.copy_context("echo")
    project.write(STACK.replace("REPLICAS", str(replicas)))
    project.berth("apply", "--auto-approve", timeout=600)
    return f"http://127.0.0.1:{project.ports[10]}"


def call(url: str, *, request_id: str | None = None, data: bytes | None = None) -> tuple[int, dict, Message]:
    """(status, JSON body, response headers) of one request."""
    request = urllib.request.Request(url, data=data, headers={"X-Request-Id": request_id} if request_id else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}"), response.headers
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {"text": body.decode("utf-8", "replace")}
        return err.code, parsed, err.headers


def replicas_of(project) -> list:
    """The app's containers (not the gateway's or the watcher's)."""
    return [c for c in project.containers() if c.labels.get("berth.address", "").startswith("app.")]


def replica_port(project, index: int) -> int:
    """The port berth picked for a replica (served apps have no fixed host_port)."""
    [container] = [c for c in project.containers()
                   if c.labels.get("berth.address") == f"app.llm.container[{index}]@local"]
    return int(container.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])


def gateway_container(project):
    [container] = [c for c in project.containers() if c.labels.get("berth.address", "").startswith("gateway@")]
    return container


def test_predict_sync_and_plain_paths_reach_the_app(project):
    url = served(project)
    status, body, _ = call(f"{url}/llm/predict?stream=1", data=b'{"x": 1}')
    assert (status, body["method"], body["path"], body["body"]) == (200, "POST", "/v1/chat/completions?stream=1", '{"x": 1}')
    assert call(f"{url}/llm/sync/v1/models")[1]["path"] == "/v1/models"
    assert call(f"{url}/llm/health/deep")[1]["path"] == "/health/deep"
    assert call(f"{url}/nope/predict")[0] == 404
    assert "gateway@local" in project.berth("state", "list").stdout
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_the_admin_api_answers_no_one_outside_the_gateway_container(project, docker_client):
    """Only the gateway's port is published; on the bridge, where the app containers
    are, the gateway's port answers and its admin API does not (berth reaches it
    through the Docker API)."""
    served(project, replicas=1)
    gateway = gateway_container(project)
    assert list(gateway.attrs["NetworkSettings"]["Ports"]) == [f"{project.ports[10]}/tcp"]
    address = gateway.attrs["NetworkSettings"]["IPAddress"]
    # bash's /dev/tcp: debian-slim has no HTTP client (and this busybox's wget crashes).
    script = ("for port in PORTS; do if exec 3<>/dev/tcp/ADDRESS/$port; then "
              "printf 'GET /llm/sync/x HTTP/1.0\\r\\n\\r\\n' >&3; head -1 <&3; exec 3>&-; else echo refused; fi; done")
    script = script.replace("PORTS", f"{project.ports[10]} {project.ports[11]}").replace("ADDRESS", address)
    output = docker_client.containers.run("debian:bookworm-slim", ["bash", "-c", script], remove=True).decode()
    assert [line.split(" ", 1)[-1].strip() for line in output.splitlines()] == ["200 OK", "refused"], output
    rows = json.loads(project.berth("status", "--json").stdout)["replicas"]
    assert [r["readiness"] for r in rows if r["address"] == "gateway@local"] == ["ready"]  # routes read back


def test_request_id_is_kept_or_generated_and_comes_back(project):
    url = served(project, replicas=1)
    _, body, headers = call(f"{url}/llm/sync/x", request_id="client-given-42")
    assert body["request_id"] == "client-given-42" and headers["X-Request-Id"] == "client-given-42"
    assert headers.get_all("Server") == ["Caddy"]  # one Server header, not the app's beside it
    seen = set()
    for _ in range(3):
        _, body, headers = call(f"{url}/llm/sync/x")
        assert body["request_id"] and len(body["request_id"]) >= 32
        assert headers["X-Request-Id"] == body["request_id"]
        seen.add(body["request_id"])
    assert len(seen) == 3


def test_an_unready_replica_gets_no_traffic_and_is_not_restarted(project):
    url = served(project)
    replicas = {call(f"{url}/llm/sync/x")[1]["replica"] for _ in range(8)}
    assert len(replicas) == 2, replicas
    # Replica 1 starts failing its readiness path.
    direct = f"http://127.0.0.1:{replica_port(project, 1)}"
    unready = call(f"{direct}/admin/unready")[1]["replica"]
    time.sleep(3)  # probe_interval = 1: a few checks
    after = [call(f"{url}/llm/sync/x") for _ in range(12)]
    assert all(status == 200 for status, _, _ in after)
    assert {body["replica"] for _, body, _ in after} == replicas - {unready}
    # Ready again: traffic comes back. Still running all along (never restarted).
    call(f"{direct}/admin/ready")
    time.sleep(3)
    assert {call(f"{url}/llm/sync/x")[1]["replica"] for _ in range(8)} == replicas


def test_routes_follow_a_scale_up_without_restarting_the_gateway(project):
    url = served(project)
    before = gateway_container(project)
    project.write(STACK.replace("REPLICAS", "3"))
    plan = project.berth("plan", "--no-color").stdout
    assert '~ gateway "gateway@local"' in plan
    project.berth("apply", "--auto-approve", timeout=600)
    after = gateway_container(project)
    assert after.id == before.id
    assert after.attrs["State"]["StartedAt"] == before.attrs["State"]["StartedAt"]
    time.sleep(2)
    assert len({call(f"{url}/llm/sync/x")[1]["replica"] for _ in range(12)}) == 3


def test_destroy_removes_the_gateway(project):
    url = served(project, replicas=1)
    assert call(f"{url}/llm/sync/x")[0] == 200
    project.berth("destroy", "--auto-approve")
    assert project.containers() == []
    assert project.berth("state", "list").stdout.strip() == ""


def test_status_shows_the_gateway_ready_with_its_routes(project, docker_client):
    served(project, replicas=1)
    rows = json.loads(project.berth("status", "--json").stdout)["replicas"]
    [row] = [r for r in rows if r["address"] == "gateway@local"]
    assert (row["app"], row["state"], row["readiness"], row["healthy"]) == ("(gateway)", "running", "ready", True)
    assert "(gateway)" in project.berth("status", "--no-color").stdout



def test_a_rolling_replace_loses_no_request(project):
    url = served(project)
    old = {c.id for c in replicas_of(project)}
    project.write(STACK.replace("REPLICAS", "2") + 'env = { VERSION = "2" }\n')
    plan = project.berth("plan", "--no-color").stdout
    assert '+/- container "app.llm.container[0]@local"' in plan and "rolling" in plan
    with RequestLoop(f"{url}/llm/sync/x") as loop:
        time.sleep(0.5)
        project.berth("apply", "--auto-approve", timeout=600)
        time.sleep(0.5)
    assert loop.failures == [] and loop.ok > 20, (loop.failures[:5], loop.ok)
    replicas = [json.loads(body)["replica"] for body in loop.bodies]
    now = replicas_of(project)
    assert {c.id for c in now}.isdisjoint(old) and len(now) == 2
    assert sorted(c.name for c in now) == [f"berth-{project.stack}-llm-0", f"berth-{project.stack}-llm-1"]
    # Served by the old replicas, then by the new ones only.
    new_hosts = {c.id[:12] for c in now}
    assert set(replicas[:3]) <= {i[:12] for i in old} and set(replicas[-3:]) <= new_hosts
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_a_rolling_replace_that_never_becomes_ready_leaves_the_old_replica_serving(project):
    project.copy_context("echo")
    project.write(STACK.replace("REPLICAS", "1"))
    project.berth("apply", "--auto-approve", timeout=600)
    url = f"http://127.0.0.1:{project.ports[10]}"
    [old] = [c.id for c in replicas_of(project)]
    project.write(STACK.replace("REPLICAS", "1") + 'readiness_timeout = 4\nenv = { START_UNREADY = "1" }\n')
    with RequestLoop(f"{url}/llm/sync/x") as loop:
        failed = project.berth("apply", "--auto-approve", "--no-color", check=False, timeout=600)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "not ready after 4s" in output and "keeps serving" in output, output
    assert "echo: listening on 8000, ready=False" in output  # the new container's last log lines
    served_by = {json.loads(body)["replica"] for body in loop.bodies}
    assert loop.failures == [] and loop.ok and served_by == {old[:12]}, (loop.failures[:5], served_by)
    # Only the old replica (and the gateway) is left; the next plan tries the replace again.
    assert [c.id for c in replicas_of(project)] == [old]
    assert "app.llm.container[0]@local" in project.berth("plan", "--no-color").stdout


def test_a_request_in_flight_to_the_old_replica_completes_before_it_is_stopped(project):
    url = served(project, replicas=1)
    answers: list = []
    slow = threading.Thread(target=lambda: answers.append(call(f"{url}/llm/slow/4")))
    slow.start()
    time.sleep(0.5)  # in flight to the old replica
    project.write(STACK.replace("REPLICAS", "1") + 'env = { VERSION = "2" }\n')
    applied = project.berth("apply", "--auto-approve", "--no-color", timeout=600)
    slow.join(30)
    [(status, body, _)] = answers
    assert (status, body["path"]) == (200, "/slow/4")
    assert "draining the old one" in applied.stdout
