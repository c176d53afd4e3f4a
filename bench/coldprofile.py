"""Where berth's own CPU goes in a cold apply and a destroy of 20 apps: py-spy samples
the thread holding the GIL (--gil, --nonblocking: the process is never paused) in three
cold applies and three destroys, and the samples are sorted into what they were doing.
Raw samples go to bench/results/profile-cold-*.txt.

    .venv/bin/python bench/coldprofile.py          # needs py-spy (scripts/bench.sh installs it)
"""

from __future__ import annotations

import collections
import shutil
import sys
import tempfile
from pathlib import Path

from harness import BERTH, RESULTS, free_port_block, run, write_stack

RATE = 250
IMPORTS = (("networkx/", "networkx"), ("pydantic", "pydantic"), ("docker/", "docker-py"), ("requests/", "requests, urllib3"),
           ("urllib3/", "requests, urllib3"), ("charset_normalizer", "requests, urllib3"), ("idna", "requests, urllib3"),
           ("rich/", "rich"), ("diskcache", "diskcache"))
WORK = (("Recorder", "state writes"), ("refresh_state", "state writes"), ("record_config", "state writes"),
        ("apply_view", "the rich view"), ("render_plan", "the rich view"), ("_endpoints", "the rich view"),
        ("StepContext.run", "steps (engine calls)"), ("walk (planner", "the walk's bookkeeping"),
        ("diff_plan", "plan: refresh and diff"), ("load_stack", "reading the stack file"), ("locked", "lock, state read"))


def kind(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "_find_and_load" in joined:
        modules = [f for f in frames if f.startswith("<module>")]
        where = modules[-1].split("(")[-1] if modules else ""
        for key, name in IMPORTS:
            if key in where:
                return f"import {name}"
        if any(m in joined for m in ("planner/desired", "stackfile/models", "planner/plan.py")):
            return "import berth's pydantic models (building validators)"
        return "import the rest (standard library, berth's modules)"
    for key, name in WORK:
        if key in joined:
            return name
    return "no Python frame (interpreter start and exit, GC)" if not frames or frames == [""] else "other"


def shares(raw: list[Path]) -> list[tuple[str, float, float]]:
    """(what, share of samples, CPU seconds per run at RATE) by what, largest first."""
    counts: collections.Counter[str] = collections.Counter()
    for path in raw:
        for line in path.read_text().splitlines():
            stack, n = line.rsplit(" ", 1)
            counts[kind(stack.split(";"))] += int(n)
    total = sum(counts.values()) or 1
    return [(what, n / total, n / RATE / len(raw)) for what, n in counts.most_common()]


def main() -> int:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    apps = 20
    port = free_port_block(apps)
    RESULTS.mkdir(exist_ok=True)
    raw: dict[str, list[Path]] = {"apply": [], "destroy": []}
    with tempfile.TemporaryDirectory(prefix="berth-bench-coldprofile-") as tmp:
        directory = Path(tmp)
        write_stack(directory, "benchcoldprofile", apps, port)
        try:
            for i in range(3):
                for command in ("apply", "destroy"):
                    out = RESULTS / f"profile-cold-{command}-{i}.txt"
                    run([spy, "record", "--nonblocking", "--gil", "-r", str(RATE), "-f", "raw", "-o", str(out), "--",
                         sys.executable, str(BERTH), command, "--auto-approve"], cwd=directory)
                    raw[command].append(out)
        finally:
            run([str(BERTH), "destroy", "--auto-approve"], cwd=directory, check=False)
    for command, paths in raw.items():
        print(f"berth {command}, {apps} apps: where its own CPU goes (py-spy --gil, {len(paths)} runs)")
        for what, share, seconds in shares(paths):
            print(f"  {share * 100:5.1f} %  {seconds:.3f} s  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
