"""The gateway's routes while an apply runs: which ports each host's gateway sends an
app's traffic to, and pushing them to its admin API.

The upstreams are the replicas state records as ready, plus old replicas held during a
rolling replace: the old one keeps its place until its successor is ready, then leaves
the routes and is drained (Caddy counts its requests in flight) before it is stopped.
Every push sends the stack's whole fragment of the host's shared gateway, built from
state under a per-host lock, so that rolls of several replicas on one host never undo
each other's routes; in the gateway, the fragment is written and every stack's composed
and loaded under a lock of the host's (planner.serving.compose_script), so that two
berth processes of two stacks never undo each other's either.

The admin client: requests to a gateway's admin API, made from inside its container.

Caddy's admin API can rewrite every route of the host, so it listens on the gateway
container's own loopback, which no network reaches: not the host's, not an app container
beside it on the bridge. berth reaches it through the Docker API (docker exec of a small
client in the gateway's image, which has python3 for the watcher), the way Kamal drives
kamal-proxy; so it works alike on the local engine and on SSH hosts, and two stacks'
gateways on one host never contend for an admin port.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from planner.serving import compose_script, gateway
from planner.resources import reach_port
from providers.base import Provider
from providers.types import ProviderError
from state.address import Address

if TYPE_CHECKING:
    from planner.recorder import Recorder
    from state.model import ResourceState

DRAIN_TIMEOUT = gateway.DRAIN_TIMEOUT


class LiveRoutes:
    def __init__(self, recorder: Recorder, stack: str) -> None:
        self.recorder = recorder
        self.stack = stack
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._held: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self._draining: dict[str, set[int]] = defaultdict(set)
        self.sharing: dict[str, list[str]] = {}  # by host: the other stacks its gateway served at the last load

    def hold(self, host: str, app: str, port: int | None) -> None:
        """Keep an old replica's port routed while its successor starts."""
        if port is not None:
            with self._guard:
                self._held[host][app].add(port)

    def release(self, host: str, app: str, port: int | None, *, draining: bool = False) -> None:
        """Take an old replica's port out of the routes; draining: keep counting its
        requests in flight until drained() says they are done."""
        with self._guard:
            self._held[host][app].discard(port)  # type: ignore[arg-type]
            if draining and port is not None:
                self._draining[host].add(port)

    def drained(self, host: str, port: int | None) -> None:
        with self._guard:
            self._draining[host].discard(port)  # type: ignore[arg-type]

    def upstreams(self, host: str, apps: Any) -> dict[str, list[int]]:
        """The ports to route to for apps on host: ready replicas in state, and held ones."""
        found: dict[str, set[int]] = defaultdict(set)
        for resource in self.recorder.state.resources.values():
            if resource.type == "container" and resource.host == host and resource.status == "ready":
                port = reach_port(resource.attributes)
                if port is not None:
                    found[resource.address.app].add(port)
        with self._guard:
            for app, ports in self._held[host].items():
                found[app] |= ports
        return {app: sorted(found.get(app, ())) for app in apps}

    def live(self, host: str) -> ResourceState | None:
        """host's gateway when it runs with routes loaded, else None."""
        resource = self.recorder.get(Address.gateway(host))
        return resource if resource is not None and resource.status == "ready" else None

    def load(self, provider: Provider, host: str, container_id: str, attrs: dict[str, Any]) -> dict[str, list[int]]:
        """The stack's fragment for attrs and the current upstreams into the gateway
        container_id, and every stack's composed and loaded (POST /load): Caddy swaps to it
        without dropping connections. Returns the upstreams loaded. OSError when the admin
        API does not answer."""
        with self._locks[host]:
            upstreams = self.upstreams(host, attrs["routes"])
            with self._guard:
                draining = sorted(self._draining[host])
            body = json.dumps(gateway.fragment(self.stack, attrs, upstreams, draining)).encode()
            answer = compose(provider, container_id, ["put", self.stack], body)
            self.sharing[host] = [name for name in answer.get("stacks") or () if name != self.stack]
        return upstreams

    def drain_timeout(self, host: str) -> float:
        """[gateway] drain_timeout of the host's running gateway."""
        live = self.live(host)
        return float(live.attributes.get("drain_timeout") or gateway.DRAIN_TIMEOUT) if live else gateway.DRAIN_TIMEOUT

    def push(self, provider: Provider, host: str) -> bool:
        """Reload a running gateway's routes with the current upstreams; False when host
        has no running gateway (the apply's gateway step will load them)."""
        live = self.live(host)
        if live is None:
            return False
        try:
            self.load(provider, host, live.id, live.attributes)
        except OSError as err:
            raise ProviderError(f"gateway on {host}: its admin API did not answer: {err}") from None
        return True

    def drain(self, provider: Provider, host: str, port: int, timeout: float = DRAIN_TIMEOUT) -> int:
        """Wait until the gateway has no request in flight to the replica on port (released
        with draining=True and pushed). Returns how many were still in flight when time
        ran out."""
        live = self.live(host)
        if live is None:
            return 0
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, text = request(provider, live.id, live.attributes["admin_port"], "GET",
                                                     "/reverse_proxy/upstreams", timeout=5)
            except OSError:
                return 0  # no gateway to ask: nothing of ours in flight through it
            listed = json.loads(text) if status == 200 else []
            busy = sum(int(u.get("num_requests") or 0) for u in listed if u.get("address") == gateway.upstream(port))
            if not busy or time.monotonic() > deadline:
                return busy
            time.sleep(0.1)


def compose(provider: Provider, container_id: str, args: list[str], body: bytes | None = None) -> dict[str, Any]:
    """Run the gateway's compose_script (put STACK, drop STACK, show) in container_id:
    its JSON answer. OSError when the admin API or the container does not answer;
    ProviderError when Caddy refuses the composed config."""
    code, output = _run_with_body(provider, container_id, ["python3", "-I", gateway.COMPOSE_FILE, *args],
                                  body, "berth-fragment")
    try:
        answer = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise OSError(f"the gateway's route composer: {output.strip()[:300] or f'exit code {code}'}") from None
    if code == 5:
        pending = list(answer.get("pending") or [])
        said = ca_said(provider.logs(container_id, 400), pending)
        raise ProviderError(f"the gateway has no TLS certificate for {', '.join(pending)} "
                            f"{compose_script.CERTIFICATE_WAIT:.0f} s after loading its routes; "
                            + (f"its CA said: {said}" if said else "its container's log (`docker logs`) says no more"))
    if code == 4:
        raise ProviderError(f"the gateway refused the routes (HTTP {answer.get('status')}): {answer.get('body', '').strip()}")
    if code != 0:
        raise OSError(f"admin API of the gateway: {answer.get('body') or answer.get('error') or f'exit code {code}'}")
    return answer


def ca_said(log: str, names: list[str], most: int = 3) -> str:
    """The last few errors and warnings Caddy logged about certificates (its loggers tls.*
    and pki.*, as JSON lines), those naming one of names first: what a failed issuance
    says, for the apply's error. "" when it logged none."""
    found: list[tuple[bool, str]] = []
    for line in log.splitlines():
        try:
            entry = json.loads(line[line.index("{"):])
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("level") not in ("warn", "error"):
            continue
        if not str(entry.get("logger", "")).startswith(("tls", "pki")):
            continue
        subject = entry.get("identifier") or entry.get("subject") or ""
        text = f"{entry.get('msg', '')}: {entry.get('error', '')}".rstrip(": ")
        found.append((subject in names, f"{text} ({subject})" if subject else text))
    chosen = [t for named, t in found if named] or [t for _, t in found]
    return "; ".join(dict.fromkeys(chosen[-most:]))


def _run_with_body(provider: Provider, container_id: str, command: list[str], body: bytes | None,
                   prefix: str) -> tuple[int, str]:
    """Run command in the gateway container, body (if any) copied in as a file whose path is
    the command's last argument: put_archive, not an argument, as a config of many apps
    outgrows one argument. OSError when the container does not run it."""
    files = {}
    if body is not None:
        files[f"/tmp/{prefix}-{secrets.token_hex(8)}.json"] = body
        command = [*command, *files]
    try:
        return provider.run_in(container_id, command, files)
    except ProviderError as err:
        raise OSError(str(err)) from None


def write_keys(provider: Provider, container_id: str, content: bytes, path: str) -> None:
    """The API keys' hashes (gateway.keys_file) into the gateway's keys_file_path (or another
    file of the gateway's: a TLS certificate or key): copied in beside it (mode 0600), then
    renamed over it, so a reader sees the old file or the new one, never half of one.
    OSError when the container is not running."""
    staged = f"{path}.{secrets.token_hex(6)}"
    try:
        code, output = provider.run_in(container_id, ["mv", "-f", staged, path], {staged: content})
    except ProviderError as err:
        raise OSError(str(err)) from None
    if code != 0:
        raise OSError(f"cannot write the gateway's API keys: {output.strip() or f'exit code {code}'}")


def read_ca(provider: Provider, container_id: str, timeout: float = 15.0) -> str:
    """The PEM of the gateway's own CA root (tls = "internal"), which Caddy makes when
    the config that needs it is loaded. A public certificate: state keeps it, for `berth
    output`. ProviderError when it does not appear in time."""
    deadline = time.monotonic() + timeout
    while True:
        code, output = provider.run_in(container_id, ["sh", "-c", f'cat "{gateway.CA_ROOT}"'])
        if code == 0 and "BEGIN CERTIFICATE" in output:
            return output
        if time.monotonic() > deadline:
            raise ProviderError(f"the gateway made no CA of its own within {timeout:.0f} s: {output.strip()[:200]}")
        time.sleep(0.2)


# -- the admin API, from inside the gateway's container ------------------------------

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
    code, output = _run_with_body(provider, container_id,
                                  ["python3", "-I", "-c", CLIENT, str(admin_port), str(timeout), method, path],
                                  body, "berth-admin")
    status, _, text = output.partition("\n")
    if code != 0 or not status.isdigit():
        raise OSError(f"admin API on the gateway's 127.0.0.1:{admin_port}: {output.strip() or f'exit code {code}'}")
    return int(status), text
