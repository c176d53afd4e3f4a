"""Health now: per container in state, what its host says and what its probes answer,
read in parallel (for `berth status`). Nothing is written."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

from planner.serving import routes
from planner.resources import reach_port
from providers.base import Provider
from state.address import Address
from state.model import State

PROBE_TIMEOUT = 2.0
WATCHER_LOG_TAIL = 5000  # lines of a watcher's log read for its restarts (each restart line carries its count)


@dataclass(frozen=True)
class ReplicaHealth:
    app: str
    address: str
    host: str
    container: str  # short ID, "" when not created
    state: str  # running, exited, restarting, removed, "not created"
    readiness: str  # "ready", "not ready: HTTP 404", "-" when not checked
    liveness: str  # "live", "failing: ...", "-" when none is configured
    image: str
    since: str  # when the container started (ISO 8601, UTC), "" when unknown
    restarts: int = 0  # by Docker's restart policy (RestartCount)
    tainted: bool = False  # apply saw it fail (readiness; a gateway's routes): the next apply replaces it
    watcher_restarts: int = 0  # by the host's liveness watcher, since that watcher started
    last_watcher_restart: dict[str, str] | None = None  # {"time", "reason"} of its latest
    url: str = ""  # where the replica (or gateway) answers: http://HOST-ADDRESS:PORT; "" when none

    @property
    def healthy(self) -> bool:
        return (not self.tainted and self.state == "running" and self.readiness == "ready"
                and self.liveness in ("live", "-"))

    def as_dict(self) -> dict[str, Any]:
        """For JSON: since as RFC 3339 with its zone (Docker's StartedAt is UTC)."""
        since = self.since.replace(" ", "T") + "Z" if self.since else None
        return asdict(self) | {"healthy": self.healthy, "since": since}


def check(state: State | None, providers: dict[str, Provider], desired_apps: list[str], parallelism: int = 16,
          address_of: Callable[[str], str] = lambda host: host) -> list[ReplicaHealth]:
    """address_of: the name a user reaches a host by (planner.endpoints.host_address)."""
    containers = [r for r in (state.resources.values() if state else ())
                  if r.type in ("container", "gateway", "watcher")]
    jobs = [(r, providers.get(r.host)) for r in containers]
    watchers = [(r, providers.get(r.host)) for r in containers if r.type == "watcher"]
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs) or 1))) as pool:
        restarted = pool.map(lambda job: _watcher_restarts(*job), watchers)
        found = list(pool.map(lambda job: _check_one(*job), jobs))
        found = _with_watcher_restarts(found, {k: v for part in restarted for k, v in part.items()})
    by_address = {str(r.address): r for r in containers}
    found = [replace(row, url=_url(by_address[row.address], address_of)) for row in found]
    have = {row.app for row in found}
    for app in desired_apps:
        if app not in have:
            found.append(ReplicaHealth(app=app, address=f"app.{app}", host="", container="", state="not created",
                                       readiness="-", liveness="-", image="", since=""))
    return sorted(found, key=lambda row: Address.parse(row.address).sort_key() if "@" in row.address
                  else Address.container(row.app, 0, "").sort_key())


def _url(resource: Any, address_of: Callable[[str], str]) -> str:
    port = resource.attributes.get("port") if resource.type == "gateway" else \
        reach_port(resource.attributes) if resource.type == "container" else None
    return f"http://{address_of(resource.host)}:{port}" if port else ""


def _check_one(resource: Any, provider: Provider | None) -> ReplicaHealth:
    row = _observe_one(resource, provider)
    if resource.status != "tainted":
        return row
    failed = "failed readiness" if resource.type == "container" else "failed"
    return replace(row, tainted=True, readiness=f"{failed} (tainted: the next apply replaces it)")


def _observe_one(resource: Any, provider: Provider | None) -> ReplicaHealth:
    attrs = resource.attributes
    address = resource.address
    base = dict(app=address.app or f"({address.kind})", address=str(address), host=resource.host, container=resource.id[:12],
                image=str(attrs.get("image", "")))
    if provider is None:
        return ReplicaHealth(**base, state="unknown (host not in the stack file)", readiness="-", liveness="-", since="")
    info = provider.container_state(resource.id)
    status = info.get("Status", "unknown")
    restarts = int(info.get("RestartCount") or 0)
    since = (info.get("StartedAt") or "")[:19].replace("T", " ") if status != "removed" else ""
    if status != "running":
        return ReplicaHealth(**base, state=status, readiness="-", liveness="-", since=since, restarts=restarts)
    if resource.type == "gateway":
        return ReplicaHealth(**base, state=status, readiness=_gateway_readiness(provider, resource.id, attrs), liveness="-",
                             since=since, restarts=restarts)
    if resource.type == "watcher":  # running is all it needs: apply confirmed it watches
        return ReplicaHealth(**base, state=status, readiness="ready", liveness="-", since=since, restarts=restarts)
    port = reach_port(attrs)
    ok, seen = provider.probe(port, attrs.get("readiness"), PROBE_TIMEOUT)
    readiness = "ready" if ok else f"not ready: {seen}"
    if attrs.get("liveness"):
        ok, seen = provider.probe(port, attrs["liveness"], PROBE_TIMEOUT)
        liveness = "live" if ok else f"failing: {seen}"
    else:
        liveness = "-"
    return ReplicaHealth(**base, state=status, readiness=readiness, liveness=liveness, since=since, restarts=restarts)


def _gateway_readiness(provider: Provider, container_id: str, attrs: dict[str, Any]) -> str:
    """Ready when it accepts connections on its port and its admin API holds berth's
    routes (a gateway that lost them would answer, but route nothing)."""
    ok, seen = provider.probe(attrs["port"], None, PROBE_TIMEOUT)
    if not ok:
        return f"not ready: port {attrs['port']}: {seen}"
    try:
        status, _ = routes.request(provider, container_id, attrs["admin_port"], "GET",
                                   "/config/apps/http/servers/berth/routes", timeout=PROBE_TIMEOUT)
    except OSError as err:
        return f"not ready: admin API: {err}"
    return "ready" if status == 200 else f"not ready: no routes loaded (admin API: HTTP {status})"


def _watcher_restarts(resource: Any, provider: Provider | None) -> dict[str, dict[str, Any]]:
    """Per short container ID, the host's watcher's latest restart of it."""
    from planner.serving.watcher_log import last_restarts

    if provider is None or not resource.id:
        return {}
    return {cid[:12]: event for cid, event in last_restarts(provider.logs(resource.id, WATCHER_LOG_TAIL)).items()}


def _with_watcher_restarts(rows: list[ReplicaHealth], restarts: dict[str, dict[str, Any]]) -> list[ReplicaHealth]:
    return [replace(row, watcher_restarts=int(event.get("restarts") or 1),
                    last_watcher_restart={"time": event.get("time", ""), "reason": event.get("reason", "")})
            if (event := restarts.get(row.container)) and row.container else row
            for row in rows]
