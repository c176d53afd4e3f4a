"""No-op plan of a 1000-app stack, and the profile of berth's no-op path.

1000 apps are not started here: each running container costs a containerd shim (~13
MiB resident here) and a docker-proxy (~3 MiB), about 16 GiB for 1000, past what a
shared 2-core, 23 GiB machine gives. berth has no `replicas = 0` (replicas >= 1). So
the case measures what fits and extrapolates:

- real no-op plans (every container running, nothing to do) at 20 and 200 apps;
- a plan of 1000 apps against the same real engine with none of them deployed (the
  stack file read and validated, the engine listed, 1000 creates diffed and printed
  as JSON): everything a 1000-app no-op does except comparing 1000 observed containers;
- the 1000-app no-op estimated linearly from the two real no-ops: so it is estimated,
  not measured. The no-ops are timed both through the full plan (BERTH_NO_FASTPATH=1,
  as the first no-op after any change runs) and through the fast path (berth/noop.py).
Peak memory is the child's (wait4 rusage).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import BERTH, REPO, berth, free_port_block, goal_row, median, run, write_stack


def thousand(repeat: int) -> tuple[list[dict[str, object]], dict[str, object]]:
    noop: dict[int, tuple[float, int, list[float], float]] = {}  # full plans (BERTH_NO_FASTPATH=1)
    fast: dict[int, tuple[float, int, list[float], float]] = {}  # answered by berth/noop.py
    for apps in (20, 200):
        port = free_port_block(apps)
        with tempfile.TemporaryDirectory(prefix=f"berth-bench-scale{apps}-") as tmp:
            directory = Path(tmp)
            write_stack(directory, f"benchscale{apps}", apps, port)
            try:
                berth("apply", "--auto-approve", cwd=directory)
                plans = [_plan(directory, full=True) for _ in range(repeat)]
                _plan(directory), _plan(directory)  # the first records what a no-op reads, the second confirms it
                quick = [_plan(directory) for _ in range(repeat)]
            finally:
                berth("destroy", "--auto-approve", cwd=directory, check=False)
            for kept, runs in ((noop, plans), (fast, quick)):
                walls = [p.wall for p in runs]
                kept[apps] = (median(walls), max(p.peak_kib for p in runs), walls, median([p.cpu for p in runs]))
    fresh: dict[int, tuple[float, int, list[float], float]] = {}
    for apps in (200, 1000):
        port = free_port_block(apps)
        with tempfile.TemporaryDirectory(prefix=f"berth-bench-fresh{apps}-") as tmp:
            directory = Path(tmp)
            write_stack(directory, f"benchfresh{apps}", apps, port)
            plans = [berth("plan", "--json", cwd=directory) for _ in range(repeat)]
            walls = [p.wall for p in plans]
            fresh[apps] = (median(walls), max(p.peak_kib for p in plans), walls, median([p.cpu for p in plans]))
    # Extra apps cost CPU in one thread, and CPU seconds are steadier than wall on a
    # shared machine: both estimates add CPU differences to the 200-app no-op's wall.
    # Both are of the full plan (the first no-op after any change); the fast path's own
    # slope is given beside.
    slope = (noop[200][3] - noop[20][3]) / 180
    estimate = noop[200][0] + slope * 800
    fast_slope = (fast[200][3] - fast[20][3]) / 180
    fast_estimate = fast[200][0] + fast_slope * 800
    # The second: what 800 more apps cost a plan that reads, validates and diffs them (an
    # upper bound: creates also build and print 800 more JSON entries).
    upper = noop[200][0] + fresh[1000][3] - fresh[200][3]
    rows = []
    for apps in (20, 200):
        for label, kept in (("full plan, BERTH_NO_FASTPATH=1", noop), ("fast path", fast)):
            wall, peak, walls, cpu = kept[apps]
            rows.append(goal_row(f"no-op plan, {apps} apps running (real; {label})", wall, 1.0, runs=len(walls),
                                 spread=(min(walls), max(walls)), note=f"peak {peak // 1024} MiB, cpu {cpu:.3f} s"))
    for apps in (200, 1000):
        wall, peak, walls, cpu = fresh[apps]
        rows.append(goal_row(f"plan --json, {apps} apps, none deployed (real engine)", wall, 1.0, runs=len(walls),
                             spread=(min(walls), max(walls)), note=f"peak {peak // 1024} MiB, cpu {cpu:.3f} s"))
    rows.append(goal_row("no-op plan, 1000 apps, full plan (estimated: 200-app wall + 800 x CPU per app, 20->200)",
                         estimate, 1.0, note=f"{slope * 1000:.2f} ms CPU per app; not measured: 1000 containers do not fit"))
    rows.append(goal_row("no-op plan, 1000 apps, full plan (estimated: 200-app wall + CPU of fresh 1000 - fresh 200)",
                         upper, 1.0, note=f"an upper bound; peak memory {fresh[1000][1] // 1024} MiB (the 1000-app plan)"))
    rows.append(goal_row("no-op plan, 1000 apps, fast path (estimated as the first)", fast_estimate, 1.0,
                         note=f"{fast_slope * 1000:.2f} ms CPU per app"))
    extra = {"noop": {str(k): v for k, v in noop.items()}, "fast": {str(k): v for k, v in fast.items()},
             "fresh": {str(k): v for k, v in fresh.items()}, "slope_s_per_app": slope,
             "estimate_noop_1000_s": estimate, "upper_estimate_noop_1000_s": upper,
             "fast_slope_s_per_app": fast_slope, "estimate_fast_noop_1000_s": fast_estimate}
    return rows, extra


def _plan(directory: Path, full: bool = False):
    """`berth plan --detailed-exitcode` (exit 0: nothing to do); full: with the fast path off."""
    return run([str(BERTH), "plan", "--detailed-exitcode"], cwd=directory, env={"BERTH_NO_FASTPATH": "1"} if full else None)


def profile_noop(apps: int = 20) -> tuple[list[dict[str, object]], dict[str, object]]:
    """pyinstrument on `berth apply --auto-approve`, a no-op of an `apps`-app stack.
    The whole text profile goes to bench/results/profile-noop-apply.txt."""
    import sys

    port = free_port_block(apps)
    with tempfile.TemporaryDirectory(prefix="berth-bench-profile-") as tmp:
        directory = Path(tmp)
        write_stack(directory, "benchprofile", apps, port)
        try:
            berth("apply", "--auto-approve", cwd=directory)
            plain_runs = [berth("apply", "--auto-approve", cwd=directory) for _ in range(3)]
            plain = [r.wall for r in plain_runs]
            out = REPO / "bench/results/profile-noop-apply.txt"
            out.parent.mkdir(exist_ok=True)
            run([sys.executable, "-m", "pyinstrument", "-i", "0.0002", "--no-color", "--no-unicode",
                 "-o", str(out), "-m", "berth.cli", "apply", "--auto-approve"], cwd=directory)
            cprof = REPO / "bench/results/profile-noop-apply.pstats"
            run([sys.executable, "-m", "cProfile", "-o", str(cprof), "-m", "berth.cli", "apply", "--auto-approve"],
                cwd=directory)
        finally:
            berth("destroy", "--auto-approve", cwd=directory, check=False)
    import pstats
    import io

    buffer = io.StringIO()
    pstats.Stats(str(cprof), stream=buffer).sort_stats("cumulative").print_stats(25)
    (REPO / "bench/results/profile-noop-apply-cprofile.txt").write_text(buffer.getvalue())
    text = out.read_text()
    rows = [{"figure": f"no-op apply, {apps} apps, unprofiled", "berth": median(plain), "unit": "s", "runs": 3,
             "note": f"cpu {median([r.cpu for r in plain_runs]):.3f} s; profile: {out.relative_to(REPO)}"}]
    return rows, {"pyinstrument": text}
