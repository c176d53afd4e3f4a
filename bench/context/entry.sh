#!/bin/sh
mkdir -p /www
echo ok >/www/health
httpd -f -p "${PORT:-8000}" -h /www &
pid=$!
trap 'kill "$pid"; exit 0' TERM INT
sleep "${READY_DELAY:-0}" &
wait $!
echo ready >/www/ready
wait "$pid"
