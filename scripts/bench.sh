#!/usr/bin/env bash
# Run berth's benchmarks (bench/run.py) on this machine: set-up first, plus
# docker-compose 1.29 from Debian's packages for the side-by-side case.
# Arguments go to bench/run.py: scripts/bench.sh --quick, scripts/bench.sh probe
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if ! command -v docker-compose >/dev/null 2>&1; then
    echo "bench: installing docker-compose (Debian's 1.29) for the comparison"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
fi
exec .venv/bin/python bench/run.py "$@"
