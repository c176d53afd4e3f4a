"""The gateway's routes while an apply runs: which ports each host's gateway sends an
app's traffic to, and pushing them to its admin API.

The upstreams are the replicas state records as ready, plus old replicas held during a
rolling replace: the old one keeps its place until its successor is ready, then leaves
the routes and is drained (Caddy counts its requests in flight) before it is stopped.
Every push sends the whole config, built from state under a per-host lock, so that
rolls of several replicas on one host never undo each other's routes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from planner.serving import gateway, gateway_admin
from planner.resources import reach_port
from providers.base import Provider
from providers.types import ProviderError
from state.address import Address

if TYPE_CHECKING:
    from planner.recorder import Recorder
    from state.model import ResourceState

DRAIN_TIMEOUT = 30.0  # seconds an old replica's requests in flight get before it is stopped anyway


class LiveRoutes:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._held: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self._draining: dict[str, set[int]] = defaultdict(set)

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
        """POST /load of the whole config for attrs and the current upstreams to the
        gateway container_id: Caddy swaps to it without dropping connections. Returns the
        upstreams loaded. OSError when the admin API does not answer."""
        with self._locks[host]:
            upstreams = self.upstreams(host, attrs["routes"])
            with self._guard:
                draining = sorted(self._draining[host])
            body = json.dumps(gateway.caddy_config(attrs, upstreams, draining)).encode()
            status, text = gateway_admin.request(provider, container_id, attrs["admin_port"], "POST", "/load", body)
        if status != 200:
            raise ProviderError(f"gateway on {host} refused its routes (HTTP {status}): {text.strip()}")
        return upstreams

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
                status, text = gateway_admin.request(provider, live.id, live.attributes["admin_port"], "GET",
                                                     "/reverse_proxy/upstreams", timeout=5)
            except OSError:
                return 0  # no gateway to ask: nothing of ours in flight through it
            listed = json.loads(text) if status == 200 else []
            busy = sum(int(u.get("num_requests") or 0) for u in listed if u.get("address") == gateway.upstream(port))
            if not busy or time.monotonic() > deadline:
                return busy
            time.sleep(0.1)
