"""Echo server for gateway tests; see the Dockerfile."""

import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# START_UNREADY=1: /ready fails from the start (a deploy that never becomes ready).
READY = {"value": os.environ.get("START_UNREADY") != "1"}
# Liveness: /health answers 500 while sick. SICK=1 starts sick; /admin/sick and
# /admin/well switch. A restart starts the process afresh, well unless SICK=1.
SICK = {"value": os.environ.get("SICK") == "1"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        status = 200
        if self.path == "/admin/unready":
            READY["value"] = False
        elif self.path == "/admin/ready":
            READY["value"] = True
        elif self.path == "/ready" and not READY["value"]:
            status = 503
        elif self.path.startswith("/slow/"):  # /slow/SECONDS: a long request (a generation)
            time.sleep(float(self.path.split("/")[2]))
        elif self.path == "/admin/sick":
            SICK["value"] = True
        elif self.path == "/admin/well":
            SICK["value"] = False
        elif self.path == "/health" and SICK["value"]:
            status = 500
        payload = json.dumps({
            "method": self.command, "path": self.path, "body": body,
            "request_id": self.headers.get("X-Request-Id"), "replica": socket.gethostname(),
        }).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


port = int(os.environ.get("PORT", "8000"))
print(f"echo: listening on {port}, ready={READY['value']}", flush=True)
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
