"""The liveness watcher against real Docker, through the real CLI: a replica whose
liveness fails is restarted on the host while no berth command runs, the restart shows
in `berth status` and `berth logs`, a replica that never passed is left alone during its
start grace, and the watcher goes with the gateway and with destroy."""

from __future__ import annotations

import json
import time

from test_ssh_hosts import hosts, remote  # noqa: F401 - fixtures: the simulated SSH hosts

THRESHOLD, INTERVAL = 2, 1
MARGIN = 15  # seconds beyond threshold x interval: the round's timing, the restart itself

STACK = """
[stack]
name = "{stack}"
GATEWAY

[apps.llm]
build = "./echo"
port = 8000
readiness = "/ready"
liveness = "/health"
liveness_failure_threshold = 2
probe_interval = 1

[apps.loading]
build = "./echo"
port = 8000
host_port = {port1}
deploy = "recreate"
readiness = "/ready"
liveness = "/health"
liveness_failure_threshold = 2
probe_interval = 1
env = { SICK = "1" }
"""
GATEWAY = "gateway_port = {port10}\ngateway_admin_port = {port11}"


def deployed(project, gateway: bool = True) -> None:
    project.copy_context("echo")
    project.write(STACK.replace("GATEWAY", GATEWAY if gateway else ""))
    project.berth("apply", "--auto-approve", timeout=600)


def container(project, address: str):
    [found] = [c for c in project.containers() if c.labels.get("berth.address") == address]
    return found


def published(found) -> int:
    """The host port a replica's container publishes (llm's is picked by berth)."""
    return int(found.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])


def started_at(project, address: str) -> str:
    return container(project, address).attrs["State"]["StartedAt"]


def test_a_replica_failing_liveness_is_restarted_with_no_berth_command_running(project):
    deployed(project)
    watcher = container(project, "watcher@local")
    assert watcher.name == f"berth-{project.stack}-watcher" and watcher.status == "running"
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    llm = "app.llm.container[0]@local"
    before = started_at(project, llm)
    port = published(container(project, llm))
    loading_before = started_at(project, "app.loading.container[0]@local")
    time.sleep(2)  # a few passing probes: the replica is armed
    assert project.get(port, "/admin/sick")[0] == 200
    sick = time.monotonic()
    assert project.get(port, "/health")[0] == 500
    while started_at(project, llm) == before:
        assert time.monotonic() - sick < THRESHOLD * INTERVAL + MARGIN, "not restarted in time"
        time.sleep(0.2)
    took = time.monotonic() - sick
    print(f"\nliveness watcher: sick -> restarted in {took:.1f}s (threshold {THRESHOLD} x interval {INTERVAL}s)")
    deadline = time.monotonic() + 30
    while project.get(port, "/health")[0] != 200:  # serves again, well after the restart, on its port
        assert time.monotonic() < deadline, "the restarted replica does not serve"
        time.sleep(0.2)
    print(f"liveness watcher: sick -> serving again in {time.monotonic() - sick:.1f}s")
    # The port berth picked is in the container's config: the restart kept it, so the
    # gateway's routes still reach the replica.
    assert published(container(project, llm)) == port
    deadline = time.monotonic() + 10
    while project.get(project.ports[10], "/llm/x")[0] != 200:  # the gateway's health check sees it again
        assert time.monotonic() < deadline, "the gateway does not reach the restarted replica"
        time.sleep(0.2)

    # The replica that never passed liveness is in its start grace (readiness_timeout,
    # 600 s by default): failing all along, it was never restarted.
    assert started_at(project, "app.loading.container[0]@local") == loading_before
    assert project.get(project.ports[1], "/health")[0] == 500

    rows = {row["address"]: row for row in json.loads(project.berth("status", "--json", check=False).stdout)["replicas"]}
    assert rows[llm]["watcher_restarts"] == 1
    assert rows[llm]["last_watcher_restart"]["reason"] == "liveness /health failed 2 times in a row: HTTP 500"
    assert rows["app.loading.container[0]@local"]["watcher_restarts"] == 0
    assert (rows["watcher@local"]["app"], rows["watcher@local"]["state"]) == ("(watcher)", "running")
    text = project.berth("status", "--no-color", check=False).stdout
    assert "Restarted by the liveness watcher:" in text and f"{llm}: once, last at" in text

    logs = project.berth("logs", "llm").stdout
    assert f"[watcher@local] " in logs and f"liveness watcher restarted {llm}" in logs
    assert "failed 2 times in a row: HTTP 500" in logs
    assert "[watcher@local]" not in project.berth("logs", "loading").stdout
    # The restart was the watcher's business: berth's own plan has nothing to do.
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_the_watcher_goes_with_the_gateway_and_with_destroy(project):
    deployed(project)
    assert container(project, "watcher@local").status == "running"
    project.write(STACK.replace("GATEWAY", ""))
    plan = project.berth("plan", "--no-color").stdout
    assert '- watcher "watcher@local"' in plan and '- gateway "gateway@local"' in plan
    project.berth("apply", "--auto-approve")
    assert not [c for c in project.containers() if c.labels.get("berth.address", "").startswith(("watcher@", "gateway@"))]
    assert "watcher@local" not in project.berth("state", "list").stdout

    project.write(STACK.replace("GATEWAY", GATEWAY))
    project.berth("apply", "--auto-approve", timeout=600)
    assert container(project, "watcher@local").status == "running"
    project.berth("destroy", "--auto-approve")
    assert project.containers() == []
    assert project.berth("state", "list").stdout.strip() == ""


def test_the_watcher_on_an_ssh_host_restarts_there(project, remote):
    """Its image travels with the gateway's; it mounts the host's own engine socket
    (docker_socket) and probes the host's loopback, where no berth process runs."""
    th1 = remote["th1"]
    project.copy_context("echo")
    project.write(f'[stack]\nname = "{{stack}}"\n{GATEWAY}\n' + th1.toml()
                  + STACK.split("[apps.loading]")[0].split("GATEWAY", 1)[1] + 'host = "th1"\n')
    project.berth("apply", "--auto-approve", timeout=600)
    found = th1.stack_containers(project.stack)
    assert found["watcher@th1"].attrs["HostConfig"]["NetworkMode"] == "host"
    assert [m["Source"] for m in found["watcher@th1"].attrs["Mounts"]] == [th1.socket]
    replica = found["app.llm.container[0]@th1"]
    before = replica.attrs["State"]["StartedAt"]
    time.sleep(2)  # armed by passing probes
    assert th1.get(published(replica), "/admin/sick")[0] == 200
    sick = time.monotonic()
    while (replica.reload() or replica.attrs["State"]["StartedAt"]) == before:
        assert time.monotonic() - sick < THRESHOLD * INTERVAL + MARGIN, "not restarted in time"
        time.sleep(0.2)
    print(f"\nliveness watcher on th1: sick -> restarted in {time.monotonic() - sick:.1f}s")
    rows = {row["address"]: row for row in json.loads(project.berth("status", "--json", check=False).stdout)["replicas"]}
    assert rows["app.llm.container[0]@th1"]["watcher_restarts"] == 1
    project.berth("destroy", "--auto-approve")
    assert th1.stack_containers(project.stack) == {}
