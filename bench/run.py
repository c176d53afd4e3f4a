"""Run berth's benchmarks and print their figures; save them under bench/results/.

    .venv/bin/python bench/run.py              # everything (about 5 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick      # fewer repeats, no 200-app stack
    .venv/bin/python bench/run.py startup noop20 probe

Cases: startup, noop20 (cold, no-op, one change, destroy of 20 apps), noop200,
probe (readiness latency), compose (the same 20 apps under docker-compose 1.29),
fanout (3 simulated SSH hosts × 10 apps: cold, no-op plan, one-file change; needs root
for scripts/testhosts.sh).
"""

from __future__ import annotations

import argparse
import shutil
import sys

import cases
from apiproxy import ApiProxy
from harness import build_image, machine, save, table

ALL = ("startup", "noop20", "noop200", "probe", "compose", "fanout")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", choices=[[], *ALL], default=[], metavar="CASE")
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip the 200-app stack")
    args = parser.parse_args()
    chosen = args.cases or [c for c in ALL if not (args.quick and c == "noop200")]
    repeat = 3 if args.quick else 7

    build_image()
    results: dict[str, object] = {"machine": machine(), "cases": {}}
    print(f"berth benchmarks on {results['machine']}\n")
    proxy = ApiProxy()
    try:
        for case in chosen:
            rows = _run(case, repeat, proxy, results)
            results["cases"][case] = rows
            print(table(case, rows), end="\n\n", flush=True)
    finally:
        proxy.close()
    print(f"saved {save(results)}")
    return 0


def _run(case: str, repeat: int, proxy: ApiProxy, results: dict[str, object]) -> list[dict[str, object]]:
    match case:
        case "startup":
            return cases.startup(repeat * 2)
        case "noop20" | "noop200":
            rows, extra = cases.stack_runs(20 if case == "noop20" else 200, repeat, proxy)
            results.setdefault("extra", {})[case] = extra
            return rows
        case "probe":
            return cases.probe_latency(rounds=3 if repeat > 3 else 2)
        case "compose":
            if not shutil.which("docker-compose"):
                return [{"work": "docker-compose not installed (scripts/bench.sh installs it)"}]
            return cases.compose_versus_berth(20, repeat)
        case "fanout":
            import os

            import fanout

            if os.geteuid() != 0:
                return [{"work": "skipped: the simulated SSH hosts need root (scripts/testhosts.sh)"}]
            return fanout.rows(fanout.measure())
    raise AssertionError(case)


if __name__ == "__main__":
    sys.exit(main())
