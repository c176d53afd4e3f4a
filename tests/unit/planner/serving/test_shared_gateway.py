"""One gateway per host and port, shared by every stack there: each stack's routes are a
fragment of its own, composed into one Caddy config; a stack's plan refuses what clashes
with the other stacks of its gateway; a per-stack gateway from before is replaced once.
As data, and the composer's commands against a directory. No Docker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from planner.desired import AppConfig, Stack
from planner.diff import diff
from planner.plan import Action
from planner.serving import compose_script, gateway, peers
from providers.types import Observation, ObservedContainer
from state.address import Address
from state.model import ResourceState, State

ADMIN = "127.0.0.1:2019"


def stack(name: str, app: str = "llm", **fields: Any) -> Stack:
    extra = {k: fields.pop(k) for k in ("domains",) if k in fields}
    return Stack(name=name, file="/x/berth.toml", gateway_port=8080, **fields, apps={
        app: AppConfig(name=app, image="srv:1", port=8000, host_port=None, readiness="/ready", **extra)})


def fragment_of(name: str, app: str, port: int, draining: list[int] | None = None, **fields: Any) -> dict[str, Any]:
    return gateway.fragment(name, gateway.attributes(stack(name, app, **fields), "local"), {app: [port]}, draining)


def routes_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["apps"]["http"]["servers"]["berth"]["routes"]


def paths(config: dict[str, Any]) -> list[str]:
    return [p for r in routes_of(config) for m in r.get("match", []) for p in m.get("path", [])]


def test_every_stacks_routes_are_composed_into_one_config_in_a_fixed_order() -> None:
    one = fragment_of("s1", "llm", 18000, draining=[17000], domains=("llm.example.com",))
    two = fragment_of("s2", "embed", 19000, draining=[17001])
    config = compose_script.compose({"s2": two, "s1": one}, ADMIN, "s2")
    routes = routes_of(config)
    assert "header" in json.dumps(routes[0]["match"])  # the X-Request-Id route first
    assert paths(config) == ["/llm/sync/*", "/llm/*", "/embed/sync/*", "/embed/*"]  # by stack name
    assert routes[5]["match"] == [{"host": ["llm.example.com"]}]  # Host routes after every path route
    assert [u["dial"] for u in routes[6]["handle"][0]["upstreams"]] == [
        "host.docker.internal:17000", "host.docker.internal:17001"]  # both stacks' draining ports
    assert routes[-1]["handle"][0]["status_code"] == 404
    assert config["apps"]["http"]["servers"]["berth"]["listen"] == [":8080"] and config["admin"] == {"listen": ADMIN}


def test_one_stack_alone_composes_to_what_its_own_gateway_served() -> None:
    attrs = gateway.attributes(stack("s1"), "local")
    assert gateway.caddy_config(attrs, {"llm": [18000]}, stack="s1") == compose_script.compose(
        {"s1": gateway.fragment("s1", attrs, {"llm": [18000]})}, ADMIN)
    assert compose_script.compose({}, ADMIN) == {"admin": {"listen": ADMIN}}  # the last one out: nothing served


def test_internal_tls_certifies_every_stacks_names() -> None:
    one = fragment_of("s1", "llm", 18000, gateway_tls="internal", domains=("a.example.com",))
    two = fragment_of("s2", "embed", 19000, gateway_tls="internal", domains=("b.example.com",))
    config = compose_script.compose({"s1": one, "s2": two}, ADMIN, "s1")
    assert config["apps"]["tls"]["certificates"]["automate"] == [
        "127.0.0.1", "localhost", "::1", "a.example.com", "b.example.com"]


@pytest.fixture
def composer(tmp_path, monkeypatch):
    """The composer's commands over a directory, with the loads it makes recorded."""
    loaded: list[dict[str, Any]] = []
    for name in ("FRAGMENTS", "KEYS_DIR", "TLS_DIR"):
        monkeypatch.setattr(compose_script, name, str(tmp_path / name.lower()))
    monkeypatch.setattr(compose_script, "LOCK_FILE", str(tmp_path / "lock"))
    monkeypatch.setattr(compose_script, "_admin", lambda: ADMIN)
    monkeypatch.setattr(compose_script, "_load", lambda config: (loaded.append(config), (200, ""))[1])
    monkeypatch.setattr(compose_script, "await_certificates", lambda port, subjects: [])  # no Caddy here to ask

    def run(*argv: str, body: dict[str, Any] | None = None) -> int:
        if body is not None:
            (tmp_path / "in.json").write_text(json.dumps(body))
            argv = (*argv, str(tmp_path / "in.json"))
        return compose_script.main(list(argv))

    run.loaded = loaded
    run.dir = tmp_path
    return run


def test_each_put_rewrites_only_its_stacks_fragment_and_drop_leaves_the_others(composer, capsys) -> None:
    assert composer("put", "s1", body=fragment_of("s1", "llm", 18000)) == 0
    assert composer("put", "s2", body=fragment_of("s2", "embed", 19000)) == 0
    assert paths(composer.loaded[-1]) == ["/llm/sync/*", "/llm/*", "/embed/sync/*", "/embed/*"]
    assert composer("put", "s1", body=fragment_of("s1", "llm", 18001)) == 0  # s1 again: s2's routes stay
    assert "/embed/*" in paths(composer.loaded[-1]) and "host.docker.internal:18001" in json.dumps(composer.loaded[-1])
    (composer.dir / "keys_dir" / "s1").write_text("hash\n")
    capsys.readouterr()
    assert composer("drop", "s1") == 0
    assert json.loads(capsys.readouterr().out)["stacks"] == ["s2"]
    assert paths(composer.loaded[-1]) == ["/embed/sync/*", "/embed/*"]
    assert not (composer.dir / "keys_dir" / "s1").exists()  # its key hashes go with it
    assert composer("drop", "s2") == 0 and json.loads(capsys.readouterr().out)["stacks"] == []
    assert composer("put", "../x", body={}) == 2  # no path out of the fragments' directory


def test_show_summarises_each_stack_for_the_others_plans(composer, capsys) -> None:
    composer("put", "s1", body=fragment_of("s1", "llm", 18000, gateway_tls="internal", domains=("a.example.com",)))
    capsys.readouterr()
    composer("show")
    assert json.loads(capsys.readouterr().out) == {"s1": {
        "port": 8080, "admin_port": 2019, "tls_mode": "internal", "apps": ["llm"], "domains": ["a.example.com"]}}


def summary(name: str, app: str, **fields: Any) -> dict[str, Any]:
    return compose_script.summary(fragment_of(name, app, 18000, **fields))


def test_a_plan_refuses_what_clashes_with_the_other_stacks_of_its_gateway() -> None:
    mine = stack("s2", "llm", domains=("a.example.com",))
    found = peers.clashes(mine, "local", {"s1": summary("s1", "llm", domains=("a.example.com",), gateway_tls="internal"),
                                          "s2": summary("s2", "other")})
    assert [(d.key, d.summary.split(",")[0]) for d in found] == [
        ("gateway.tls", "the gateway on local port 8080"),
        ("apps.llm", "/llm/ on the gateway on local port 8080"),
        ("apps.llm.domains", "domain a.example.com on the gateway on local port 8080"),
    ]
    assert "stack s1" in found[0].summary and 'tls = "internal"' in found[0].summary
    admin = peers.clashes(stack("s2", "embed", gateway_admin_port=2100), "local", {"s1": summary("s1", "llm")})
    assert [d.key for d in admin] == ["gateway.admin_port"]
    assert peers.clashes(stack("s2", "embed"), "local", {"s1": summary("s1", "llm"), "s2": summary("s2", "embed")}) == []


def test_a_gateway_of_one_stack_from_before_is_replaced_once_by_the_shared_one() -> None:
    desired = stack("demo")
    address = Address.gateway("local")
    old = {"name": "berth-demo-gateway", "image": gateway.image_tag(), "content_hash": gateway.CONTENT_HASH,
           "port": 8080, "admin_port": 2019, "network": "bridge", "routes": gateway.routes(list(desired.apps.values())),
           "upstreams": {"llm": [18000]}}
    labels = {"berth.stack": "demo", "berth.address": str(address), "berth.config-hash": gateway.config_hash(old)}
    state = State(stack="demo", serial=3, resources={str(address): ResourceState(
        address=str(address), type="gateway", host="local", id="g1", status="ready", attributes=old)})
    observed = {"local": Observation(host="local", containers=(
        ObservedContainer(id="g1", name="berth-demo-gateway", state="running", image_id="", labels=labels),))}
    plan = diff(desired, state, observed, {})
    [change] = [c for c in plan.changes if c.type == "gateway"]
    assert change.action is Action.REPLACE and change.after["name"] == "berth-gateway-8080" and change.ids == ["g1"]
    assert not gateway.is_shared(change.before["name"]) and gateway.is_shared(change.after["name"])


def test_a_put_waits_for_the_hosts_lock_another_process_holds(composer) -> None:
    """Two berth processes of two stacks: the second compose-and-load waits for the first."""
    import fcntl
    import threading

    (composer.dir / "lock").touch()
    with open(composer.dir / "lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        put = threading.Thread(target=composer, args=("put", "s1"), kwargs={"body": fragment_of("s1", "llm", 18000)})
        put.start()
        put.join(0.3)
        assert put.is_alive() and composer.loaded == []  # blocked: nothing loaded while the lock is held
    put.join(5)
    assert not put.is_alive() and paths(composer.loaded[-1]) == ["/llm/sync/*", "/llm/*"]


def test_a_destroy_takes_the_stacks_routes_out_of_a_shared_gateway_replaced_since() -> None:
    """Another stack's apply replaced the shared container: the ID state holds is gone,
    and the routes are taken out by the container's name rather than forgotten."""
    desired = stack("demo")
    address = Address.gateway("local")
    attrs = gateway.attributes(desired, "local") | {"upstreams": {"llm": [18000]}}
    state = State(stack="demo", serial=3, resources={str(address): ResourceState(
        address=str(address), type="gateway", host="local", id="gone", status="ready", attributes=attrs)})
    plan = diff(desired, state, {"local": Observation(host="local", containers=())}, {}, destroy=True)
    [change] = [c for c in plan.changes if c.type == "gateway"]
    assert (change.action, change.ids) == (Action.DELETE, ["berth-gateway-8080"])
    kept = diff(desired, state, {"local": Observation(host="local", containers=())}, {})
    [change] = [c for c in kept.changes if c.type == "gateway"]
    assert change.action is Action.CREATE  # still wanted: the running shared gateway is joined again


def test_the_names_of_tls_internal_are_awaited_and_those_still_without_a_certificate_returned() -> None:
    """After POST /load, Caddy obtains tls = "internal" certificates in the background: the
    composer waits for a handshake per name, so an apply does not end before a client can
    connect. Here nothing listens: every name is still pending when the wait runs out."""
    from planner.serving import compose_script

    config = compose_script.compose({"a": {"port": 1, "tls": {"mode": "internal", "names": ["10.0.0.1", "llm.example.com"]},
                                           "routes": []}}, "127.0.0.1:2019", "a")
    port, subjects = compose_script.internal_subjects(config)
    assert (port, subjects) == (1, ["10.0.0.1", "llm.example.com"])
    assert compose_script.await_certificates(port, subjects, timeout=0.2) == ["10.0.0.1", "llm.example.com"]
    plain = compose_script.compose({"a": {"port": 1, "routes": []}}, "127.0.0.1:2019", "a")
    assert compose_script.internal_subjects(plain) == (0, [])
    assert compose_script.await_certificates(0, []) == []


def test_a_failed_issuance_is_told_in_the_words_caddy_logged_about_the_pending_name() -> None:
    """The apply's error quotes Caddy's own certificate errors (JSON log lines of its tls
    loggers), those about a name still without a certificate first; other lines are not
    quoted, and a log without such errors quotes nothing."""
    from planner.serving.routes import ca_said

    def line(**entry: Any) -> str:
        return "2026/12/01 17:06:48.000 " + json.dumps({"ts": 1.0, **entry})

    log = "\n".join([
        line(level="info", logger="tls.obtain", msg="acquiring lock", identifier="open.example"),
        line(level="error", logger="tls.obtain", msg="could not get certificate from issuer",
             identifier="localhost", error="storage busy"),
        "plain text from the key check",
        line(level="error", logger="tls.obtain", msg="will retry", identifier="open.example",
             error="[open.example] Obtain: lock acquisition: context canceled"),
        line(level="error", logger="http.log.error", msg="dial tcp: connection refused"),
    ])
    said = ca_said(log, ["open.example"])
    assert said == "will retry: [open.example] Obtain: lock acquisition: context canceled (open.example)"
    assert ca_said(log, ["nothing.pending"]).startswith("could not get certificate from issuer: storage busy (localhost)")
    assert "connection refused" not in ca_said(log, ["nothing.pending"])
    assert ca_said(line(level="info", logger="tls", msg="cleaning storage"), ["x"]) == ""
