#!/bin/sh
# Start the toy model server:  serve.sh [--model NAME] [--port N]
#   /health          200 as soon as the server runs (liveness)
#   /ready           404 while the "weights" load, 200 after (readiness)
#   /cgi-bin/predict?text=...   JSON prediction; 503 until ready
# LOAD_SECONDS (env, default 2) is how long the simulated weight loading takes.
set -u

model=toy-reverser
port=8080
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model=$2; shift 2 ;;
        --port)  port=$2; shift 2 ;;
        *) echo "serve.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { echo "$(date -u +%H:%M:%S) model[$model]: $*"; }

# The CGI script reads the model name from here.
echo "$model" >/www/model-name
echo ok >/www/health
rm -f /www/ready

# httpd runs in the background, not as PID 1: PID 1 ignores SIGTERM unless it installs a
# handler, and busybox httpd does not, so `docker stop` would wait 10 s and then kill it.
# This shell traps TERM and stops httpd at once. -vv logs each request and its status;
# 2>&1 sends them to stdout so `docker logs` shows them.
httpd -f -vv -p "$port" -h /www 2>&1 &
httpd_pid=$!
trap 'log "SIGTERM: stopping"; kill "$httpd_pid" 2>/dev/null; wait "$httpd_pid"; exit 0' TERM INT
log "listening on :$port (/health answers; /ready does not yet)"

log "loading weights (simulated, ${LOAD_SECONDS:-2}s)"
# sleep in the background + wait, so a SIGTERM during the load is handled at once.
sleep "${LOAD_SECONDS:-2}" &
wait $!
echo ready >/www/ready
log "weights loaded: /ready answers 200"

wait "$httpd_pid"
