#!/usr/bin/env bash
# Deploy examples/llamacpp-cpu with berth: a real llama.cpp server (chat and embeddings)
# behind berth's gateway, then ask it. Safe to run again: a second apply changes nothing.
#
#   bash scripts/llamacpp.sh                               # set-up, build, apply, ask
#   .venv/bin/berth destroy -f examples/llamacpp-cpu       # remove it (named volumes kept)
#   .venv/bin/berth destroy -f examples/llamacpp-cpu --volumes
#
# The first run builds llama-server (about 5 minutes on 2 cores); later runs find it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
stack=examples/llamacpp-cpu

BERTH_NO_TESTHOSTS=1 bash scripts/setup.sh
bash scripts/realserver.sh >/dev/null
.venv/bin/python scripts/tiny_weights.py "$stack/weights"

echo
echo "llamacpp: .venv/bin/berth apply -f ${stack} --auto-approve"
.venv/bin/berth apply -f "$stack" --auto-approve

port=$(.venv/bin/python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["stack"]["gateway_port"])' "$stack/berth.toml")
echo
echo "llamacpp: POST http://localhost:${port}/llm/predict"
curl -fsS "http://localhost:${port}/llm/predict" -H 'Content-Type: application/json' \
    -d '{"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}'
echo
echo "llamacpp: POST http://localhost:${port}/embed/predict"
curl -fsS "http://localhost:${port}/embed/predict" -H 'Content-Type: application/json' \
    -d '{"input": "hello world"}' | head -c 200
echo " ..."
