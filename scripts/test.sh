#!/usr/bin/env bash
# Run berth's whole test suite (unit + integration against the real Docker engine).
# Extra arguments go to pytest: scripts/test.sh tests/unit -k diff
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Integration tests need the engine, the venv and the busybox base; setup.sh makes sure.
bash scripts/setup.sh

# Two workers, each taking whole files (--dist loadfile): an integration test spends most
# of its time waiting on the engine, a server's start or a probe, so on CI's 2 cores two
# files at a time nearly halve the wall time. Tests are written to run beside each other
# (unique stack names, port blocks held by lock files, per-test gateways). Files, not
# single tests, so a file's tests still run in their written order.
# BERTH_TEST_WORKERS=0 runs everything in this one process. --durations: the slowest
# tests, so a suite growing towards CI's time limit shows where.
workers=${BERTH_TEST_WORKERS:-2}
parallel=()
if [ "$workers" != 0 ]; then
    parallel=(-n "$workers" --dist loadfile)
fi
rc=0
.venv/bin/pytest -q "${parallel[@]}" --durations=15 "$@" || rc=$?

# pytest exits 5 when it collected no tests. A run that tested nothing (a typo in a path,
# a broken conftest that deselects everything) must not count as a pass.
if [ "$rc" -eq 5 ]; then
    echo "test: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
