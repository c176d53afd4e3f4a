"""The gateway as one puts it on the internet, against real Docker: API keys ([gateway]
api_keys, public apps), where the key is not (state, plan, logs, labels, inspect),
rotation without a restart or a failed request, server-sent events chunk by chunk, and
WebSockets through /APP/..."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request

STACK = """
[stack]
name = "{stack}"

[gateway]
port = {port10}
admin_port = {port11}
api_keys = KEYS

[secrets.gateway_key]
file = "./gateway_key"

[secrets.second_key]
file = "./second_key"

[apps.llm]
build = "./streamer"
port = 8000
readiness = "/ready"
probe_interval = 1

[apps.open]
build = "./streamer"
port = 8000
readiness = "/ready"
public = true
probe_interval = 1
"""


def served(project, keys: list[str] = ("gateway_key",)) -> tuple[str, str]:
    """Apply the stack with a random value for each key secret; (gateway URL, gateway_key's value)."""
    project.copy_context("streamer")
    value = secrets.token_urlsafe(24)
    (project.path / "gateway_key").write_text(value + "\n")
    (project.path / "second_key").write_text(secrets.token_urlsafe(24) + "\n")
    project.write(STACK.replace("KEYS", json.dumps(list(keys))))
    project.berth("apply", "--auto-approve", timeout=600)
    return f"http://127.0.0.1:{project.ports[10]}", value


def call(url: str, authorization: str | None = None, request_id: str | None = None) -> tuple[int, dict, dict]:
    headers = {k: v for k, v in (("Authorization", authorization), ("X-Request-Id", request_id)) if v}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}, dict(err.headers)


def gateway_container(project):
    [container] = [c for c in project.containers() if c.labels.get("berth.address", "").startswith("gateway@")]
    return container


def replica_logs(project) -> str:
    return "".join(c.logs().decode("utf-8", "replace") for c in project.containers())


def test_a_request_needs_a_key_in_either_form_unless_its_app_is_public(project):
    url, key = served(project)
    status, body, headers = call(f"{url}/llm/refused-path", request_id="no-key-1")
    assert status == 401 and body["error"] == "unauthorized", body
    assert headers["X-Request-Id"] == "no-key-1"
    assert headers["Server"] == "Caddy"  # the gateway's, not the key check's
    assert call(f"{url}/llm/refused-path", f"Bearer {key}x")[0] == 401
    assert call(f"{url}/llm/refused-path", f"Basic {key}")[0] == 401
    assert call(f"{url}/llm/refused-path", "Bearer ")[0] == 401
    for form in (f"Bearer {key}", f"Api-Key {key}", f"bearer {key}"):
        status, body, _ = call(f"{url}/llm/sync/anything", form)
        assert (status, body["path"]) == (200, "/anything"), (form, body)
        assert body["authorization"] is None  # the app never sees the gateway's key
    # None of the refused requests reached the replica (it logs each request it answers).
    [llm] = [c for c in project.containers() if c.labels.get("berth.address") == "app.llm.container[0]@local"]
    assert "/anything" in llm.logs().decode() and "refused-path" not in llm.logs().decode()
    status, body, _ = call(f"{url}/open/anything")
    assert (status, body["path"]) == (200, "/anything")
    again = project.berth("plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0, again.stdout


def test_the_key_is_in_no_state_plan_log_label_or_inspect(project, docker_client):
    url, key = served(project)
    assert call(f"{url}/llm/x", f"Bearer {key}")[0] == 200
    assert call(f"{url}/llm/x", f"Bearer {key}-wrong")[0] == 401
    places = {
        "plan": project.berth("plan", "--no-color").stdout,
        "plan --json": project.berth("plan", "--json").stdout,
        "state": project.berth("state", "show", "gateway@local").stdout,
        "state files": "".join(p.read_bytes().decode("latin-1") for p in (project.path / ".berth").rglob("*")
                               if p.is_file()),
        "logs": replica_logs(project),
        "inspect": json.dumps([docker_client.api.inspect_container(c.id) for c in project.containers()]),
        "labels": json.dumps([c.labels for c in project.containers()]),
    }
    for where, text in places.items():
        assert key not in text, where
    # On the host, inside the gateway: only the key's hash, in a file only its owner reads.
    keys = f"/var/lib/berth-gateway/keys/{project.stack}"  # the stack's own, on the shared gateway's volume
    code, output = gateway_container(project).exec_run(["sh", "-c", f"stat -c %a {keys} && cat {keys}"])
    mode, stored = output.decode().split("\n", 1)
    assert (code, mode, stored.strip()) == (0, "600", hashlib.sha256(key.encode()).hexdigest())
    assert "hmac-sha256:" in places["state"]  # what state keeps of it: a keyed digest


def test_a_key_added_or_rotated_takes_effect_live_with_no_failed_request(project):
    url, key = served(project)
    gateway_id = gateway_container(project).id
    second = (project.path / "second_key").read_text().strip()
    assert call(f"{url}/llm/x", f"Bearer {second}")[0] == 401
    failures: list[str] = []
    ok = [0]
    stop = threading.Event()
    current = {"key": key}

    def loop() -> None:
        while not stop.is_set():
            status, body, _ = call(f"{url}/llm/loop", f"Bearer {current['key']}")
            if status == 200:
                ok[0] += 1
            else:
                failures.append(f"{status} {body}")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        project.write(STACK.replace("KEYS", json.dumps(["gateway_key", "second_key"])))
        project.berth("apply", "--auto-approve", timeout=300)  # a second key: the first still works
        assert call(f"{url}/llm/x", f"Bearer {second}")[0] == 200
        current["key"] = second  # clients move to the second key; the first one's value rotates
        rotated = secrets.token_urlsafe(24)
        (project.path / "gateway_key").write_text(rotated + "\n")
        project.berth("apply", "--auto-approve", timeout=300)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures[:5]
    assert ok[0] > 20
    assert call(f"{url}/llm/x", f"Bearer {key}")[0] == 401  # the old value is gone
    assert call(f"{url}/llm/x", f"Bearer {rotated}")[0] == 200
    assert gateway_container(project).id == gateway_id  # never restarted
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_streamed_completions_arrive_chunk_by_chunk(project):
    """Server-sent events, and a stream of a type the proxy cannot know to flush by its
    name (NDJSON): each chunk reaches the client as the app writes it, through the key
    check too (Caddy flushes a response of unknown length as it comes)."""
    url, key = served(project)
    for kind, content_type in (("sse", "text/event-stream"), ("ndjson", "application/x-ndjson")):
        request = urllib.request.Request(
            f"{url}/llm/sync/v1/chat/completions",
            data=json.dumps({"stream": True, "chunks": 4, "gap": 0.7, "type": kind}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        arrived: list[tuple[float, dict]] = []
        with urllib.request.urlopen(request, timeout=20) as response:
            assert response.headers["Content-Type"] == content_type
            for line in response:
                if line.startswith(b"data: {"):
                    arrived.append((time.time(), json.loads(line[6:])))
            ended = time.time()
        assert [event["choices"][0]["delta"]["content"] for _, event in arrived] == ["tok0", "tok1", "tok2", "tok3"]
        # Each chunk came when it was sent, well before the response ended (2.8 s of gaps).
        for at, event in arrived:
            assert at - event["sent"] < 0.5, (kind, at - event["sent"])
        assert ended - arrived[0][0] > 2.0, kind


class WebSocket:
    """A WebSocket client opened through the gateway (text frames under 126 bytes)."""

    def __init__(self, port: int, path: str, authorization: str | None, request_id: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"X-Request-Id: {request_id}"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.reader = self.sock.makefile("rb")
        status = self.reader.readline().decode()
        headers = {}
        while (line := self.reader.readline().decode().strip()):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        if " 101 " not in status:
            self.sock.close()
            raise AssertionError(status)
        expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert headers["sec-websocket-accept"] == expected.decode()

    def ask(self, message: str) -> str:
        data, mask = message.encode(), os.urandom(4)
        self.sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        head = self.reader.read(2)
        assert head[0] == 0x81, f"not a text frame: {head!r}"  # 0x88: closed
        return self.reader.read(head[1] & 0x7F).decode()

    def close(self) -> None:
        self.sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        self.sock.close()


def test_a_websocket_upgrades_through_the_gateway_keeps_its_request_id_and_outlives_a_key_rotation(project):
    url, key = served(project)
    ws = WebSocket(project.ports[10], "/llm/ws", f"Bearer {key}", "ws-req-7")
    try:
        first = ws.ask("hello")
        assert first.split(" ", 2)[::2] == ["ws-req-7", "hello"]
        # A rotated key reloads no route (the check rereads its file): the open socket lives on.
        (project.path / "gateway_key").write_text(secrets.token_urlsafe(24) + "\n")
        project.berth("apply", "--auto-approve", timeout=300)
        again = ws.ask("again")
        assert again.split(" ", 2)[::2] == ["ws-req-7", "again"] and again.split()[1] == first.split()[1]
    finally:
        ws.close()
    try:
        WebSocket(project.ports[10], "/llm/ws", None, "ws-req-8")
    except AssertionError as err:
        assert " 401 " in str(err)
    else:
        raise AssertionError("a WebSocket without a key was upgraded")


ROLLED = """
[stack]
name = "{stack}"

[gateway]
port = {port10}
admin_port = {port11}
drain_timeout = 3

[apps.llm]
build = "./streamer"
port = 8000
readiness = "/ready"
probe_interval = 1
"""


def test_an_open_websocket_finishes_on_its_old_replica_across_a_rolling_replace(project):
    """The roll reloads the routes; the open WebSocket keeps echoing on the old replica
    and is closed drain_timeout (3 s) after the new replica took traffic, and only then
    is the old replica stopped; a new WebSocket lands on the new one."""
    project.copy_context("streamer")
    project.write(ROLLED)
    project.berth("apply", "--auto-approve", timeout=600)
    port, url = project.ports[10], f"http://127.0.0.1:{project.ports[10]}"
    ws = WebSocket(port, "/llm/ws", None, "ws-roll")
    old = ws.ask("before").split()[1]
    echoes: list[tuple[float, str]] = []
    seen: dict[str, float] = {}
    stop = threading.Event()

    def talk() -> None:
        while not stop.is_set():
            try:
                reply = ws.ask("ping")
            except (AssertionError, OSError, IndexError):  # a close frame, or the connection gone
                seen["closed"] = time.monotonic()
                return
            echoes.append((time.monotonic(), reply.split()[1]))
            time.sleep(0.1)

    def watch() -> None:  # the first answer of the new replica: the roll's reload is done
        while not stop.is_set() and "new" not in seen:
            status, body, _ = call(f"{url}/llm/x")
            if status == 200 and body["replica"] != old:
                seen["new"] = time.monotonic()
            time.sleep(0.05)

    threads = [threading.Thread(target=f, daemon=True) for f in (talk, watch)]
    for thread in threads:
        thread.start()
    try:
        project.write(ROLLED + 'env = { V = "2" }\n')
        output = project.berth("apply", "--auto-approve", "--no-color", timeout=300).stdout
        done = time.monotonic()
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        ws.sock.close()
    assert "drained and stopped" in output and "still in flight" not in output, output
    assert "new" in seen and "closed" in seen, (seen, output)
    assert {replica for _, replica in echoes} == {old}, echoes[-3:]
    # Echoing on the old replica well into the roll, closed drain_timeout after the switch.
    assert any(at > seen["new"] + 1.5 for at, _ in echoes), (seen, echoes[-3:])
    assert 2.0 < seen["closed"] - seen["new"] < 4.5, seen  # on Caddy 2.6: at once (about 0)
    assert seen["closed"] < done
    again = WebSocket(port, "/llm/ws", None, "ws-roll-2")
    try:
        now = again.ask("after").split()[1]
    finally:
        again.close()
    assert now != old and now == call(f"{url}/llm/x")[1]["replica"]


def test_tls_internal_serves_https_that_curl_trusts_with_the_printed_ca(project):
    import re
    import subprocess

    project.copy_context("streamer")
    (project.path / "gateway_key").write_text("k-" + secrets.token_urlsafe(16) + "\n")
    (project.path / "second_key").write_text("unused\n")
    text = STACK.replace("KEYS", '["gateway_key"]').replace("api_keys =", 'tls = "internal"\napi_keys =')
    project.write(text.replace('public = true', 'public = true\ndomains = ["open.berth.test"]'))
    project.berth("apply", "--auto-approve", timeout=600)
    port = project.ports[10]
    shown = project.berth("output").stdout
    [ca] = re.findall(r"gateway CA \(local\): (\S+)", shown)
    assert f"https://localhost:{port}/open/" in shown
    document = json.loads(project.berth("output", "--json").stdout)
    assert document["gateway_ca"] == {"local": ca}

    def curl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True)

    for url in (f"https://127.0.0.1:{port}/open/x", f"https://localhost:{port}/open/x"):
        answer = curl("--cacert", ca, url)
        assert answer.returncode == 0 and json.loads(answer.stdout)["path"] == "/x", (url, answer.stderr)
    # A domain gets its certificate too, and routes by Host (the whole path, as the app has it).
    answer = curl("--cacert", ca, "--resolve", f"open.berth.test:{port}:127.0.0.1", f"https://open.berth.test:{port}/y")
    assert answer.returncode == 0 and json.loads(answer.stdout)["path"] == "/y", answer.stderr
    assert curl(f"https://127.0.0.1:{port}/open/x").returncode != 0  # not trusted without the CA
    assert '"path"' not in curl(f"http://127.0.0.1:{port}/open/x").stdout  # no plain HTTP beside it
    assert curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{port}/llm/x").stdout == "401"
    again = project.berth("plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0, again.stdout


def test_a_rolling_replace_behind_the_keys_loses_no_request(project):
    url, key = served(project)
    old = {c.id[:12] for c in project.containers() if c.labels.get("berth.address", "").startswith("app.llm.")}
    failures: list[str] = []
    served_by: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            status, body, headers = call(f"{url}/llm/sync/x", f"Bearer {key}")
            if status == 200:
                served_by.append(body["replica"])
            else:
                failures.append(f"{status} {body}")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        project.write(STACK.replace("KEYS", '["gateway_key"]').replace(
            'readiness = "/ready"\nprobe_interval = 1', 'readiness = "/ready"\nprobe_interval = 1\nenv = { V = "2" }', 1))
        output = project.berth("apply", "--auto-approve", "--no-color", timeout=300).stdout
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
    assert "drained and stopped" in output, output
    assert not failures and len(served_by) > 20, (failures[:5], len(served_by))
    new = {c.id[:12] for c in project.containers() if c.labels.get("berth.address", "").startswith("app.llm.")}
    assert new.isdisjoint(old)
    assert served_by[0] in old and set(served_by[-3:]) <= new, (served_by[:3], served_by[-3:])


DRAINED = """
[stack]
name = "{stack}"

[gateway]
port = {port10}
admin_port = {port11}
drain_timeout = DRAIN

[apps.llm]
build = "./echo"
port = 8000
readiness = "/ready"
probe_interval = 1
"""


def test_drain_timeout_bounds_how_long_a_roll_waits_for_requests_in_flight(project):
    """A request longer than drain_timeout is still in flight when the old replica is
    stopped; one shorter than it finishes on the old replica."""
    project.copy_context("echo")
    project.write(DRAINED.replace("DRAIN", "2"))
    project.berth("apply", "--auto-approve", timeout=600)
    url = f"http://127.0.0.1:{project.ports[10]}"
    for version, seconds, cut in (("2", 12, True), ("3", 1.5, False)):
        outcome: dict[str, object] = {}

        def slow(seconds: float = seconds, outcome: dict = outcome) -> None:
            try:
                with urllib.request.urlopen(f"{url}/llm/slow/{seconds}", timeout=30) as response:
                    outcome["status"] = response.status
            except (urllib.error.URLError, OSError) as err:
                outcome["error"] = repr(err)

        thread = threading.Thread(target=slow, daemon=True)
        thread.start()
        time.sleep(0.3)
        project.write(DRAINED.replace("DRAIN", "2") + f'env = {{ VERSION = "{version}" }}\n')
        started = time.monotonic()
        output = project.berth("apply", "--auto-approve", "--no-color", timeout=300).stdout
        took = time.monotonic() - started
        thread.join(30)
        if cut:
            assert "1 request(s) still in flight to the old replica after draining" in output, output
            assert took < seconds, took  # it did not wait for the request
        else:
            assert "still in flight" not in output and outcome.get("status") == 200, (output, outcome)


def test_replicas_get_their_ports_from_port_range(project):
    project.copy_context("streamer")
    (project.path / "gateway_key").write_text("k\n")
    (project.path / "second_key").write_text("k2\n")
    low, high = project.ports[12], project.ports[12] + 3
    project.write(STACK.replace("KEYS", '["gateway_key"]').replace("api_keys =", f'port_range = "{low}-{high}"\napi_keys ='))
    project.berth("apply", "--auto-approve", timeout=600)
    ports = [int(c.attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]) for c in project.containers()
             if c.labels.get("berth.address", "").startswith("app.")]
    assert len(ports) == 2 and all(low <= p <= high for p in ports), (ports, low, high)
    assert call(f"http://127.0.0.1:{project.ports[10]}/open/x")[0] == 200


def test_tls_from_secrets_serves_that_certificate_and_a_rotated_one_without_a_restart(project):
    import subprocess

    def certificate(name: str) -> None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(project.path / "tls.key"), "-out", str(project.path / "tls.crt")],
                       check=True, capture_output=True)
        (project.path / f"{name}.pem").write_bytes((project.path / "tls.crt").read_bytes())

    def curl(ca: str) -> subprocess.CompletedProcess:
        return subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(project.path / f"{ca}.pem"),
                               f"https://127.0.0.1:{project.ports[10]}/open/x"], capture_output=True, text=True)

    project.copy_context("streamer")
    (project.path / "gateway_key").write_text("k\n")
    (project.path / "second_key").write_text("k2\n")
    certificate("first")
    text = STACK.replace("KEYS", '["gateway_key"]').replace(
        "api_keys =", 'tls = { cert = "tls_cert", key = "tls_key" }\napi_keys =')
    text += '\n[secrets.tls_cert]\nfile = "./tls.crt"\n\n[secrets.tls_key]\nfile = "./tls.key"\n'
    project.write(text)
    project.berth("apply", "--auto-approve", timeout=600)
    answer = curl("first")
    assert answer.returncode == 0 and json.loads(answer.stdout)["path"] == "/x", answer.stderr
    key_pem = (project.path / "tls.key").read_text().strip()
    gateway_id = gateway_container(project).id
    certificate("second")  # rotated: both secrets change
    plan = project.berth("plan", "--no-color").stdout
    assert "gateway@local will be updated in place" in plan, plan
    project.berth("apply", "--auto-approve", timeout=300)
    assert curl("second").returncode == 0 and curl("first").returncode != 0
    assert gateway_container(project).id == gateway_id
    places = project.berth("state", "show", "gateway@local").stdout + json.dumps(gateway_container(project).attrs)
    assert key_pem.splitlines()[1] not in places  # the private key is in no state or inspect
    again = project.berth("plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0, again.stdout


def test_tls_acme_is_a_config_caddy_takes(project):
    """As far as this machine allows (no ACME server is reachable): Caddy loads the
    config that asks its ACME issuer for the apps' domains, and the gateway keeps running."""
    project.copy_context("streamer")
    (project.path / "gateway_key").write_text("k\n")
    (project.path / "second_key").write_text("k2\n")
    text = STACK.replace("KEYS", '["gateway_key"]').replace("api_keys =", 'tls = "acme"\napi_keys =')
    project.write(text.replace("public = true", 'public = true\ndomains = ["open.berth.test"]'))
    project.berth("apply", "--auto-approve", timeout=600)
    assert gateway_container(project).status == "running"
    assert f"https://localhost:{project.ports[10]}/open/" in project.berth("output").stdout
    again = project.berth("plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0, again.stdout
