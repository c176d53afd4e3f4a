"""Fan-out benchmark: 3 SSH hosts × 10 apps built from one context, through the real
`berth` command against the simulated hosts of scripts/testhosts.sh.

Phases: cold apply (the hosts' engines empty), no-op plan, then apply after a change to
one file of the context (only the changed layer should travel). Per phase and host: wall
time, SSH connections opened, channels opened (Docker API / probes / commands), image
bytes sent, and the processes berth left behind on the host (children of its sshd).

    sudo bash scripts/testhosts.sh up      # once (scripts/setup.sh does it)
    .venv/bin/python bench/fanout.py       # prints a table, writes bench/results/fanout-*.json

A benchmark, not a test: it asserts nothing, it reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("BERTH_TESTHOSTS", "/run/berth-testhosts"))
BERTH = Path(sys.executable).parent / "berth"
HOSTS = ("th1", "th2", "th3")
APPS = 10
FIRST_PORT = 30100


def stack_text(stack: str) -> str:
    text = f'[stack]\nname = "{stack}"\n'
    for n, host in enumerate(HOSTS, start=1):
        text += (f'[hosts.{host}]\nssh = "root@10.203.{n}.2"\nidentity_file = "{ROOT / "id_ed25519"}"\n'
                 f'known_hosts = "{ROOT / "known_hosts"}"\ndocker_socket = "{ROOT / host / "docker.sock"}"\n')
    for host in HOSTS:
        for i in range(APPS):
            text += (f'[apps.{host}-app{i}]\nbuild = "./httpd"\nport = 8000\nhost_port = {FIRST_PORT + i}\n'
                     f'readiness = "/ready"\nhost = "{host}"\nenv = {{ MESSAGE = "{host}-{i}" }}\n')
    return text


def left_behind(host: str) -> int:
    """Processes under the host's sshd listener: sessions or commands still running."""
    listener = (ROOT / host / "sshd.pid").read_text().strip()
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", listener], capture_output=True, text=True).stdout
    return len(out.split())


def run(directory: Path, phase: str, *args: str) -> dict:
    stats = directory / f"{phase}.json"
    start = time.monotonic()
    result = subprocess.run([str(BERTH), *args, "-f", str(directory), "--no-color"], capture_output=True, text=True,
                            env={**os.environ, "BERTH_SSH_STATS": str(stats)})
    wall = time.monotonic() - start
    if result.returncode not in (0, 2):
        sys.exit(f"{phase}: berth {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    per_host = json.loads(stats.read_text())
    time.sleep(0.5)  # let sshd reap the sessions berth closed
    for host in HOSTS:
        per_host[host]["left_behind"] = left_behind(host)
    return {"phase": phase, "wall_s": round(wall, 2), "hosts": per_host}


def measure() -> list[dict]:
    """The three phases, each with per-host counts."""
    subprocess.run(["bash", str(REPO / "scripts/testhosts.sh"), "up"], check=True, capture_output=True)
    directory = Path(tempfile.mkdtemp(prefix="berth-fanout-"))
    shutil.copytree(REPO / "tests/integration/contexts/httpd", directory / "httpd")
    stack = f"fanout{os.getpid()}"
    (directory / "berth.toml").write_text(stack_text(stack))
    phases = []
    try:
        phases.append(run(directory, "cold apply", "apply", "--auto-approve"))
        phases.append(run(directory, "no-op plan", "plan", "--detailed-exitcode"))
        with open(directory / "httpd/entry.sh", "a") as f:
            f.write("# changed\n")
        phases.append(run(directory, "apply after a 1-file change", "apply", "--auto-approve"))
    finally:
        subprocess.run([str(BERTH), "destroy", "--auto-approve", "-f", str(directory)], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
    return phases


def rows(phases: list[dict]) -> list[dict]:
    """One row per phase and host, for bench/run.py's table."""
    out = []
    for phase in phases:
        for i, host in enumerate(HOSTS):
            h = phase["hosts"][host]
            out.append({"phase": phase["phase"] if i == 0 else "", "wall_s": phase["wall_s"] if i == 0 else None,
                        "host": host, "ssh_conns": h.get("connections", 0), "channels": h.get("channels", 0),
                        "docker": h.get("channels_docker", 0), "probe": h.get("channels_probe", 0),
                        "exec": h.get("channels_exec", 0), "image_bytes": h.get("image_bytes_sent", 0),
                        "left_behind": h["left_behind"]})
    return out


def main() -> None:
    phases = measure()
    print(f"{len(HOSTS)} hosts × {APPS} apps from one build context (simulated hosts on this machine)\n")
    print(f"{'phase':<30} {'wall s':>7}  {'host':<5} {'conns':>5} {'chans':>5} {'docker':>6} {'probe':>5} "
          f"{'exec':>4} {'image bytes':>12} {'left':>4}")
    for phase in phases:
        for i, host in enumerate(HOSTS):
            h = phase["hosts"][host]
            print(f"{phase['phase'] if i == 0 else '':<30} {phase['wall_s'] if i == 0 else '':>7}  {host:<5} "
                  f"{h.get('connections', 0):>5} {h.get('channels', 0):>5} {h.get('channels_docker', 0):>6} "
                  f"{h.get('channels_probe', 0):>5} {h.get('channels_exec', 0):>4} {h.get('image_bytes_sent', 0):>12,} "
                  f"{h['left_behind']:>4}")
    out = REPO / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"fanout-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"hosts": len(HOSTS), "apps_per_host": APPS, "phases": phases}, indent=2))
    print(f"\nwrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
