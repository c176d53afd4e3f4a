"""Two berths side by side on the same machine: a cold apply (until every port serves) and
a destroy of the same 20-app bench stack, alternated round by round so load from
elsewhere falls on both alike; wall and the command's own CPU seconds, medians.

    git archive OLD_COMMIT | tar -x -C /tmp/old     # a source tree of the other berth
    .venv/bin/python bench/versus.py 5 before=/tmp/old now=.

Each NAME=DIR runs DIR's berth with this checkout's interpreter and packages.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from harness import free_port_block, median, run, wait_serving, write_stack

APPS = 20


def main() -> int:
    rounds = int(sys.argv[1])
    tools = [(name, Path(path).resolve()) for name, path in (a.split("=", 1) for a in sys.argv[2:])]
    for _, tree in tools:
        subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(tree / p) for p in ("berth", "planner", "providers", "state"))],
                       check=True, stdout=subprocess.DEVNULL)
    first = free_port_block(APPS * len(tools))
    found: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _ in tools}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="berth-bench-versus-") as tmp:
        for _ in range(rounds):
            for i, (name, tree) in enumerate(tools):
                directory = Path(tmp) / name
                write_stack(directory, f"benchversus{name}", APPS, first + i * APPS)
                berth = [sys.executable, "-c", (f"import sys; sys.path.insert(0, {str(tree)!r}); "
                                                "from berth.cli import main; sys.exit(main())")]
                start = time.perf_counter()
                up = run([*berth, "apply", "--auto-approve"], cwd=directory)
                wait_serving(range(first + i * APPS, first + (i + 1) * APPS))
                cold = time.perf_counter() - start
                down = run([*berth, "destroy", "--auto-approve"], cwd=directory)
                found[name].append((cold, up.cpu, down.wall, down.cpu))
    for name, runs in found.items():
        cold, cold_cpu, down, down_cpu = (median([r[k] for r in runs]) for k in range(4))
        print(f"{name}: cold {cold:.3f} s wall, {cold_cpu:.3f} s CPU; destroy {down:.3f} s wall, {down_cpu:.3f} s CPU"
              f" ({len(runs)} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
