"""The liveness watcher's program: what runs inside `berth-STACK-watcher` on a host.

Stdlib only, imports nothing of berth: apply passes this file's source to the container
(`python3 -c`), whose image is the gateway's (Debian's python3). It lists the stack's
running replicas through the Docker Engine API on the mounted socket, probes each one's
liveness path on its published port at 127.0.0.1 (the container shares the host's
network), and restarts a replica whose liveness failed `threshold` times in a row,
writing one JSON line per event to stdout (`berth status` and `berth logs` read them).

Kubernetes' semantics: a probe passes on HTTP 200-399 within its timeout; failures
count per container run and a pass resets the count. Unlike Kubernetes there is no
fixed initial delay: a replica is watched ("armed") once its liveness passed once, or
once its start grace (readiness_timeout, or Truss's liveness_delay) has gone by since it
started, so a model that is still loading is never restarted in a loop.

Configuration comes in the environment: BERTH_WATCHER_CONFIG = {"stack": ..., "targets":
{APP: {"liveness", "port", "threshold", "interval", "grace"}}} (planner.serving.watcher).
"""

from __future__ import annotations

import calendar
import http.client
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

SOCKET = "/var/run/docker.sock"  # where the host's engine socket is mounted
RESTART_STOP_TIMEOUT = 10  # seconds a replica gets to exit on SIGTERM when restarted
MAX_PROBE_TIMEOUT = 5.0


# What to do: pure, so tests run it as data --------------------------------------------

@dataclass(frozen=True)
class Memory:
    """What the watcher keeps of one container run. A new StartedAt is a new run (a
    restart by the watcher, by Docker's restart policy, by berth): counts start over."""

    started: str
    armed: bool = False
    failures: int = 0


@dataclass(frozen=True)
class Verdict:
    event: str | None  # "armed", "failing", "restart", or None: nothing worth a line
    reason: str = ""


def judge(memory: Memory | None, started: str, started_at: float, now: float, passed: bool, seen: str,
          target: dict[str, Any]) -> tuple[Memory, Verdict]:
    """One probe's result for one container run → what to remember and what to do."""
    if memory is None or memory.started != started:
        memory = Memory(started=started)
    path = target["liveness"]
    if passed:
        if not memory.armed:
            return Memory(started, armed=True), Verdict("armed", f"liveness {path} passed ({seen})")
        return replace(memory, failures=0), Verdict(None)
    verdict = Verdict(None)
    if not memory.armed:
        grace = float(target["grace"])
        if now - started_at < grace:
            return memory, Verdict(None)  # still starting: not watched yet
        memory = replace(memory, armed=True)
        verdict = Verdict("armed", f"start grace of {grace:g}s elapsed without a passing liveness probe")
    failures = memory.failures + 1
    threshold = int(target["threshold"])
    reason = f"liveness {path} failed {failures} time{'s' if failures > 1 else ''} in a row: {seen}"
    if failures >= threshold:
        return Memory(started), Verdict("restart", reason)  # the restart starts a new run
    if verdict.event == "armed":
        return replace(memory, failures=failures), Verdict("armed", f"{verdict.reason}; {reason}")
    return replace(memory, failures=failures), Verdict("failing", reason)


def published_port(ports: list[dict[str, Any]], container_port: int) -> int | None:
    """The host port a container's `container_port`/tcp is published on (the engine's
    list gives one entry per address family; any will do on 127.0.0.1)."""
    for entry in ports or ():
        if entry.get("PrivatePort") == container_port and entry.get("Type", "tcp") == "tcp" and entry.get("PublicPort"):
            return int(entry["PublicPort"])
    return None


def started_epoch(started: str) -> float:
    """Docker's StartedAt (RFC 3339, nanoseconds, UTC) as epoch seconds."""
    whole, _, fraction = started.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float("0." + fraction[:6]) if fraction else 0.0)


# The engine and the probes ---------------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def engine(method: str, path: str, timeout: float = 30.0) -> tuple[int, Any]:
    """One Engine API call on the mounted socket: (status, parsed JSON body or None)."""
    conn = _UnixConnection(SOCKET, timeout)
    try:
        conn.request(method, path, headers={"Host": "docker"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body) if body else None
    except ValueError:
        return response.status, body.decode("utf-8", "replace")


def probe(port: int, path: str, timeout: float) -> tuple[bool, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "berth-watcher"})
        status = conn.getresponse().status
        return 200 <= status < 400, f"HTTP {status}"
    except socket.timeout:
        return False, f"no answer within {timeout:g}s"
    except (OSError, http.client.HTTPException) as err:
        return False, (getattr(err, "strerror", None) or str(err) or type(err).__name__).lower()
    finally:
        conn.close()


_OUT = threading.Lock()


def say(event: str, **fields: Any) -> None:
    """One JSON line on stdout, whole even when probe threads speak at once."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event} | fields
    with _OUT:
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()


# The loop ------------------------------------------------------------------------------

class Watcher:
    def __init__(self, stack: str, targets: dict[str, dict[str, Any]]) -> None:
        self.stack = stack
        self.targets = targets
        self.memory: dict[str, Memory] = {}
        self.next_probe: dict[str, float] = {}
        self.restarts: dict[str, int] = {}  # per container, for the watcher's lifetime (never forgotten)
        self.busy: set[str] = set()  # being probed or restarted: not probed again meanwhile
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=16)

    def tick(self) -> float:
        """One round: list the stack's running replicas, probe those due; returns how
        long to sleep before the next round."""
        filters = quote(json.dumps({"label": [f"berth.stack={self.stack}", "berth.app"], "status": ["running"]}))
        status, listed = engine("GET", f"/containers/json?filters={filters}")
        if status != 200:
            raise OSError(f"the engine answered {status} to the container list: {listed}")
        now = time.time()
        due = []
        for c in listed:
            target = self.targets.get((c.get("Labels") or {}).get("berth.app", ""))
            with self.lock:
                if target is None or c["Id"] in self.busy or self.next_probe.get(c["Id"], 0) > now:
                    continue
            port = published_port(c.get("Ports") or [], int(target["port"]))
            if port is not None:
                due.append((c, target, port))
        with self.lock:
            for c, target, port in due:
                self.busy.add(c["Id"])
                self.next_probe[c["Id"]] = now + float(target["interval"])
            alive = {c["Id"] for c in listed}
            for gone in [i for i in self.memory if i not in alive and i not in self.busy]:
                self.memory.pop(gone, None)
                self.next_probe.pop(gone, None)
        for c, target, port in due:
            self.pool.submit(self.check, c, target, port)
        return min(float(t["interval"]) for t in self.targets.values()) / 2

    def check(self, c: dict[str, Any], target: dict[str, Any], port: int) -> None:
        try:
            status, info = engine("GET", f"/containers/{c['Id']}/json")
            if status != 200 or not (info.get("State") or {}).get("Running"):
                return
            started = info["State"]["StartedAt"]
            passed, seen = probe(port, target["liveness"], min(float(target["interval"]), MAX_PROBE_TIMEOUT))
            with self.lock:
                memory, verdict = judge(self.memory.get(c["Id"]), started, started_epoch(started), time.time(),
                                        passed, seen, target)
                self.memory[c["Id"]] = memory
                count = self.restarts[c["Id"]] = self.restarts.get(c["Id"], 0) + (verdict.event == "restart")
            if verdict.event == "restart":
                say("restart", **self.about(c), reason=verdict.reason, restarts=count)
            elif verdict.event is not None:
                say(verdict.event, **self.about(c), reason=verdict.reason)
            if verdict.event == "restart":
                self.restart(c)
        except Exception as err:  # one replica's trouble must not stop the watcher
            say("error", **self.about(c), reason=f"{type(err).__name__}: {err}")
        finally:
            with self.lock:
                self.busy.discard(c["Id"])

    def restart(self, c: dict[str, Any]) -> None:
        try:
            status, body = engine("POST", f"/containers/{c['Id']}/restart?t={RESTART_STOP_TIMEOUT}",
                                  timeout=RESTART_STOP_TIMEOUT + 60)
            if status >= 300:
                message = body.get("message", body) if isinstance(body, dict) else body
                say("restart-failed", **self.about(c), reason=f"the engine answered {status}: {message}")
        finally:
            with self.lock:  # the next round sees a new run (StartedAt), probed at once
                self.memory.pop(c["Id"], None)
                self.next_probe.pop(c["Id"], None)

    @staticmethod
    def about(c: dict[str, Any]) -> dict[str, str]:
        labels = c.get("Labels") or {}
        return {"address": labels.get("berth.address", ""), "app": labels.get("berth.app", ""),
                "container": (c.get("Names") or ["/"])[0].lstrip("/"), "id": c["Id"]}


def main() -> None:
    config = json.loads(os.environ["BERTH_WATCHER_CONFIG"])
    watcher = Watcher(config["stack"], config["targets"])
    say("watching", stack=config["stack"],
        reason=", ".join(f"{app}: GET {t['liveness']} every {t['interval']:g}s, restart after {t['threshold']} "
                         f"failures, armed after a pass or {t['grace']:g}s" for app, t in sorted(config["targets"].items()))
        or "no app on this host has a liveness path")
    while True:
        if not watcher.targets:
            time.sleep(3600)
            continue
        try:
            pause = watcher.tick()
        except Exception as err:  # the engine restarting, say: try again next round
            say("error", reason=f"cannot list containers: {type(err).__name__}: {err}")
            pause = 5.0
        time.sleep(max(0.2, pause))


if __name__ == "__main__":
    main()
