#!/usr/bin/env bash
# Run berth's whole test suite (unit + integration against the real Docker engine).
# Extra arguments go to pytest: scripts/test.sh tests/unit -k diff
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Integration tests need the engine, the venv and the busybox base; setup.sh makes sure.
bash scripts/setup.sh

rc=0
.venv/bin/pytest -q "$@" || rc=$?

# pytest exits 5 when it collected no tests. A run that tested nothing (a typo in a path,
# a broken conftest that deselects everything) must not count as a pass.
if [ "$rc" -eq 5 ]; then
    echo "test: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
