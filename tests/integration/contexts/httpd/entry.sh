#!/bin/sh
# Test server. Behaviour, from the environment:
#   PORT=8000        port to listen on
#   READY_DELAY=0    seconds before /ready exists (a model loading its weights)
#   NEVER_READY=1    never create /ready (readiness must time out)
#   CRASH=1          print some boot lines, then exit 3 (a server dying at start)
#   MESSAGE          included in the body of /, beside the hostname (container ID)
# Serves /health (always 200), /ready (404, then 200), / ("host: ...", "message: ...").
# Every request is logged to stdout, so `docker logs` and `berth logs` have something.
set -u
port=${PORT:-8000}

echo "boot: test server starting on port $port (host $(hostname))"
if [ "${CRASH:-}" = 1 ]; then
    echo "boot: loading weights shard 1/3"
    echo "boot: loading weights shard 2/3"
    echo "boot: fatal: out of memory loading shard 3/3 (CRASH=1)" >&2
    exit 3
fi

mkdir -p /www
printf 'host: %s\nmessage: %s\n' "$(hostname)" "${MESSAGE:-}" >/www/index.html
echo ok >/www/health
rm -f /www/ready

# httpd in the background under this shell, not as PID 1: busybox httpd installs no
# SIGTERM handler, so as PID 1 it would ignore `docker stop` for 10 s. The trap makes a
# stop take milliseconds and leaves a recognisable last log line.
httpd -f -vv -p "$port" -h /www 2>&1 &
httpd_pid=$!
trap 'echo "shutdown: SIGTERM"; kill "$httpd_pid" 2>/dev/null; wait "$httpd_pid"; exit 0' TERM INT
echo "boot: serving /health; /ready after ${READY_DELAY:-0}s"

if [ "${NEVER_READY:-}" = 1 ]; then
    echo "boot: NEVER_READY=1: /ready will never exist"
else
    # Background sleep + wait, so a SIGTERM during the delay is handled at once.
    sleep "${READY_DELAY:-0}" &
    wait $!
    echo ready >/www/ready
    echo "boot: ready"
fi
wait "$httpd_pid"
