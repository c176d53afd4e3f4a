"""A host's shared gateway: every stack's routes kept apart, composed into one Caddy config.

Stdlib only, imports nothing of berth: the gateway container is started with this file's
source (planner.serving.gateway.container_spec), and berth runs it there (docker exec),
as it runs the admin client. berth imports it too, for compose(), which unit tests check.

One gateway serves every stack on a host that asks for its port (as one kamal-proxy
serves every app of a host). Each stack's part of the config is a fragment, one JSON file
per stack in FRAGMENTS, on the gateway's named volume (so it outlives the container, as
Caddy's data does: the CA of tls = "internal" included). A stack's apply writes only its
own fragment; every write composes the config from all fragments and loads it, under an
flock of LOCK_FILE: two berth processes of two stacks on one host never drop each other's
routes. The container composes its boot config from the fragments too, so a new
container serves every stack's routes from its start.

argv: put STACK FILE (write STACK's fragment from FILE, removed once read, and load) |
drop STACK (remove it and load; prints how many stacks are left) | show (the fragments'
summaries, as JSON) | boot CONFIG_FILE (write the composed config there).
Prints one JSON object; exits 3 when the admin API does not answer, 4 when it refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from typing import Any

DATA_DIR = "/var/lib/berth-gateway"  # the gateway's named volume
FRAGMENTS = f"{DATA_DIR}/stacks"
KEYS_DIR = f"{DATA_DIR}/keys"  # one file of API-key hashes per stack (auth_script)
TLS_DIR = f"{DATA_DIR}/tls"  # tls = { cert, key }: STACK.crt, STACK.key
LOCK_FILE = f"{DATA_DIR}/lock"
ADMIN_FILE = "/etc/caddy/berth-admin"  # the admin API's address, written at boot
REQUEST_ID = "X-Request-Id"
STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NOT_FOUND = "berth gateway: no app here; use /APP/predict, /APP/sync/PATH or /APP/PATH\n"


def compose(fragments: dict[str, dict[str, Any]], admin_listen: str, lead: str | None = None) -> dict[str, Any]:
    """The whole Caddy config for every stack's fragment, as POST /load takes it.

    A fragment: port, tls ({mode, names, files?, tags?} or absent), routes (its apps'
    path routes), by_host (its apps' Host-header routes), draining (ports of old replicas
    still counted). In order: a request without X-Request-Id gets one; every stack's path
    routes (by stack name); every stack's Host routes (a path route wins on any Host);
    the draining ports; 404. The listening port and TLS mode are the lead stack's (the
    one writing; plans refuse stacks that disagree), certificate names are every stack's."""
    names = sorted(fragments)
    first = fragments[lead] if lead in fragments else fragments[names[0]] if names else {}
    routes: list[dict[str, Any]] = [{
        "match": [{"not": [{"header": {REQUEST_ID: []}}]}],  # [] = the header is present
        "handle": [{"handler": "headers", "request": {"set": {REQUEST_ID: ["{http.request.uuid}"]}}}],
    }]
    for name in names:
        routes += fragments[name].get("routes") or []
    for name in names:
        routes += fragments[name].get("by_host") or []
    draining = sorted({port for name in names for port in fragments[name].get("draining") or []})
    if draining:
        routes.append(draining_route(draining))
    routes.append({"handle": [{"handler": "static_response", "status_code": 404, "body": NOT_FOUND}]})
    if not first:
        return {"admin": {"listen": admin_listen}}
    server: dict[str, Any] = {
        "listen": [f":{first['port']}"],
        "routes": routes,
        # No redirect server on :80 and no names taken from routes: certificates are for
        # the fragments' tls names alone, and plain HTTP is served only without tls.
        "automatic_https": {"disable": True},
    }
    apps: dict[str, Any] = {"http": {"servers": {"berth": server}}}
    tls = first.get("tls")
    if tls:
        mode = tls["mode"]
        same = [fragments[n]["tls"] for n in names if (fragments[n].get("tls") or {}).get("mode") == mode]
        subjects = list(dict.fromkeys(n for t in [tls, *same] for n in t.get("names") or []))
        if mode == "secrets":
            server["tls_connection_policies"] = [{"default_sni": tls["names"][0]}]
            # Each stack's files; the tags are the secrets' digests, so that a rotated one
            # makes a config Caddy loads anew (an equal one it would skip).
            apps["tls"] = {"certificates": {"load_files": [
                {"certificate": t["files"][0], "key": t["files"][1], "tags": list(t.get("tags") or [])}
                for t in same if t.get("files")]}}
        elif mode == "acme":
            # Caddy's ACME issuer through the TLS-ALPN challenge on the gateway's own port
            # (so 443, or 443 forwarded to it); no HTTP challenge: the gateway serves no :80.
            server["tls_connection_policies"] = [{}]
            apps["tls"] = {"certificates": {"automate": subjects}, "automation": {"policies": [{
                "subjects": subjects, "issuers": [{"module": "acme", "challenges": {"http": {"disabled": True}}}]}]}}
        else:
            server["tls_connection_policies"] = [{"default_sni": tls["names"][0]}]
            apps["tls"] = {"certificates": {"automate": subjects},
                           "automation": {"policies": [{"subjects": subjects, "issuers": [{"module": "internal"}]}]}}
            # Its CA stays on the gateway's volume: nothing to install in a trust store there.
            apps["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
    return {"admin": {"listen": admin_listen}, "apps": apps}


def draining_route(ports: list[int]) -> dict[str, Any]:
    """A route no request matches (every request passes the empty matcher set, so none
    passes its negation). It keeps old replicas in Caddy's upstream pool after they left
    their app's routes: the pool's count of requests in flight to them (GET
    /reverse_proxy/upstreams) then lives on across the reload, and is what tells a
    rolling replace when the old replica may be stopped."""
    return {"match": [{"not": [{}]}], "terminal": True, "handle": [{
        "handler": "reverse_proxy", "upstreams": [{"dial": f"host.docker.internal:{port}"} for port in ports]}]}


def summary(fragment: dict[str, Any]) -> dict[str, Any]:
    """What a plan of another stack needs to know of this one: to refuse a clash."""
    return {key: fragment.get(key) for key in ("port", "admin_port", "tls_mode", "apps", "domains")}


# -- in the container ----------------------------------------------------------------

def _fragments() -> dict[str, dict[str, Any]]:
    found = {}
    for entry in sorted(os.listdir(FRAGMENTS)) if os.path.isdir(FRAGMENTS) else ():
        if entry.endswith(".json"):
            try:
                with open(os.path.join(FRAGMENTS, entry)) as f:
                    found[entry[:-5]] = json.load(f)
            except (OSError, ValueError):
                continue  # half-written by a crash before the rename: never; a stray file: skipped
    return found


def _write(path: str, data: bytes) -> None:
    staged = f"{path}.{os.getpid()}"
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(staged, path)


def _load(config: dict[str, Any]) -> tuple[int, str]:
    import http.client

    host, _, port = _admin().rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("POST", "/load", body=json.dumps(config).encode(), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as err:
        return 0, getattr(err, "strerror", None) or str(err) or type(err).__name__


def _admin() -> str:
    with open(ADMIN_FILE) as f:
        return f.read().strip()


def main(argv: list[str]) -> int:
    command = argv[0]
    os.makedirs(FRAGMENTS, exist_ok=True)
    os.makedirs(KEYS_DIR, mode=0o700, exist_ok=True)
    os.makedirs(TLS_DIR, mode=0o700, exist_ok=True)
    if command == "boot":
        os.makedirs(os.path.dirname(ADMIN_FILE), exist_ok=True)
        _write(ADMIN_FILE, os.environ["BERTH_GATEWAY_ADMIN"].encode())
        _write(argv[1], json.dumps(compose(_fragments(), _admin())).encode())
        return 0
    if command == "show":
        print(json.dumps({name: summary(f) for name, f in _fragments().items()}))
        return 0
    stack = argv[1]
    if not STACK_NAME.match(stack):
        print(json.dumps({"error": f"not a stack name: {stack!r}"}))
        return 2
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed, or when this process dies
        path = os.path.join(FRAGMENTS, f"{stack}.json")
        if command == "put":
            with open(argv[2], "rb") as f:
                data = f.read()
            os.unlink(argv[2])
            json.loads(data)
            _write(path, data)
        elif command == "drop":
            for gone in (path, os.path.join(KEYS_DIR, stack), *(os.path.join(TLS_DIR, f"{stack}.{e}") for e in ("crt", "key"))):
                try:
                    os.unlink(gone)
                except FileNotFoundError:
                    pass
        fragments = _fragments()
        config = compose(fragments, _admin(), stack)
        status, body = _load(config)
        pending = await_certificates(*internal_subjects(config)) if status == 200 else []
    print(json.dumps({"status": status, "body": body[:2000], "stacks": sorted(fragments), "pending": pending}))
    return 5 if pending else 0 if status == 200 else 3 if status == 0 else 4


# seconds. Caddy's own CA signs in milliseconds, but CertMagic tries a failed issuance
# again only after a minute (its first retry interval): the wait covers that one retry.
CERTIFICATE_WAIT = 75.0


def internal_subjects(config: dict[str, Any]) -> tuple[int, list[str]]:
    """The gateway's port and the names its own CA certifies (tls = "internal"), else (0, [])."""
    tls = config.get("apps", {}).get("tls") or {}
    issuers = [i for p in (tls.get("automation") or {}).get("policies") or [] for i in p.get("issuers") or []]
    if not any(i.get("module") == "internal" for i in issuers):
        return 0, []
    listen = config["apps"]["http"]["servers"]["berth"]["listen"][0]
    return int(listen.rpartition(":")[2]), list((tls.get("certificates") or {}).get("automate") or [])


def await_certificates(port: int, subjects: list[str], timeout: float = CERTIFICATE_WAIT) -> list[str]:
    """Wait until the gateway completes a TLS handshake for each subject: Caddy obtains the
    certificates of a config after POST /load has answered, so a client right after an apply
    could meet a handshake with no certificate ("tlsv1 alert internal error"). The names
    still without one at the timeout; [] when all have one. An IP address is asked without
    SNI, as clients ask it (Caddy answers with the default_sni name's certificate)."""
    import ipaddress
    import socket
    import ssl
    import time

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # whether one is served, not whom it is from
    deadline = time.monotonic() + timeout
    waiting = list(subjects)
    while waiting:
        name = waiting[0]
        try:
            ipaddress.ip_address(name)
            sni = None
        except ValueError:
            sni = "berth-check." + name[2:] if name.startswith("*.") else name
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with context.wrap_socket(raw, server_hostname=sni):
                    waiting.pop(0)
                    continue
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                return waiting
            time.sleep(0.05)
    return []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
