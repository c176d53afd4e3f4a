#!/bin/sh
# Serve the page on port $1 (default 8080). MODEL_URL (env) is where the browser sends
# predictions; it is written into /config.js so the page itself stays static.
set -u
port=${1:-8080}
model_url=${MODEL_URL:-http://localhost:18080}

printf 'window.MODEL_URL = "%s";\n' "$model_url" >/www/config.js

# Background httpd + a TERM trap: as PID 1, busybox httpd would ignore `docker stop`
# for 10 s (see model/serve.sh). -vv logs requests; 2>&1 puts them in `docker logs`.
httpd -f -vv -p "$port" -h /www 2>&1 &
httpd_pid=$!
trap 'echo "frontend: SIGTERM: stopping"; kill "$httpd_pid" 2>/dev/null; wait "$httpd_pid"; exit 0' TERM INT
echo "frontend: listening on :$port, predictions from $model_url"
wait "$httpd_pid"
