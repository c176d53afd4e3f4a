"""The gateway's API-key check: what runs beside Caddy inside a host's gateway container.

Stdlib only, imports nothing of berth: the container is started with this file's source
(planner.serving.gateway.container_spec). Caddy asks it about every request to an app
that is not public (a forward-auth subrequest, planner.serving.gateway._auth): it answers
204 when the request's `Authorization: Bearer KEY` or `Authorization: Api-Key KEY` names a
valid key, else 401 with a JSON body, which Caddy returns to the client without reaching
any replica.

The keys are never here: KEYS_DIR/STACK holds the SHA-256 of each of STACK's keys (hex,
one a line, mode 0600; the gateway is shared by every stack of its host, and Caddy asks
for /STACK, the stack of the app the request is for),
written by berth (planner.serving.routes) and read again whenever it changes, so a
rotation takes effect at the next request with no restart. A presented key is hashed and
compared with every stored hash in constant time (hmac.compare_digest), and nothing is
logged.

argv: the Unix socket to listen on (in the container's own /run: nothing outside it reaches it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socketserver
import sys
from http.server import BaseHTTPRequestHandler

KEYS_DIR = "/var/lib/berth-gateway/keys"  # compose_script.KEYS_DIR
SCHEMES = ("bearer", "api-key")  # as HTTP says, the scheme is case-insensitive
DENIED = b'{"error": "unauthorized", "detail": "this app needs an API key: Authorization: Bearer KEY"}\n'

_cache: dict[str, tuple[object, tuple[bytes, ...]]] = {}
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def hashes(stack: str) -> tuple[bytes, ...]:
    """The stack's stored key hashes, read again when the file changed (or none: every key refused)."""
    if not STACK_NAME.match(stack):
        return ()
    path = os.path.join(KEYS_DIR, stack)
    try:
        info = os.stat(path)
    except OSError:
        return ()
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _cache.get(stack)
    if cached is None or cached[0] != stamp:
        with open(path, "rb") as keys:
            cached = (stamp, tuple(bytes.fromhex(line.strip().decode()) for line in keys if line.strip()))
        _cache[stack] = cached
    return cached[1]


def allowed(header: str | None, stack: str = "") -> bool:
    scheme, _, key = (header or "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() not in SCHEMES or not key:
        return False
    presented = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    found = False
    for stored in hashes(stack):  # every one compared, so the time says nothing of which matched
        found |= hmac.compare_digest(presented, stored)
    return found


class Check(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        if allowed(self.headers.get("Authorization"), self.path.strip("/").split("?")[0]):
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("WWW-Authenticate", 'Bearer realm="berth"')
        self.send_header("Content-Length", str(len(DENIED)))
        self.end_headers()
        self.wfile.write(DENIED)

    do_GET = _answer  # Caddy's subrequest is a GET, without the request's body

    def address_string(self) -> str:
        return "gateway"  # a Unix socket's peer has no address

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - nothing is logged
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main() -> None:
    path = sys.argv[1]
    try:
        os.unlink(path)  # left by the container's last run (a restart keeps its files)
    except FileNotFoundError:
        pass
    Server(path, Check).serve_forever()


if __name__ == "__main__":
    main()
