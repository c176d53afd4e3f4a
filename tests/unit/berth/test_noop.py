"""berth.noop: which command lines the fast path answers, the engine client it asks with,
what the watch of a full plan sees, and the decision itself against a fake engine and a
store made here."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from berth import noop


@pytest.fixture(autouse=True)
def _watch_off():
    yield
    noop.WATCH.active = False  # noop.attempt watches the full plan it falls back to


@pytest.mark.parametrize("argv, command", [
    (["plan"], "plan"),
    (["plan", "-f", "x.toml", "--no-color", "--detailed-exitcode"], "plan"),
    (["-f", "x.toml", "-e", "prod", "plan", "--refresh=true"], "plan"),
    (["apply", "--auto-approve", "--parallelism", "4", "--state-dir", "s"], "apply"),
    (["apply"], "apply"),
])
def test_the_command_lines_a_no_op_can_answer(argv: list[str], command: str) -> None:
    assert noop.parse(argv)["command"] == command


@pytest.mark.parametrize("argv", [
    [], ["--version"], ["plan", "--json"], ["plan", "--out", "p.json"], ["plan", "--target", "app.web"],
    ["apply", "--replace", "app.web.container[0]@local"], ["plan", "--refresh=false"], ["plan", "--refresh", "false"],
    ["plan", "-v"], ["plan", "--destroy"], ["destroy", "--auto-approve"], ["apply", "saved.plan"],
    ["apply", "--json", "--auto-approve"], ["status"], ["plan", "-e", "prod"], ["apply", "--parallelism"],
    ["plan", "--auto-approve"], ["apply", "--detailed-exitcode"], ["plan", "--no-colour"],
])
def test_anything_else_goes_to_the_full_parser(argv: list[str]) -> None:
    assert noop.parse(argv) is None


def test_the_file_option_after_the_command_wins() -> None:
    opts = noop.parse(["-f", "a.toml", "plan", "--file=b.toml"])
    assert opts["file"] == "b.toml" and noop.parse(["-f", "a.toml", "plan"])["file"] == "a.toml"


def test_the_stack_file_is_found_as_the_full_path_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert noop.stack_file(None) is None
    (tmp_path / "berth.toml").write_text("")
    assert noop.stack_file(None) == str(tmp_path / "berth.toml") == noop.stack_file(str(tmp_path))
    (tmp_path / "config.yaml").write_text("")
    assert noop.stack_file(None) is None  # two: the full path names them
    assert noop.stack_file("config.yaml") == str(tmp_path / "config.yaml")
    assert noop.stack_file("missing.toml") is None


class FakeEngine:
    """A unix socket answering GETs from a table, alternating chunked and sized bodies."""

    def __init__(self, path: Path, answers: dict[str, object]) -> None:
        self.path, self.answers, self.requests = str(path), answers, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                buffer, count = b"", 0
                while True:
                    while b"\r\n\r\n" in buffer:
                        head, buffer = buffer.split(b"\r\n\r\n", 1)
                        target = head.split(b" ")[1].decode()
                        self.requests.append(target)
                        body = json.dumps(self.answers[target.split("?")[0]]).encode()
                        count += 1
                        if count % 2:
                            half = len(body) // 2
                            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
                            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
                        else:
                            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    data = conn.recv(65536)
                    if not data:
                        break
                    buffer += data

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def engine(tmp_path: Path):
    answers = {
        "/containers/json": [{"Id": "c1", "State": "running", "Status": "Up 3 seconds", "Labels": {"berth.stack": "s"},
                              "Mounts": [{"Destination": "/b"}, {"Destination": "/a"}]}],
        "/images/json": [{"Id": "sha256:i1", "Labels": {"berth.stack": "s"}, "RepoTags": ["berth-s-web:1"]},
                         {"Id": "sha256:other", "Labels": None, "RepoTags": ["someone-else:1"]},
                         {"Id": "sha256:base", "Labels": None, "RepoTags": ["busybox:latest"]}],
        "/volumes": {"Volumes": []},
        "/containers/c1/json": {"Id": "c1", "HostConfig": {"Memory": 0}},
    }
    fake = FakeEngine(tmp_path / "engine.sock", answers)
    yield fake
    fake.close()


def test_the_engine_client_reads_pipelined_sized_and_chunked_answers(engine: FakeEngine) -> None:
    client = noop.Engine(engine.path)
    try:
        first, second, third = client.get(["/containers/json?all=1", "/images/json", "/volumes"])
        assert first[0]["Id"] == "c1" and len(second) == 3 and third == {"Volumes": []}
        assert client.get(["/containers/c1/json"])[0]["HostConfig"] == {"Memory": 0}
    finally:
        client.close()


def test_the_engine_view_drops_what_changes_by_itself_and_other_stacks_images(engine: FakeEngine) -> None:
    images = {"ids": [], "ids_named": [], "repositories": ["busybox"]}
    containers, listed, volumes, inspected = noop.engine_view(engine.path, "s", images)
    assert "Status" not in containers[0] and [m["Destination"] for m in containers[0]["Mounts"]] == ["/a", "/b"]
    assert [i["Id"] for i in listed] == ["sha256:base", "sha256:i1"]  # not someone-else's
    assert inspected == [["c1", {"Memory": 0}]]
    engine.answers["/containers/json"][0]["Status"] = "Up 2 hours"
    assert noop.engine_view(engine.path, "s", images)[0] == containers


def test_image_repositories() -> None:
    assert {noop.repository(r) for r in ("busybox", "busybox:1.36", "docker.io/library/busybox:1", "busybox@sha256:ab")} \
        == {"busybox"}
    assert noop.repository("localhost:5000/team/app:2") == "localhost:5000/team/app"


def make_store(path: Path, state: str, lock: bool = False) -> None:
    path.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path / "cache.db")
    db.execute("CREATE TABLE IF NOT EXISTS Cache (key, raw, filename, value)")
    db.execute("DELETE FROM Cache")
    db.execute("INSERT INTO Cache VALUES ('state', 1, NULL, ?)", (state,))
    if lock:
        db.execute("INSERT INTO Cache VALUES ('lock', 1, NULL, '{}')")
    db.commit()
    db.close()


@pytest.fixture
def recorded(tmp_path: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch):
    """A stack directory with a record made as a full no-op plan makes it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(noop.DISABLE, raising=False)
    (tmp_path / "berth.toml").write_text('[stack]\nname = "s"\n')
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox\n")
    store = tmp_path / ".berth" / "stacks" / "s"
    make_store(store, '{"serial": 3}')
    opts = noop.parse(["plan"])
    file = noop.stack_file(None)
    entry = {"version": noop.VERSION, "store": str(store), "stack": "s", "socket": engine.path,
             "files": [file], "dirs": [str(tmp_path), str(tmp_path / "ctx")],
             "lines": [["No changes. The hosts match the configuration.", "bold green"]],
             "images": {"ids": [], "ids_named": [], "repositories": []}, "digest": None}
    directory = tmp_path / ".berth" / noop.RECORD_DIR
    directory.mkdir()

    def arm() -> None:  # in the test itself: pytest's own variables differ in a fixture
        key = noop._key(str(directory), create=True)
        entry["local"] = noop.local_digest(key, opts, entry)
        entry["digest"] = noop.digest(key, entry["local"], noop.world(entry))
        Path(noop.record_path(opts, file)).write_text(json.dumps(entry))

    return tmp_path, store, arm


def test_an_unchanged_stack_is_answered_from_the_record(recorded, capsys: pytest.CaptureFixture[str]) -> None:
    recorded[2]()
    attempt = noop.attempt(["plan"])
    assert attempt.code == 0
    assert capsys.readouterr().out == "No changes. The hosts match the configuration.\n"


@pytest.mark.parametrize("change", ["stack file", "context file", "new file beside", "state", "lock", "container",
                                    "container limits", "environment", "disabled", "stack image"])
def test_every_change_falls_back_to_the_full_plan(recorded, engine: FakeEngine, change: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path, store, arm = recorded
    arm()
    assert noop.Attempt(["plan"]).answer() == 0
    capsys.readouterr()
    if change == "stack file":
        (path / "berth.toml").write_text('[stack]\nname = "s"\n# edited\n')
    elif change == "context file":
        (path / "ctx" / "Dockerfile").write_text("FROM busybox:1\n")
    elif change == "new file beside":
        (path / "cerebrium.toml").write_text("")
    elif change == "state":
        make_store(store, '{"serial": 4}')
    elif change == "lock":
        make_store(store, '{"serial": 3}', lock=True)
    elif change == "container":
        engine.answers["/containers/json"][0]["State"] = "exited"
    elif change == "container limits":
        engine.answers["/containers/c1/json"]["HostConfig"] = {"Memory": 67108864}
    elif change == "environment":
        monkeypatch.setenv("NOOP_UNIT_TOKEN", "changed")
    elif change == "disabled":
        monkeypatch.setenv(noop.DISABLE, "1")
    elif change == "stack image":
        engine.answers["/images/json"].append({"Id": "sha256:new", "Labels": {"berth.stack": "s"}})
    assert noop.attempt(["plan"]).code is None
    assert capsys.readouterr().out == ""


def test_an_image_of_another_stack_does_not_count(recorded, engine: FakeEngine) -> None:
    recorded[2]()
    engine.answers["/images/json"].append({"Id": "sha256:new", "Labels": {"berth.stack": "other"}})
    assert noop.attempt(["plan"]).code == 0


def test_no_engine_falls_back(recorded, engine: FakeEngine) -> None:
    recorded[2]()
    engine.close()
    os.unlink(engine.path)
    assert noop.attempt(["plan"]).code is None


def test_the_watch_sees_files_read_and_directories_listed(tmp_path: Path) -> None:
    (tmp_path / "read.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    watch = noop.Watch()
    watch.start()
    try:
        (tmp_path / "read.txt").read_text()
        (tmp_path / "written.txt").write_text("y")
        list(os.scandir(tmp_path / "sub"))
    finally:
        watch.active = False
    assert str(tmp_path / "read.txt") in watch.files and str(tmp_path / "written.txt") not in watch.files
    assert watch.dirs[str(tmp_path / "sub")] == [] and not watch.elsewhere
    watch.start()
    try:
        subprocess.run([sys.executable, "-c", ""], check=True)
    finally:
        watch.active = False
    assert watch.elsewhere  # a command secret source, or anything run: never recorded


def test_the_keyed_digest_is_hmac_sha256() -> None:
    import hashlib
    import hmac

    for key in (b"k", b"x" * 32, b"y" * 100):
        mac = noop.Hmac(key)
        mac.update(b"abc")
        mac.update(b"def")
        assert mac.hexdigest() == hmac.new(key, b"abcdef", hashlib.sha256).hexdigest()


def test_the_fast_path_imports_none_of_the_heavy_modules(recorded) -> None:
    recorded[2]()
    code = ("import sys; from berth import noop; a = noop.attempt(['plan']); assert a.code == 0, a.code; "
            "heavy = [m for m in ('pydantic', 'networkx', 'rich', 'docker', 'paramiko', 'yaml', 'diskcache', 'hashlib', "
            "'http.client', 'argparse') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={k: v for k, v in os.environ.items()})


def test_the_state_is_read_from_the_stores_sqlite_file_as_the_store_keeps_it(tmp_path: Path) -> None:
    """berth.noop reads the "state" and "lock" rows without diskcache: a change to how
    state.store keeps them must show here, not as a fast path that never notices a write."""
    from state.canonical import sha256_hex
    from state.model import State
    from state.store import STATE_KEY, DiskStore

    store = DiskStore(tmp_path / "s", stack="s")
    written = store.write(State(stack="s"))
    first = noop.store_state(str(tmp_path / "s"))
    text = store._get(STATE_KEY)
    assert first == [sha256_hex(text), False]
    store.write(written.model_copy(update={"resources": {}}), note="again")
    second = noop.store_state(str(tmp_path / "s"))
    assert second[0] != first[0]
    store.add_lock({"id": "x"})
    assert noop.store_state(str(tmp_path / "s")) == [second[0], True]
    store.delete_lock()
    # a state past diskcache's inline size is kept in a file beside the database
    big = store.write(written.model_copy(update={"forgotten": [f"{i:064x}" for i in range(2000)]}))
    third = noop.store_state(str(tmp_path / "s"))
    assert third == [sha256_hex(store._get(STATE_KEY)), False] and third[0] != second[0]
    store.write(big.model_copy(update={"forgotten": big.forgotten[:-1]}))
    assert noop.store_state(str(tmp_path / "s"))[0] != third[0]
    store.close()


# -- SSH hosts: which full plans may record ------------------------------------------------

class _SshProvider:
    conn = object()  # what ssh_eligible tells an SSH provider by


class _Workspace:
    def __init__(self, hosts: list[str]) -> None:
        self._providers = {h: _SshProvider() for h in hosts}


def _watched(monkeypatch: pytest.MonkeyPatch, stats: dict, route: object, tcp: set) -> None:
    monkeypatch.setattr(noop.WATCH, "ssh_after", {"th1": []})
    monkeypatch.setattr(noop.WATCH, "ssh_stats", {"th1": stats}, raising=False)
    monkeypatch.setattr(noop.WATCH, "ssh_routes", {"th1": route}, raising=False)
    monkeypatch.setattr(noop.WATCH, "tcp", tcp)


ONE_CHANNEL = {"connections": 1, "channels": 1, "channels_docker": 1}


@pytest.mark.parametrize(("stats", "route", "tcp", "expected"), [
    (ONE_CHANNEL, {}, {("127.0.0.1", 22)}, True),
    (ONE_CHANNEL | {"channels": 2, "channels_exec": 1}, {}, {("127.0.0.1", 22)}, False),  # a command (nvidia-smi)
    (ONE_CHANNEL | {"channels": 2, "channels_sftp": 1}, {}, {("127.0.0.1", 22)}, False),  # secret files
    (ONE_CHANNEL | {"channels": 2, "channels_probe": 1}, {}, {("127.0.0.1", 22)}, False),  # a port check
    (ONE_CHANNEL | {"connections": 2, "drops": 1}, {}, {("127.0.0.1", 22)}, False),
    (ONE_CHANNEL | {"host_keys_added": 1}, {}, {("127.0.0.1", 22)}, False),
    (ONE_CHANNEL, {"proxy_jump": "bastion"}, {("127.0.0.1", 22)}, False),
    (ONE_CHANNEL, {"proxy_command": "nc %h %p"}, set(), False),
    (ONE_CHANNEL, {}, {("127.0.0.1", 22), ("127.0.0.2", 2375)}, False),  # TCP elsewhere too
])
def test_a_plan_on_ssh_hosts_records_only_when_it_asked_each_engine_alone(
        monkeypatch: pytest.MonkeyPatch, stats: dict, route: dict, tcp: set, expected: bool) -> None:
    from providers.ssh.connection import Route

    _watched(monkeypatch, stats, Route(address="127.0.0.1", port=22, user="root", **route), tcp)
    assert noop.ssh_eligible(_Workspace(["th1"]), ["th1"]) is expected


def test_a_plan_records_only_when_it_looked_at_exactly_the_hosts_its_apps_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from providers.ssh.connection import Route

    _watched(monkeypatch, ONE_CHANNEL, Route(address="127.0.0.1", port=22, user="root"), {("127.0.0.1", 22)})
    assert not noop.ssh_eligible(_Workspace(["th1", "th2"]), ["th1"])  # another host opened
    monkeypatch.setattr(noop.WATCH, "ssh_after", None)  # the look after the plan failed
    assert not noop.ssh_eligible(_Workspace(["th1"]), ["th1"])
    monkeypatch.setattr(noop.WATCH, "tcp", {("127.0.0.1", 22)})
    assert not noop.ssh_eligible(_Workspace([]), [])  # no SSH host, yet a TCP connection
