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

from harness import goal_row, median

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("BERTH_TESTHOSTS", "/run/berth-testhosts"))
BERTH = Path(sys.executable).parent / "berth"
HOSTS = ("th1", "th2", "th3")
APPS = 10
FIRST_PORT = 30100


def stack_text(stack: str, hosts: tuple[str, ...] = HOSTS, apps: int = APPS) -> str:
    text = f'[stack]\nname = "{stack}"\n'
    for host in hosts:
        n = int(host[2:])
        text += (f'[hosts.{host}]\nssh = "root@10.203.{n}.2"\nidentity_file = "{ROOT / "id_ed25519"}"\n'
                 f'known_hosts = "{ROOT / "known_hosts"}"\ndocker_socket = "{ROOT / host / "docker.sock"}"\n')
    for host in hosts:
        for i in range(apps):
            text += (f'[apps.{host}-app{i}]\nbuild = "./httpd"\nport = 8000\nhost_port = {FIRST_PORT + i}\n'
                     f'readiness = "/ready"\nhost = "{host}"\nenv = {{ MESSAGE = "{host}-{i}" }}\n')
    return text


def left_behind(host: str) -> int:
    """Processes under the host's sshd listener: sessions or commands still running."""
    listener = (ROOT / host / "sshd.pid").read_text().strip()
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", listener], capture_output=True, text=True).stdout
    return len(out.split())


def run(directory: Path, phase: str, *args: str, hosts: tuple[str, ...] = HOSTS, check: bool = True) -> dict:
    # Both outside the stack's directory: a file appearing beside the stack file is a change.
    stats = directory.parent / f"{directory.name}-{phase}.json"
    report = directory.parent / f"{directory.name}.fastpath"
    report.unlink(missing_ok=True)
    import resource

    # Counted against what ran under each host's sshd before berth did (an Ansible
    # ControlPersist master of the ssh case lingers for 60 s): what berth left.
    before = {host: left_behind(host) for host in hosts}
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run([str(BERTH), *args, "-f", str(directory), "--no-color"], capture_output=True, text=True,
                            env={**os.environ, "BERTH_SSH_STATS": str(stats), "BERTH_FASTPATH_REPORT": str(report)})
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)  # berth's own user + system
    if result.returncode not in (0, 2) and check:
        sys.exit(f"{phase}: berth {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    per_host = json.loads(stats.read_text()) if stats.exists() else {}
    stats.unlink(missing_ok=True)
    time.sleep(0.5)  # let sshd reap the sessions berth closed
    for host in hosts:
        per_host.setdefault(host, {})["left_behind"] = max(0, left_behind(host) - before[host])
    return {"phase": phase, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "hosts": per_host,
            "fast_path": report.exists()}


def measure() -> list[dict]:
    """Cold apply, no-op plans (the first plans in full and records, the next is answered
    by the fast path), an apply after a one-file change, and its no-op plans; each phase
    with per-host counts. A phase the fast path answered says so (fast_path)."""
    subprocess.run(["bash", str(REPO / "scripts/testhosts.sh"), "up"], check=True, capture_output=True)
    directory = Path(tempfile.mkdtemp(prefix="berth-fanout-"))
    shutil.copytree(REPO / "tests/integration/contexts/httpd", directory / "httpd")
    stack = f"fanout{os.getpid()}"
    (directory / "berth.toml").write_text(stack_text(stack))
    phases = []
    try:
        phases.append(run(directory, "cold apply", "apply", "--auto-approve"))
        phases.append(run(directory, "no-op plan (full: the first)", "plan", "--detailed-exitcode"))
        phases.append(run(directory, "no-op plan (fast path)", "plan", "--detailed-exitcode"))
        with open(directory / "httpd/entry.sh", "a") as f:
            f.write("# changed\n")
        phases.append(run(directory, "apply after a 1-file change", "apply", "--auto-approve"))
        # The first plan after an apply plans in full (and records); the next is answered fast.
        phases.append(run(directory, "no-op plan (full: first after it)", "plan", "--detailed-exitcode"))
        phases.append(run(directory, "no-op plan again (fast path)", "plan", "--detailed-exitcode"))
    finally:
        subprocess.run([str(BERTH), "destroy", "--auto-approve", "-f", str(directory)], capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
    return phases


def fan_out(hosts: tuple[str, ...], apps: int) -> list[dict]:
    """hosts × apps: cold apply, then three no-op plans (the first plans in full and
    records, the others take the fast path), then destroy. Each with per-host counts."""
    directory = Path(tempfile.mkdtemp(prefix=f"berth-fanout{len(hosts)}-"))
    shutil.copytree(REPO / "tests/integration/contexts/httpd", directory / "httpd")
    (directory / "berth.toml").write_text(stack_text(f"fan{len(hosts)}x{os.getpid()}", hosts, apps))
    phases = []
    try:
        phases.append(run(directory, "cold apply", "apply", "--auto-approve", hosts=hosts))
        phases.append(run(directory, "no-op plan (full: records)", "plan", "--detailed-exitcode", hosts=hosts))
        for n in (1, 2, 3):
            phases.append(run(directory, f"no-op plan {n} (fast path)", "plan", "--detailed-exitcode", hosts=hosts))
    finally:
        destroyed = run(directory, "destroy", "destroy", "--auto-approve", hosts=hosts, check=False)
        phases.append(destroyed)
        shutil.rmtree(directory, ignore_errors=True)
    return phases


FLOOR_IMAGE = "berth-fanout-floor:1"


def floor(hosts: tuple[str, ...], apps: int) -> float:
    """The same cold fan-out without berth, as one would script it: on every host at once,
    `docker save IMAGE | ssh HOST docker load` of the same context's image, then the apps'
    `docker run -d` together, until every port answers /ready. Wall seconds. What this
    costs is the hosts' engines' own work (20 dockerds on this machine's 2 cores), which
    no deployment tool can take off; berth's fan-out ratio is read against this one's."""
    import concurrent.futures
    import urllib.request

    subprocess.run(["docker", "build", "-q", "-t", FLOOR_IMAGE, str(REPO / "tests/integration/contexts/httpd")],
                   check=True, capture_output=True)
    ssh = ["ssh", "-i", str(ROOT / "id_ed25519"), "-o", f"UserKnownHostsFile={ROOT / 'known_hosts'}",
           "-o", "BatchMode=yes"]

    def one(host: str) -> None:
        address = f"root@10.203.{int(host[2:])}.2"
        subprocess.run(f"docker save {FLOOR_IMAGE} | {' '.join(ssh)} {address} docker load -q", shell=True,
                       check=True, capture_output=True)
        runs = " ".join(f"docker run -d -q --name fanfloor-{i} -p {FIRST_PORT + i}:8000 -e MESSAGE={host}-{i} "
                        f"{FLOOR_IMAGE} >/dev/null &" for i in range(apps))
        subprocess.run([*ssh, address, f"{runs} wait"], check=True, capture_output=True)
        for i in range(apps):
            while True:
                try:
                    with urllib.request.urlopen(f"http://{address[5:]}:{FIRST_PORT + i}/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.02)

    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(one, hosts))
        return round(time.monotonic() - started, 3)
    finally:
        clean = f"docker rm -f {' '.join(f'fanfloor-{i}' for i in range(apps))} >/dev/null 2>&1; docker rmi -f {FLOOR_IMAGE} >/dev/null 2>&1; true"
        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(lambda h: subprocess.run([*ssh, f"root@10.203.{int(h[2:])}.2", clean], capture_output=True),
                          hosts))


def measure20(many: int = 20, apps: int = 5) -> dict:
    """The 3-host case, then `many` hosts (th4.. brought up for it and taken down after;
    th1..th3 are left as they were), each × `apps` apps."""
    script = str(REPO / "scripts/testhosts.sh")
    subprocess.run(["bash", script, "up"], check=True, capture_output=True)
    found = {"apps_per_host": apps, "three": fan_out(HOSTS, apps), "floor_three_s": floor(HOSTS, apps)}
    env = {**os.environ, "BERTH_TESTHOSTS_COUNT": str(many)}
    try:
        started = time.monotonic()
        subprocess.run(["bash", script, "up"], check=True, capture_output=True, env=env)
        found["bring_up_s"] = round(time.monotonic() - started, 1)
        names = tuple(f"th{n}" for n in range(1, many + 1))
        found["many"] = fan_out(names, apps)
        found["floor_many_s"] = floor(names, apps)
    finally:
        subprocess.run(["bash", script, "down"], check=True, capture_output=True,
                       env={**env, "BERTH_TESTHOSTS_FIRST": str(len(HOSTS) + 1)})
    return found


def rows20(found: dict) -> list[dict]:
    """The goals: 20 hosts' no-op plan under 1.5 s, their cold apply at most 2× the 3
    hosts'; and per host (summed over the hosts) what each phase opened and left."""
    three, many = found["three"], found["many"]
    n = len(many[0]["hosts"])
    fast = [p["wall_s"] for p in many if "fast path" in p["phase"]]
    answered = sum(p["fast_path"] for p in many if "fast path" in p["phase"])
    cpu = median([p["cpu_s"] for p in many if "fast path" in p["phase"]])
    out = [goal_row(f"no-op plan, {n} SSH hosts × {found['apps_per_host']} (fast path)", median(fast), 1.5,
                    runs=len(fast), spread=(min(fast), max(fast)),
                    note=f"CPU {cpu:.3f} s; the fast path answered {answered} of {len(fast)}"),
           goal_row(f"no-op plan, {n} hosts, full plan (the first after an apply)", many[1]["wall_s"], 1.5),
           goal_row(f"cold apply, {n} hosts against 3 (× {found['apps_per_host']} apps each)", many[0]["wall_s"], 2.0,
                    peer="3 hosts", peer_value=three[0]["wall_s"])]
    if found.get("floor_many_s"):
        low3, low = found["floor_three_s"], found["floor_many_s"]
        out.append({"figure": f"the floor: docker save | ssh docker load, then docker run, on {n} hosts against 3",
                    "berth": low, "unit": "s", "peer": "3 hosts", "peer_value": low3,
                    "ratio": round(low / low3, 2),
                    "note": f"berth's {n}-host cold is {many[0]['wall_s'] / low:.2f}× this floor, "
                            f"its 3-host cold {three[0]['wall_s'] / low3:.2f}×"})
    for label, phases in (("3 hosts", three), (f"{n} hosts", many)):
        for phase in phases:
            per = list(phase["hosts"].values())
            out.append({"figure": f"{label}: {phase['phase']}", "berth": phase["wall_s"], "unit": "s",
                        "cpu_s": phase["cpu_s"],
                        "note": "per host: connections {} channels {} exec {} sftp {} left behind {}".format(
                            *("/".join(str(v) for v in sorted({h.get(k, 0) for h in per}))
                              for k in ("connections", "channels", "channels_exec", "channels_sftp", "left_behind")))})
    return out


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
    print(f"{'phase':<34} {'wall s':>7}  {'host':<5} {'conns':>5} {'chans':>5} {'docker':>6} {'probe':>5} "
          f"{'exec':>4} {'image bytes':>12} {'left':>4}")
    for phase in phases:
        for i, host in enumerate(HOSTS):
            h = phase["hosts"][host]
            print(f"{phase['phase'] if i == 0 else '':<34} {phase['wall_s'] if i == 0 else '':>7}  {host:<5} "
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
