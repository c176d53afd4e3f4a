"""The gateway's API keys, public apps, domains and drain timeout, as data: what the
attributes and Caddy config hold, what diff does when a key rotates, the key check's
program itself. No Docker."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from typing import Any

from planner.desired import AppConfig, Stack
from planner.diff import diff
from planner.plan import Action
from planner.serving import gateway
from providers.types import Observation, ObservedContainer
from state.address import Address
from state.model import ResourceState, State

STACK = "demo"
DIGESTS = {"gateway_key": "hmac-sha256:aa"}


def stack(keys: tuple[str, ...] = ("gateway_key",), drain: float = 30.0, **app_fields: Any) -> Stack:
    fields = {"name": "llm", "image": "srv:1", "port": 8000, "host_port": 18000, "readiness": "/ready",
              "predict": "/v1/chat/completions"} | app_fields
    return Stack(name=STACK, file="/x/berth.toml", apps={"llm": AppConfig(**fields)}, gateway_port=8080,
                 gateway_api_keys=keys, gateway_drain_timeout=drain)


def routes_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["apps"]["http"]["servers"]["berth"]["routes"]


def test_keys_are_recorded_as_digests_and_run_the_key_check() -> None:
    attrs = gateway.attributes(stack(), "local", DIGESTS)
    assert attrs["api_keys"] == DIGESTS and attrs["auth"] == gateway.PROGRAMS_HASH
    spec = gateway.container_spec(STACK, Address.gateway("local"), attrs)
    assert spec.env["BERTH_GATEWAY_AUTH"] == gateway.AUTH_SCRIPT
    assert f"while :; do python3 -I {gateway.AUTH_FILE} {gateway.AUTH_SOCKET}; sleep 1; done &" in spec.command[-1]
    assert spec.command[-1].index(gateway.AUTH_FILE) < spec.command[-1].index("exec caddy")


def test_a_shared_gateway_runs_the_key_check_with_or_without_this_stacks_keys() -> None:
    """Another stack on the gateway may add keys at any time, live: the check always runs,
    and the container's config hash does not depend on one stack's keys."""
    attrs = gateway.attributes(stack(keys=()), "local")
    assert not {"api_keys", "drain_timeout"} & set(attrs) and attrs["auth"] == gateway.PROGRAMS_HASH
    assert attrs["routes"] == {"llm": {"readiness": "/ready", "predict": "/v1/chat/completions", "probe_interval": 10.0}}
    spec = gateway.container_spec(STACK, Address.gateway("local"), attrs)
    assert spec.env["BERTH_GATEWAY_AUTH"] == gateway.AUTH_SCRIPT and gateway.AUTH_FILE in spec.command[-1]
    with_keys = gateway.attributes(stack(), "local", DIGESTS)
    assert gateway.config_hash(with_keys) == gateway.config_hash(attrs)


def test_every_route_of_an_app_asks_the_key_check_first_unless_it_is_public() -> None:
    config = gateway.caddy_config(gateway.attributes(stack(), "local", DIGESTS), {"llm": [18000]})
    _, predict, sync, plain, _ = routes_of(config)
    for route in (predict, sync, plain):
        auth = route["handle"][0]
        assert auth["handler"] == "reverse_proxy"
        assert auth["upstreams"] == [{"dial": f"unix/{gateway.AUTH_SOCKET}"}]
        assert auth["rewrite"] == {"method": "GET", "uri": f"/{STACK}"}  # no body goes to the check; the stack's keys
        [passed] = auth["handle_response"]
        assert passed["match"] == {"status_code": [2]}
        assert passed["routes"][0]["handle"] == [{"handler": "headers", "request": {"delete": ["Authorization"]}}]
        assert route["handle"][-1]["upstreams"] == [{"dial": "host.docker.internal:18000"}]
    public = gateway.caddy_config(gateway.attributes(stack(public=True), "local", DIGESTS), {"llm": [18000]})
    assert gateway.attributes(stack(public=True), "local", DIGESTS)["routes"]["llm"]["public"] is True
    assert all(r["handle"][0]["handler"] != "reverse_proxy" for r in routes_of(public)[1:4])
    no_keys = gateway.caddy_config(gateway.attributes(stack(keys=()), "local"), {"llm": [18000]})
    assert all(r["handle"][0]["handler"] != "reverse_proxy" for r in routes_of(no_keys)[1:4])


def test_replies_keep_caddys_own_flushing() -> None:
    """Caddy flushes streams (SSE, chunked) of itself; flush_interval -1 broke rolls."""
    config = gateway.caddy_config(gateway.attributes(stack(), "local", DIGESTS), {"llm": [18000]})
    assert "flush_interval" not in routes_of(config)[3]["handle"][-1]


def test_domains_route_by_host_after_every_path_route() -> None:
    attrs = gateway.attributes(stack(domains=("llm.example.com",)), "local", DIGESTS)
    assert attrs["routes"]["llm"]["domains"] == ["llm.example.com"]
    routes = routes_of(gateway.caddy_config(attrs, {"llm": [18000]}))
    by_host = routes[4]
    assert by_host["match"] == [{"host": ["llm.example.com"]}]
    assert by_host["handle"][0]["upstreams"] == [{"dial": f"unix/{gateway.AUTH_SOCKET}"}]  # keys here too
    assert by_host["handle"][-1]["upstreams"] == [{"dial": "host.docker.internal:18000"}]
    assert "rewrite" not in json.dumps(by_host["handle"][1:])  # the path as the app has it
    assert routes[-1]["handle"][0]["status_code"] == 404


def test_drain_timeout_is_recorded_when_not_the_default() -> None:
    assert gateway.attributes(stack(drain=5.0), "local")["drain_timeout"] == 5.0


def applied(desired: Stack, digests: dict[str, str]) -> tuple[State, dict[str, Observation]]:
    address = Address.gateway("local")
    attrs = gateway.attributes(desired, "local", digests) | {"upstreams": {"llm": [18000]}}
    spec = gateway.container_spec(STACK, address, attrs)
    state = State(stack=STACK, serial=3, resources={str(address): ResourceState(
        address=str(address), type="gateway", host="local", id="g1", status="ready", attributes=attrs)})
    container = ObservedContainer(id="g1", name=attrs["name"], state="running", image_id="", labels=spec.labels)
    return state, {"local": Observation(host="local", containers=(container,))}


def gateway_change(desired: Stack, state: State, observed: dict[str, Observation], digests: dict[str, str]):
    plan = diff(desired, state, observed, {}, secret_digests=digests)
    [change] = [c for c in plan.changes if c.address == "gateway@local"]
    return change


def test_a_rotated_or_added_key_reloads_the_gateway_in_place() -> None:
    state, observed = applied(stack(), DIGESTS)
    assert gateway_change(stack(), state, observed, DIGESTS).action is Action.NOOP
    rotated = gateway_change(stack(), state, observed, {"gateway_key": "hmac-sha256:bb"})
    assert rotated.action is Action.UPDATE and rotated.after["api_keys"] == {"gateway_key": "hmac-sha256:bb"}
    both = ("gateway_key", "second")
    added = gateway_change(stack(keys=both), state, observed, DIGESTS | {"second": "hmac-sha256:cc"})
    assert added.action is Action.UPDATE


def test_keys_are_turned_on_live_in_the_shared_gateway() -> None:
    state, observed = applied(stack(keys=()), {})
    change = gateway_change(stack(), state, observed, DIGESTS)
    assert change.action is Action.UPDATE and change.forces_replacement == []


def test_the_keys_file_holds_hashes_only() -> None:
    assert gateway.keys_file([b"k1", b"k2"]) == (hashlib.sha256(b"k1").hexdigest() + "\n"
                                                 + hashlib.sha256(b"k2").hexdigest() + "\n").encode()


def _auth_script(tmp_path):
    spec = importlib.util.spec_from_file_location("auth_script", gateway.Path(gateway.__file__).parent / "auth_script.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.KEYS_DIR = str(tmp_path)
    return module


def test_the_key_check_takes_bearer_and_api_key_and_rereads_its_file(tmp_path) -> None:
    check = _auth_script(tmp_path)
    assert not check.allowed("Bearer k1", "s1")  # no file yet: nothing passes
    (tmp_path / "s1").write_bytes(gateway.keys_file([b"k1"]))
    assert check.allowed("Bearer k1", "s1") and check.allowed("Api-Key k1", "s1") and check.allowed("bearer  k1 ", "s1")
    assert not check.allowed("Bearer k2", "s1") and not check.allowed("Basic k1", "s1") and not check.allowed("k1", "s1")
    assert not check.allowed(None, "s1") and not check.allowed("Bearer ", "s1")
    (tmp_path / "s1.new").write_bytes(gateway.keys_file([b"k2"]))
    (tmp_path / "s1.new").replace(tmp_path / "s1")  # as berth writes it: renamed over the old one
    assert check.allowed("Bearer k2", "s1") and not check.allowed("Bearer k1", "s1")


def test_each_stack_of_a_shared_gateway_has_its_own_keys(tmp_path) -> None:
    check = _auth_script(tmp_path)
    (tmp_path / "s1").write_bytes(gateway.keys_file([b"k1"]))
    (tmp_path / "s2").write_bytes(gateway.keys_file([b"k2"]))
    assert check.allowed("Bearer k1", "s1") and check.allowed("Bearer k2", "s2")
    assert not check.allowed("Bearer k1", "s2") and not check.allowed("Bearer k2", "s1")
    assert not check.allowed("Bearer k1", "") and not check.allowed("Bearer k1", "../tmp/s1")


def test_tls_internal_certifies_the_hosts_names_and_domains_with_the_gateways_own_ca() -> None:
    desired = stack(domains=("llm.example.com",)).model_copy(update={"gateway_tls": "internal"})
    attrs = gateway.attributes(desired, "local", DIGESTS)
    names = ["127.0.0.1", "localhost", "::1", "llm.example.com"]
    assert attrs["tls"] == {"mode": "internal", "names": names}
    config = gateway.caddy_config(attrs, {"llm": [18000]})
    server = config["apps"]["http"]["servers"]["berth"]
    assert server["tls_connection_policies"] == [{"default_sni": "127.0.0.1"}]  # a client of an IP sends no name
    assert config["apps"]["tls"]["certificates"] == {"automate": names}
    assert config["apps"]["tls"]["automation"]["policies"] == [{"subjects": names, "issuers": [{"module": "internal"}]}]
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    plain = gateway.caddy_config(gateway.attributes(stack(), "local", DIGESTS), {"llm": [18000]})
    assert "tls" not in plain["apps"] and "tls_connection_policies" not in plain["apps"]["http"]["servers"]["berth"]


def test_turning_tls_on_reloads_the_gateway_in_place() -> None:
    state, observed = applied(stack(), DIGESTS)
    change = gateway_change(stack().model_copy(update={"gateway_tls": "internal"}), state, observed, DIGESTS)
    assert change.action is Action.UPDATE and change.after["tls"]["mode"] == "internal"


def test_an_ssh_hosts_certificate_is_for_its_address() -> None:
    from planner.desired import HostConfig

    desired = Stack(name=STACK, file="/x/berth.toml", gateway_port=8443, gateway_tls="internal",
                    apps={"llm": AppConfig(name="llm", image="srv:1", port=8000, host_port=None, host="gpu")},
                    hosts={"gpu": HostConfig(name="gpu", user="ubuntu", address="10.0.0.5")})
    assert gateway.tls_names(desired, "gpu") == ["10.0.0.5"]


def test_a_port_range_reaches_the_replicas_spec_and_is_no_reason_to_replace() -> None:
    from planner.attributes import CONTAINER, ChangeClass
    from planner.resources import container_attributes, container_spec

    app = AppConfig(name="llm", image="srv:1", port=8000, host_port=None, port_range=(40000, 40009))
    attrs = container_attributes(STACK, app, 0, "srv:1")
    assert attrs["port_range"] == [40000, 40009]
    assert container_spec(STACK, Address.container("llm", 0, "local"), attrs).pick_ports == (40000, 40009)
    assert "port_range" not in CONTAINER.keys(ChangeClass.REPLACE)
    plain = container_attributes(STACK, app.model_copy(update={"port_range": None}), 0, "srv:1")
    assert "port_range" not in plain


def test_tls_from_secrets_loads_the_files_berth_writes_tagged_with_their_digests() -> None:
    desired = stack().model_copy(update={"gateway_tls": "secrets", "gateway_tls_secrets": ("crt", "key")})
    digests = DIGESTS | {"crt": "hmac-sha256:c1", "key": "hmac-sha256:k1"}
    attrs = gateway.attributes(desired, "local", digests)
    assert attrs["tls"] == {"mode": "secrets", "names": ["127.0.0.1", "localhost", "::1"], "cert": "crt",
                            "key": "key", "versions": ["hmac-sha256:c1", "hmac-sha256:k1"]}
    config = gateway.caddy_config(attrs, {"llm": [18000]})
    assert config["apps"]["tls"] == {"certificates": {"load_files": [{
        "certificate": gateway.tls_files(STACK)[0], "key": gateway.tls_files(STACK)[1],
        "tags": ["hmac-sha256:c1", "hmac-sha256:k1"]}]}}
    assert "pki" not in config["apps"]
    state, observed = applied(desired, digests)
    rotated = gateway_change(desired, state, observed, digests | {"key": "hmac-sha256:k2"})
    assert rotated.action is Action.UPDATE


def test_tls_acme_certifies_the_domains_alone_through_tls_alpn() -> None:
    desired = stack(domains=("llm.example.com",)).model_copy(update={"gateway_tls": "acme", "gateway_port": 443})
    attrs = gateway.attributes(desired, "local", DIGESTS)
    assert attrs["tls"] == {"mode": "acme", "names": ["llm.example.com"]}
    config = gateway.caddy_config(attrs, {"llm": [18000]})
    [policy] = config["apps"]["tls"]["automation"]["policies"]
    assert policy == {"subjects": ["llm.example.com"],
                      "issuers": [{"module": "acme", "challenges": {"http": {"disabled": True}}}]}
    assert config["apps"]["http"]["servers"]["berth"]["tls_connection_policies"] == [{}]
    assert "pki" not in config["apps"]
