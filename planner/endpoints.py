"""Where each app answers, from state alone (for `berth output`, and apply's last lines):
its replicas' published addresses and, where a gateway runs on its host, the gateway's
URLs for it. No host is contacted: what state recorded is what was made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from planner.desired import Stack
from planner.resources import reach_port
from providers.base import LOCAL_HOST
from state.address import Address
from state.model import State


@dataclass(frozen=True)
class Replica:
    address: str  # app.NAME.container[I]@HOST
    host: str
    url: str  # http://HOST-ADDRESS:PUBLISHED-PORT


@dataclass(frozen=True)
class AppEndpoints:
    app: str
    hosts: list[str]
    port: int | None  # the container's own port
    replicas: list[Replica] = field(default_factory=list)
    gateway: list[str] = field(default_factory=list)  # http://HOST-ADDRESS:GATEWAY/APP/, one per host
    predict: list[str] = field(default_factory=list)  # .../APP/predict where the app names a predict path

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def host_address(stack: Stack, host: str) -> str:
    """The name a user reaches `host` by: localhost for the local engine, the SSH address
    otherwise (IPv6 in brackets already)."""
    if host == LOCAL_HOST:
        return "localhost"
    config = stack.hosts.get(host)
    return config.address if config else host


def endpoints(stack: Stack, state: State | None) -> list[AppEndpoints]:
    """Per app in the file's order (then apps only state still holds), what it serves on."""
    resources = list(state.resources.values()) if state else []
    replicas: dict[str, list[tuple[Address, Any]]] = {}
    gateways: dict[str, dict[str, Any]] = {}
    for resource in resources:
        if resource.type == "container":
            replicas.setdefault(resource.address.app, []).append((resource.address, resource))
        elif resource.type == "gateway":
            gateways[resource.host] = resource.attributes
    names = list(dict.fromkeys([*stack.apps, *sorted(replicas)]))
    found = []
    for name in names:
        mine = sorted(replicas.get(name, []), key=lambda pair: pair[0].sort_key())
        hosts = list(dict.fromkeys(r.host for _, r in mine))
        port = mine[0][1].attributes.get("port") if mine else (stack.apps[name].port if name in stack.apps else None)
        rows = [Replica(str(address), r.host, f"http://{host_address(stack, r.host)}:{reach_port(r.attributes)}")
                for address, r in mine if reach_port(r.attributes)]
        gateway, predict = [], []
        for host in hosts:
            attrs = gateways.get(host)
            route = (attrs or {}).get("routes", {}).get(name)
            if route is None:
                continue
            scheme = "https" if attrs.get("tls") else "http"
            base = f"{scheme}://{host_address(stack, host)}:{attrs['port']}/{name}"
            gateway.append(base + "/")
            if route.get("predict"):
                predict.append(base + "/predict")
        found.append(AppEndpoints(name, hosts, port, rows, gateway, predict))
    return found


def gateway_cas(state: State | None) -> dict[str, str]:
    """By host, the PEM of the CA root its gateway made for itself (tls = "internal")."""
    resources = state.resources.values() if state else ()
    return {r.host: r.attributes["ca_root"] for r in resources
            if r.type == "gateway" and r.attributes.get("ca_root")}
