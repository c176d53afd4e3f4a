"""Requests to a gateway's admin API, made from inside its container.

Caddy's admin API can rewrite every route of the host, so it listens on the gateway
container's own loopback, which no network reaches: not the host's, not an app container
beside it on the bridge. berth reaches it through the Docker API (docker exec of a small
client in the gateway's image, which has python3 for the watcher), the way Kamal drives
kamal-proxy; so it works alike on the local engine and on SSH hosts, and two stacks'
gateways on one host never contend for an admin port.
"""

from __future__ import annotations

import secrets

from providers.base import Provider
from providers.types import ProviderError

# argv: port, timeout, method, path, and the file holding the body (removed once read).
# Prints the status, a newline, the response body; exits 3 when nothing answers.
CLIENT = """\
import http.client, os, sys
port, timeout, method, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
body = None
if len(sys.argv) > 5:
    with open(sys.argv[5], "rb") as f:
        body = f.read()
    os.unlink(sys.argv[5])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
try:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body is not None else {})
    response = conn.getresponse()
    text = response.read()
except (OSError, http.client.HTTPException) as err:
    sys.stdout.write(getattr(err, "strerror", None) or str(err) or type(err).__name__)
    sys.exit(3)
sys.stdout.buffer.write(b"%d\\n" % response.status + text)
"""


def request(provider: Provider, container_id: str, admin_port: int, method: str, path: str,
            body: bytes | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """One request to the admin API of the gateway container_id: (status, body). OSError
    when it cannot be made: the container is not running, or Caddy not listening yet."""
    command = ["python3", "-I", "-c", CLIENT, str(admin_port), str(timeout), method, path]
    files = {}
    if body is not None:
        # put_archive, not an argument: a config of many apps outgrows one argument.
        files[f"/tmp/berth-admin-{secrets.token_hex(8)}.json"] = body
        command += list(files)
    try:
        code, output = provider.run_in(container_id, command, files)
    except ProviderError as err:
        raise OSError(str(err)) from None
    status, _, text = output.partition("\n")
    if code != 0 or not status.isdigit():
        raise OSError(f"admin API on the gateway's 127.0.0.1:{admin_port}: {output.strip() or f'exit code {code}'}")
    return int(status), text
