"""The benchmark cases. Each returns rows (dicts) for a table; none asserts a speed.

They need the engine, the venv and the bench image (run.py sees to all three), and
clean up every stack they make.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from harness import BERTH, berth, container_ids, free_port_block, median, run, write_stack


def startup(repeat: int) -> list[dict[str, object]]:
    """CLI start-up, and which heavy modules `--version` imports (it should import none)."""
    rows = []
    for args in (["--version"], ["plan", "--help"]):
        walls = [run([str(BERTH), *args]).wall for _ in range(repeat)]
        rows.append({"command": "berth " + " ".join(args), "median_s": median(walls), "min_s": min(walls)})
    probe = (
        "import sys; sys.argv = ['berth', '--version']\n"
        "import berth.cli\n"
        "try: berth.cli.main()\n"
        "except SystemExit: pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'docker', 'paramiko', 'networkx', 'rich', 'pydantic', 'yaml'})\n"
        "print(','.join(heavy) or 'none')"
    )
    heavy = run([sys.executable, "-c", probe]).stdout.strip().splitlines()[-1]
    importtime = run([sys.executable, "-X", "importtime", "-c", "import berth.cli"]).stderr
    cumulative = max(int(line.split("|")[1]) for line in importtime.splitlines() if line.strip().endswith("berth.cli"))
    rows.append({"command": "import berth.cli (-X importtime)", "median_s": cumulative / 1e6, "min_s": None})
    rows.append({"command": f"heavy modules imported by --version: {heavy}", "median_s": None, "min_s": None})
    return rows


def stack_runs(apps: int, repeat: int, proxy) -> tuple[list[dict[str, object]], dict[str, object]]:
    """Cold apply of `apps` apps (until every one is ready), then repeated no-op plan and
    apply, one changed app (20-app stack only), then destroy."""
    rows: list[dict[str, object]] = []
    name = f"bench{apps}"
    port = free_port_block(apps)
    with tempfile.TemporaryDirectory(prefix=f"berth-bench-{apps}-") as tmp:
        directory = Path(tmp)
        write_stack(directory, name, apps, port)
        cold = berth("apply", "--auto-approve", cwd=directory)
        rows.append({"case": f"cold apply, {apps} apps ready", "median_s": cold.wall, "runs": 1, "peak_mib": cold.peak_kib // 1024})
        for command in (("plan", "--detailed-exitcode"), ("apply", "--auto-approve")):
            full = [run([str(BERTH), *command], cwd=directory, env={"BERTH_NO_FASTPATH": "1"}) for _ in range(repeat)]
            rows.append({"case": f"no-op {command[0]}, {apps} apps, full plan (BERTH_NO_FASTPATH=1)",
                         "median_s": median([r.wall for r in full]), "runs": repeat,
                         "peak_mib": max(r.peak_kib for r in full) // 1024,
                         "note": f"CPU {median([r.cpu for r in full]):.3f} s"})
            berth(*command, cwd=directory)  # the first full no-op records what it read,
            berth(*command, cwd=directory)  # the second confirms it: later no-ops take the fast path
            fast = [berth(*command, cwd=directory) for _ in range(repeat)]
            rows.append({"case": f"no-op {command[0]}, {apps} apps (fast path)", "median_s": median([r.wall for r in fast]),
                         "runs": repeat, "peak_mib": max(r.peak_kib for r in fast) // 1024,
                         "note": f"CPU {median([r.cpu for r in fast]):.3f} s"})
        via_proxy = {"DOCKER_HOST": f"unix://{proxy.path}"}
        proxy.reset()
        run([str(BERTH), "plan", "-f", str(directory)], env={**via_proxy, "BERTH_NO_FASTPATH": "1"})
        calls = dict(proxy.requests)
        rows.append({"case": f"no-op plan, {apps} apps, full plan: Docker API calls", "median_s": None, "runs": 1,
                     "peak_mib": None, "note": f"{sum(calls.values())}: " + ", ".join(f"{k} x{v}" for k, v in sorted(calls.items()))})
        run([str(BERTH), "plan", "-f", str(directory)], env=via_proxy)  # records (reading the engine before and after)
        proxy.reset()
        run([str(BERTH), "plan", "-f", str(directory)], env=via_proxy)
        fast_calls = dict(proxy.requests)
        rows.append({"case": f"no-op plan, {apps} apps, fast path: Docker API calls (one connection)", "median_s": None,
                     "runs": 1, "peak_mib": None,
                     "note": f"{sum(fast_calls.values())}: " + ", ".join(f"{k} x{v}" for k, v in sorted(fast_calls.items()))})
        if apps == 20:
            rows.append(_one_change(directory, name, apps, port))
        gone = berth("destroy", "--auto-approve", cwd=directory)
        rows.append({"case": f"destroy, {apps} apps", "median_s": gone.wall, "runs": 1, "peak_mib": gone.peak_kib // 1024})
    return rows, {"api_calls_noop_plan": calls}


def _one_change(directory: Path, name: str, apps: int, port: int) -> dict[str, object]:
    before = container_ids(name)
    write_stack(directory, name, apps, port, env={7: "v2"})
    changed = berth("apply", "--auto-approve", cwd=directory)
    after = container_ids(name)
    touched = sorted(a for a in before if before[a] != after.get(a))
    return {"case": f"one app changed of {apps}: until it serves again", "median_s": changed.wall, "runs": 1,
            "peak_mib": changed.peak_kib // 1024, "note": f"replaced: {', '.join(touched)}"}


def probe_latency(rounds: int) -> list[dict[str, object]]:
    """How long after a server starts answering 200 on its readiness path berth reports
    it ready: the ready file's mtime inside the container (same kernel clock) against
    the moment berth's 'Ready' line arrives."""
    samples: list[float] = []
    rng = random.Random(7)
    for round_ in range(rounds):
        apps = 5
        port = free_port_block(apps)
        with tempfile.TemporaryDirectory(prefix="berth-bench-probe-") as tmp:
            directory = Path(tmp)
            name = f"benchprobe{round_}"
            delay = f"{rng.uniform(0.5, 3.0):.2f}"
            write_stack(directory, name, apps, port, ready_delay=delay)
            noticed = _apply_streaming(directory)
            ids = container_ids(name)
            for address, at in noticed.items():
                stamp = subprocess.run(["docker", "exec", ids[address], "stat", "-c", "%y", "/www/ready"],
                                       capture_output=True, text=True, check=True).stdout.strip()
                samples.append(at - _parse_stat_time(stamp))
            berth("destroy", "--auto-approve", cwd=directory)
    samples.sort()
    return [{"samples": len(samples), "median_ms": median(samples) * 1000,
             "p90_ms": samples[int(len(samples) * 0.9) - 1] * 1000, "max_ms": samples[-1] * 1000}]


def _apply_streaming(directory: Path) -> dict[str, float]:
    """Run apply, recording the wall-clock time each container's 'Ready' line arrives."""
    proc = subprocess.Popen([str(BERTH), "apply", "--auto-approve"], cwd=directory, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"}, bufsize=0)
    noticed: dict[str, float] = {}
    buffer = b""
    while chunk := proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536):
        now = time.time()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            text = line.decode()
            if ": Ready after" in text:
                noticed[text.split(":", 1)[0]] = now
    if proc.wait() != 0:
        raise RuntimeError("apply failed in the probe-latency case")
    return noticed


def _parse_stat_time(text: str) -> float:
    """busybox stat %y: '2026-11-22 22:45:24.220095273 +0000'."""
    day, clock, zone = text.split()
    whole, _, fraction = clock.partition(".")
    base = datetime.strptime(f"{day} {whole} {zone}", "%Y-%m-%d %H:%M:%S %z").timestamp()
    return base + float("0." + (fraction or "0"))
