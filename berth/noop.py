"""The no-op fast path of `berth plan` and `berth apply`: answer "No changes" without
importing pydantic, networkx, rich or docker, when nothing a full plan reads has changed
since a full plan last found no changes.

A full plan or apply that finds no changes records, in STATE_DIR/noop/, what it read:
every file it opened (the stack file, from= files, secrets_file, secret files, the
stack file's other formats), every directory it listed (build contexts, weights
directories, the local secret files and weights cache) with each entry's size and
times, the engine's socket. The fast path reads the same things again and compares one
keyed digest (HMAC, key in STATE_DIR/noop/key) of: the command and its options, the
working directory and the environment (env secret sources, DOCKER_HOST), berth's own
source files, those files' bytes and directories' entries, the current state (its
exact bytes, straight from the store's SQLite file), and the engines' answers (the
container, image and volume lists of the stack, and each running container's
HostConfig, which refresh reads for the limits), each engine asked on one connection.
An SSH host's engine is asked as the full plan asks it: one SSH connection per host
(providers.ssh's, so the same route, host-key check and login), one channel to its
engine socket, the hosts in parallel; its answers go into the digest beside the local
ones. The digest of what is on this machine is compared first: when a file changed, no
host is dialed.

Anything else falls back to the full plan: a saved plan, --target, --replace,
--refresh=false, --json, --destroy, -v, a host behind ProxyJump or ProxyCommand, an SSH
host the plan asked anything but its engine (a command, SFTP for secret files or
weights, a probe tunnel), a dropped connection, a new host key, GPUs, cpus, host
directories mounted, a command secret source, warnings, a state lock held, or any error
at all while checking. Only the digest is kept; no value is.
"""

from __future__ import annotations

import _socket  # socket.py's enums cost 4 ms; the fast path needs one unix-socket connection
import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself costs 2 ms on the fast path; the annotations are strings
    from typing import Any

try:  # the builtin SHA-256: hashlib would load OpenSSL (about 9 ms) for the same digest
    from _sha256 import sha256
except ImportError:  # pragma: no cover - another interpreter build
    from hashlib import sha256

VERSION = 2
RECORD_DIR = "noop"
DISABLE = "BERTH_NO_FASTPATH"  # set (to anything): always the full plan
REPORT = "BERTH_FASTPATH_REPORT"  # a file the fast path appends "fast path" to when it answers (tests, bench)
# Shell bookkeeping that says nothing about the plan (the working directory is hashed itself), and
# where berth writes its SSH counts.
VOLATILE_ENV = ("_", "OLDPWD", "PWD", "SHLVL", "COLUMNS", "LINES", REPORT, "BERTH_SSH_STATS")
STACK_FILES = ("berth.toml", "cerebrium.toml", "config.yaml")
SOURCE_SUFFIXES = (".py", ".pyc", ".so")
LINE_STYLES = {"bold": "1", "bold green": "1;32"}


# -- the command line, read without argparse ------------------------------------------

def parse(argv: list[str]) -> dict[str, Any] | None:
    """The options of a `plan` or `apply` the fast path can answer; None for any other
    command line (the full parser then reads it, and says what is wrong with it)."""
    opts: dict[str, Any] = {"command": None, "file": None, "global_file": None, "environment": None,
                            "state_dir": None, "no_color": False, "detailed": False}
    takes = {"-f": "file", "--file": "file", "-e": "environment", "--env": "environment", "--state-dir": "state_dir"}
    flags = {"plan": {"--no-color": "no_color", "--detailed-exitcode": "detailed"},
             "apply": {"--no-color": "no_color", "--auto-approve": None}}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        command = opts["command"]
        if command is None and arg in flags:
            opts["command"] = arg
        elif name in takes and (command is not None or name in ("-f", "--file", "-e", "--env")):
            if not eq:
                if not args:
                    return None
                value = args.pop(0)
            key = takes[name]
            if key == "environment" and command is not None:
                return None  # -e after the command is not berth's
            if key == "file" and command is None:
                key = "global_file"
            opts[key] = value
        elif command is not None and arg in flags[command]:
            if flags[command][arg]:
                opts[flags[command][arg]] = True
        elif command == "apply" and name == "--parallelism":
            if not eq:
                if not args:
                    return None
                value = args.pop(0)
            if not value.isdigit():
                return None
        elif command is not None and name == "--refresh" and (value if eq else (args.pop(0) if args else "")).lower() in ("true", "yes", "1", "on"):
            pass
        else:
            return None
    if opts["command"] is None:
        return None
    if opts["file"] is None:
        opts["file"] = opts["global_file"]
    return opts


def stack_file(path: str | None) -> str | None:
    """The stack file as berth.stackfile.files.find_stack_file finds it; None where that
    would fail (the full path then says why)."""
    directory = os.getcwd() if path is None else os.path.expanduser(path)
    if path is None or os.path.isdir(directory):
        found = [name for name in STACK_FILES if os.path.isfile(os.path.join(directory, name))]
        return os.path.abspath(os.path.join(directory, found[0])) if len(found) == 1 else None
    return os.path.abspath(directory) if os.path.isfile(directory) else None


def state_dir(opts: dict[str, Any], file: str) -> str:
    return os.path.realpath(opts["state_dir"]) if opts["state_dir"] else os.path.join(os.path.dirname(file), ".berth")


def record_path(opts: dict[str, Any], file: str) -> str:
    key = json.dumps([opts["command"], file, opts["environment"], state_dir(opts, file)])
    return os.path.join(state_dir(opts, file), RECORD_DIR, sha256(key.encode()).hexdigest()[:32] + ".json")


# -- what a plan reads, digested -------------------------------------------------------

def file_stat(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def dir_listing(path: str) -> list[Any]:
    """The directory's entries: files with size and times, directories and links by name."""
    entries = []
    with os.scandir(path) as it:
        for entry in it:
            if entry.is_symlink():
                entries.append([entry.name, "l", os.readlink(entry.path)])
            elif entry.is_dir():
                entries.append([entry.name, "d"])
            else:
                st = entry.stat()
                entries.append([entry.name, "f", st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return sorted(entries)


def code_signature() -> list[Any]:
    """berth's own source files: another berth plans differently."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = [sys.version, sys.executable]
    for package in ("berth", "planner", "providers", "state"):
        for directory, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    st = os.stat(os.path.join(directory, name))
                    found.append([directory, name, st.st_size, st.st_mtime_ns])
    return found


def store_state(store: str) -> list[Any]:
    """The current state's exact bytes (digested), and whether a lock is held, read from
    the store's SQLite file without diskcache (state.store keeps the state as JSON text
    under "state", the lock under "lock")."""
    import sqlite3

    db = os.path.join(store, "cache.db")
    if not os.path.isfile(db):
        raise OSError(f"no store at {store}")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    try:
        rows = {key: (filename, value) for key, filename, value in
                conn.execute("SELECT key, filename, value FROM Cache WHERE raw = 1 AND key IN ('state', 'lock')")}
    finally:
        conn.close()
    if "state" not in rows:
        raise OSError("no state")
    filename, value = rows["state"]
    if filename:
        with open(os.path.join(store, filename), "rb") as f:
            value = f.read()
    data = value.encode() if isinstance(value, str) else bytes(value)
    return [sha256(data).hexdigest(), "lock" in rows]


class Engine:
    """GET requests to the engine over one connection, pipelined: a unix socket's path,
    or a stream already open (an SSH channel to the host's engine socket)."""

    def __init__(self, path: str | None, stream: Any = None) -> None:
        if stream is None:
            stream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            stream.settimeout(10.0)
            stream.connect(path)
        else:
            stream.settimeout(10.0)
        self.sock = stream
        self.buffer = b""

    def get(self, targets: list[str]) -> list[Any]:
        self.sock.sendall(b"".join(f"GET {t} HTTP/1.1\r\nHost: docker\r\n\r\n".encode() for t in targets))
        return [json.loads(self._response()) for _ in targets]

    def _read(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise OSError("the engine closed the connection")
        self.buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._read()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._read()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _response(self) -> bytes:
        status = self._line().split(b" ", 2)
        if len(status) < 2 or status[1] != b"200":
            raise OSError(f"the engine answered {status!r}")
        headers = {}
        while line := self._line():
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                self._take(2)
            while self._line():  # trailers
                pass
            return body
        return self._take(int(headers[b"content-length"]))

    def close(self) -> None:
        self.sock.close()


def repository(ref: str) -> str:
    """An image reference's repository, as the engine lists it: `busybox` for
    `docker.io/library/busybox:1.36` or `busybox@sha256:...`."""
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def wanted_image(image: dict[str, Any], stack: str, images: dict[str, list[str]]) -> bool:
    """An image the plan may look at: the stack's builds (labelled), those state records
    (by ID), and any of the repository an app's `image` names. Other images come and go
    (other stacks' builds) without changing this plan."""
    if (image.get("Labels") or {}).get("berth.stack") == stack or image["Id"] in images["ids"]:
        return True
    if any(image["Id"].startswith(ref) or image["Id"].split(":")[-1].startswith(ref) for ref in images["ids_named"]):
        return True
    names = {repository(t) for t in (image.get("RepoTags") or []) + (image.get("RepoDigests") or [])}
    return bool(names & set(images["repositories"]))


def engine_view(sock: str | Any, stack: str, images: dict[str, list[str]]) -> list[Any]:
    """What refresh asks an engine, less what changes by itself (a container's
    "Up 5 minutes"): the stack's containers, the images the plan may use, the stack's
    volumes, and each running container's HostConfig (refresh reads the limits from it).
    sock: the local engine's socket path, or an object whose get(targets) answers."""
    filters = "".join(c if c.isalnum() or c in "-._~" else "".join(f"%{b:02X}" for b in c.encode())
                      for c in json.dumps({"label": [f"berth.stack={stack}"]}))
    engine = Engine(sock) if isinstance(sock, str) else sock
    try:
        containers, listed, volumes = engine.get([f"/containers/json?all=1&filters={filters}", "/images/json",
                                                  f"/volumes?filters={filters}"])
        for c in containers:
            c.pop("Status", None)
            for key in ("Mounts", "Ports"):  # listed in no fixed order
                c[key] = sorted(c.get(key) or [], key=lambda item: json.dumps(item, sort_keys=True))
        running = sorted(c["Id"] for c in containers if c.get("State") == "running")
        inspected = engine.get([f"/containers/{i}/json" for i in running]) if running else []
    finally:
        if isinstance(sock, str):
            engine.close()
    return [sorted(containers, key=lambda c: c["Id"]),
            sorted((i for i in listed if wanted_image(i, stack, images)), key=lambda i: i["Id"]),
            sorted(volumes.get("Volumes") or [], key=lambda v: v["Name"]),
            [[i["Id"], i.get("HostConfig")] for i in inspected]]


def world(record: dict[str, Any], remote: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state and the engines' answers (what another berth, or someone behind berth's
    back, changes), as the fast path compares them: the local engine's (where the plan
    asked it) and each SSH host's. remote: host -> its view, already read (a full
    plan's, over its own connections); None: read them here, each host on a connection
    of its own, all at once and while the local ones are read (dial_views)."""
    ssh = record.get("ssh") or {}
    join = None
    if remote is None and ssh:
        remote = {}
        join = dial_views(ssh, record["stack"], record["images"], DIALED, remote)
    try:
        local = engine_view(record["socket"], record["stack"], record["images"]) if record.get("socket") else None
        seen = {"state": store_state(record["store"]), "engine": local}
    finally:
        if join is not None:
            join()
    if ssh:
        if remote is None or sorted(remote) != sorted(ssh):
            raise OSError("an SSH host's engine was not read")
        seen["ssh"] = {host: remote[host] for host in sorted(ssh)}
    return seen


class HttpGets:
    """engine_view's get(targets) over a provider's kept-alive refresh connection
    (providers.engine_http.EngineHTTP): the full plan's own channel to the engine."""

    def __init__(self, http: Any) -> None:
        self.http = http

    def get(self, targets: list[str]) -> list[Any]:
        return [self.http.get_json(t) for t in targets]


DIALED: dict[str, Any] = {}  # host -> the fast path's SshConnection (its stats: BERTH_SSH_STATS)


def dial_views(ssh: dict[str, dict[str, Any]], stack: str, images: dict[str, list[str]],
               dialed: dict[str, Any], views: dict[str, Any]) -> Any:
    """Read each SSH host's engine view into `views`, on a connection of its own
    (providers.ssh's SshConnection: the same route, host-key check and login as a full
    plan's) and one channel to its engine socket; the hosts in parallel, so the
    handshakes overlap. Returns the function that waits for them; a host that could not
    be read is missing from `views` (the full plan then says why)."""
    import threading

    quiet_paramiko()
    from providers.ssh.connection import SshConnection, SshTarget

    def read(host: str, settings: dict[str, Any]) -> None:
        try:
            conn = dialed[host] = SshConnection(SshTarget(**settings))
            try:
                if conn.route.proxy_jump or conn.route.proxy_command:
                    return  # recorded only without either (eligible)
                channel = conn.open_streamlocal(settings.get("docker_socket") or "/var/run/docker.sock")
                try:
                    views[host] = engine_view(Engine(None, channel), stack, images)
                finally:
                    channel.close()
            finally:
                conn.close()
        except Exception:  # noqa: BLE001 - any doubt: the full plan
            pass

    threads = [threading.Thread(target=read, args=item, daemon=True) for item in sorted(ssh.items())]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join()

    return join


def quiet_paramiko() -> None:
    """paramiko imports `invoke` (60 ms here) only for ~/.ssh/config's `Match exec`: left
    out where that config has no `exec` at all, which is then read as without invoke."""
    if "paramiko" in sys.modules or "invoke" in sys.modules:
        return
    try:
        with open(os.path.expanduser("~/.ssh/config"), "rb") as f:
            if b"exec" in f.read().lower():
                return
    except OSError:
        pass
    sys.modules["invoke"] = None  # type: ignore[assignment]  # ImportError: paramiko goes without


def ssh_stats() -> None:
    """BERTH_SSH_STATS=FILE when the fast path answered: per SSH host, what it opened
    (as the full path's berth.workspace writes it)."""
    path = os.environ.get("BERTH_SSH_STATS")
    if path and DIALED:
        stats = {h: dict(c.stats) | {"image_bytes_sent": 0, "local_connections": 0} for h, c in DIALED.items()}
        with open(path, "w") as f:
            json.dump(stats, f, indent=2)


class Hmac:
    """HMAC-SHA-256 (RFC 2104) over the builtin sha256, without hashlib and hmac."""

    def __init__(self, key: bytes) -> None:
        key = (sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self.inner, self.outer = sha256(bytes(b ^ 0x36 for b in key)), bytes(b ^ 0x5C for b in key)

    def update(self, data: bytes) -> None:
        self.inner.update(data)

    def hexdigest(self) -> str:
        return sha256(self.outer + self.inner.digest()).hexdigest()


def local_digest(key: bytes, opts: dict[str, Any], record: dict[str, Any]) -> str:
    """The keyed digest of what the recorded plan read on this machine: the command,
    the environment, berth's source, the files and directories. Compared before any
    engine or SSH host is asked: when it differs, nothing is dialed."""
    env = sorted((k, v) for k, v in os.environ.items() if k not in VOLATILE_ENV)
    mac = Hmac(key)

    def add(value: Any) -> None:
        mac.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
        mac.update(b"\0")

    add([VERSION, {k: opts[k] for k in ("command", "file", "environment", "state_dir", "detailed")}, os.getcwd(), env])
    add(code_signature())
    for path in record["files"]:
        with open(path, "rb") as f:
            mac.update(sha256(f.read()).digest())
    for path in record["dirs"]:
        add([path, dir_listing(path)])
    add([[path, os.path.lexists(path)] for path in record.get("absent", [])])
    return mac.hexdigest()


def digest(key: bytes, local: str, seen: dict[str, Any]) -> str:
    """One keyed digest of everything the recorded plan depended on: local_digest's,
    and the world (the state, the engines' answers)."""
    mac = Hmac(key)
    mac.update(local.encode() + b"\0")
    mac.update(json.dumps(seen, sort_keys=True, separators=(",", ":")).encode())
    return mac.hexdigest()


def _key(directory: str, create: bool) -> bytes:
    path = os.path.join(directory, "key")
    if create and not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
    with open(path, "rb") as f:
        return f.read()


# -- the fast path ---------------------------------------------------------------------

class Attempt:
    """One command's look at its record: the answer when nothing changed, else what was
    seen (the full path records with it when the world stayed the same meanwhile)."""

    def __init__(self, argv: list[str]) -> None:
        self.opts = parse(argv) if not os.environ.get(DISABLE) else None
        self.file = stack_file(self.opts["file"]) if self.opts else None
        self.record: dict[str, Any] | None = None
        self.seen: dict[str, Any] | None = None
        self.code: int | None = None
        self.before: tuple[dict[str, Any], dict[str, Any]] | None = None  # see before()
        if self.file is None:
            return
        self.local: str | None = None
        try:
            with open(record_path(self.opts, self.file)) as f:
                record = json.load(f)
            if record.get("version") != VERSION:
                return
            self.record = record
            if record.get("digest"):
                key = _key(os.path.join(state_dir(self.opts, self.file), RECORD_DIR), create=False)
                self.local = local_digest(key, self.opts, record)
                if self.local != record.get("local"):
                    return  # something here changed: no engine or host need be asked
            self.seen = world(record)
        except Exception:  # any doubt (no engine, a store being written): the full plan
            self.record = self.seen = None

    def answer(self) -> int | None:
        """The exit code, with the recorded output printed, when the fast path holds."""
        record, seen = self.record, self.seen
        if record is None or seen is None or not record.get("digest") or seen["state"][1] or self.local is None:
            return None  # a held lock: the full path waits for it or says who holds it
        try:
            lines = [(str(text), str(style)) for text, style in record["lines"]]
            key = _key(os.path.join(state_dir(self.opts, self.file), RECORD_DIR), create=False)
            if digest(key, self.local, seen) != record["digest"]:
                return None
        except Exception:
            return None
        say(lines, self.opts["no_color"])
        ssh_stats()
        if os.environ.get(REPORT):
            with open(os.environ[REPORT], "a") as f:
                f.write("fast path\n")
        return 0


def say(lines: list[tuple[str, str]], no_color: bool) -> None:
    colour = (bool(os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE")) or sys.stdout.isatty()) \
        and not no_color and "NO_COLOR" not in os.environ
    for text, style in lines:
        code = LINE_STYLES.get(style) if colour else None
        sys.stdout.write(f"\x1b[{code}m{text}\x1b[0m\n" if code else f"{text}\n")


# -- watching a full plan, and recording it ----------------------------------------------

class Watch:
    """What the full plan of this process opens, lists and connects to (audit hooks)."""

    def __init__(self) -> None:
        self.active = False
        self.files: dict[str, list[int] | None] = {}
        self.dirs: dict[str, list[Any] | None] = {}
        self.sockets: set[str] = set()
        self.tcp: set[tuple[str, int]] = set()  # TCP peers (an SSH host's sshd, a TCP engine)
        self.elsewhere = False  # a subprocess, or a connection of another kind
        self.ssh_after: dict[str, Any] | None = None  # see closing()
        self.hooked = False
        self.busy: Any = None
        self.ignored: tuple[str, ...] = ()
        self.import_dirs: set[str] = set()

    def start(self) -> None:
        self.files, self.dirs, self.sockets, self.tcp, self.elsewhere = {}, {}, set(), set(), False
        self.ssh_after = None
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # Where modules are imported from: listed by the import system, never by a plan.
        self.ignored = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc/", "/dev/", "/sys/",
                              *(os.path.join(root, p) for p in ("berth", "planner", "providers", "state"))})
        self.import_dirs = {os.path.abspath(p or ".") for p in sys.path}
        if self.busy is None:
            import threading

            self.busy = threading.local()
        self.active = True
        if not self.hooked:
            self.hooked = True
            sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or getattr(self.busy, "on", False):
            return  # the hook's own listing and stat calls are not the plan's
        self.busy.on = True
        try:
            self._see(event, args)
        finally:
            self.busy.on = False

    def _see(self, event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "open":
                path, mode, flags = args
                if isinstance(path, int) or path is None:
                    return
                path = os.fsdecode(path)
                if path.endswith(SOURCE_SUFFIXES):
                    return
                writes = any(c in (mode or "") for c in "wax+") if mode is not None else \
                    bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
                path = os.path.abspath(path)
                if not writes and path not in self.files and not path.startswith(self.ignored):
                    try:
                        self.files[path] = file_stat(path)
                    except OSError:
                        self.files[path] = None
            elif event in ("os.scandir", "os.listdir"):
                if args and isinstance(args[0], int):
                    return  # a listing by descriptor (shutil.rmtree of berth's own temporary directory)
                path = os.path.abspath(os.fsdecode(args[0] if args and args[0] is not None else "."))
                if path not in self.dirs and path not in self.import_dirs and not path.startswith(self.ignored):
                    try:
                        self.dirs[path] = dir_listing(path)
                    except OSError:
                        self.dirs[path] = None
            elif event == "socket.connect":
                sock, address = args
                if sock.family == _socket.AF_UNIX and isinstance(address, str):
                    self.sockets.add(address)
                elif sock.family in (_socket.AF_INET, _socket.AF_INET6) and isinstance(address, tuple):
                    self.tcp.add((str(address[0]), int(address[1])))
                else:
                    self.elsewhere = True
            elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
                self.elsewhere = True
        except Exception:
            self.elsewhere = True


WATCH = Watch()


def attempt(argv: list[str]) -> Attempt:
    """Try the fast path (its exit code in `.code`, None when it did not answer); when it
    did not and the command is one it could answer, watch the full plan, so that a no-op
    can be recorded for the next run."""
    tried = Attempt(argv)
    tried.code = tried.answer()
    if tried.code is None and tried.opts is not None and tried.file is not None:
        WATCH.start()
    return tried


def engine_socket() -> str | None:
    """The local engine's socket as DOCKER_HOST names it (None: not a unix socket)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return host[len("unix://"):] if host.startswith("unix://") else None


def before(attempt: Attempt | None, workspace: Any) -> None:
    """Before a full plan that had no record to compare with: what the world is now, so
    that a no-op this plan finds can be recorded at once (compared after it, as the
    attempt's own look is). Best effort, as record()."""
    if attempt is None or attempt.opts is None or attempt.file is None:
        return
    try:
        sock = engine_socket()
        if sock is None:
            return
        if not shape_eligible(workspace.stack):
            return  # no record would count: the hosts need not be asked first
        hosts = ssh_hosts(workspace.stack)
        then = {"store": str(workspace.store.path), "stack": workspace.stack.name, "socket": sock,
                "images": images_used(workspace), "ssh": {h: ssh_settings(workspace, h) for h in hosts}}
        if attempt.seen is not None and all(attempt.record.get(k) == v for k, v in then.items() if k != "socket"):
            return  # the attempt's own look is the one to compare with
        # Over the providers' own connections, which the plan then uses (no second
        # connection, no second channel); the local engine: whether the plan asks it
        # is known only after it (record), so it is read here either way.
        remote = over_providers(workspace, hosts, then["stack"], then["images"])
        attempt.before = (then, world(then, remote))
    except Exception:
        attempt.before = None


def over_providers(workspace: Any, hosts: list[str], stack: str, images: dict[str, list[str]]) -> dict[str, Any]:
    """Each SSH host's engine view over its provider's own refresh connection, the hosts
    at once (each may have to connect first: one after another, 20 handshakes add up)."""
    if not hosts:
        return {}
    from concurrent.futures import ThreadPoolExecutor

    for host in hosts:  # opened here, one thread (they connect on first use, in the pool)
        workspace.provider(host)

    def view(host: str) -> Any:
        return engine_view(HttpGets(workspace.provider(host).transport.http), stack, images)

    with ThreadPoolExecutor(max_workers=min(len(hosts), 32), thread_name_prefix="berth-noop") as pool:
        return dict(zip(hosts, pool.map(view, hosts)))


def ssh_hosts(stack: Any) -> list[str]:
    """The SSH hosts a plan of this stack asks: those its apps run on."""
    return sorted({app.host for app in stack.apps.values() if app.host in stack.hosts})


def ssh_settings(workspace: Any, host: str) -> dict[str, Any]:
    """The host's [hosts.NAME] settings as providers.open_provider gives them to SshTarget."""
    return workspace.stack.hosts[host].model_dump(mode="json", exclude={"build_on"})


def closing(workspace: Any) -> None:
    """Just before a watched full plan's workspace closes its providers: each SSH host's
    engine view after the plan, over the plan's own connection (record compares it with
    the view before). Best effort, as record()."""
    if not WATCH.active:
        return
    try:
        if not shape_eligible(workspace.stack):
            return
        hosts = ssh_hosts(workspace.stack)
        images = images_used(workspace)
        WATCH.ssh_after = over_providers(workspace, hosts, workspace.stack.name, images)
        WATCH.ssh_stats = {h: dict(workspace.provider(h).stats()) for h in hosts}
        WATCH.ssh_local = {h: workspace.provider(h).transport.forwarder.path for h in hosts}
        WATCH.ssh_routes = {h: workspace.provider(h).conn.route for h in hosts}
    except Exception:
        WATCH.ssh_after = None


def no_changes_lines(stack: Any) -> list[list[str]]:
    """What plan and apply print for a no-op (berth.commands.say_environment, then
    berth.ui.plan_view.render_plan's last line)."""
    lines = []
    if stack.environment:
        lines.append([f"Environment {stack.environment}: stack {stack.name} (berth.{stack.environment}.toml over "
                      f"{stack.file.rsplit('/', 1)[-1]})\n", "bold"])
    return lines + [["No changes. The hosts match the configuration.", "bold green"]]


def record(attempt: Attempt | None, workspace: Any, plan: Any) -> None:
    """After a full plan that found no changes: keep what it read, for the next run.
    Best effort: anything unusual records nothing (the next run plans in full)."""
    WATCH.active = False
    if attempt is None or attempt.opts is None or attempt.file is None:
        return
    try:
        _record(attempt, workspace, plan, no_changes_lines(workspace.stack))
    except Exception:  # a cache: failing to keep it costs the next run its speed, nothing else
        pass


def eligible(workspace: Any, plan: Any) -> bool:
    """Whether a no-op of this stack is decided by what the fast path reads alone."""
    stack = workspace.stack
    hosts = ssh_hosts(stack)
    if plan.has_changes or plan.warnings or WATCH.elsewhere or len(local_sockets()) > 1 \
            or not (local_sockets() or hosts) or not ssh_eligible(workspace, hosts):
        return False
    return shape_eligible(stack)


def shape_eligible(stack: Any) -> bool:
    """What the stack file alone rules out: apps placed by berth or on GPUs, cpus, host
    directories mounted, a command secret source."""
    hosts = ssh_hosts(stack)
    for app in stack.apps.values():
        if (app.host != "local" and app.host not in hosts) or app.host_auto or app.gpus or app.cpus is not None:
            return False
        if any(not v.named for v in app.volumes):
            return False  # host directories: refresh asks whether they exist
    return not any(getattr(s, "command", None) for s in stack.secrets.values())


def local_sockets() -> set[str]:
    """The unix sockets the plan connected to, less the SSH providers' own forwarders."""
    return WATCH.sockets - set((getattr(WATCH, "ssh_local", None) or {}).values())


def ssh_eligible(workspace: Any, hosts: list[str]) -> bool:
    """The SSH hosts' part of eligible(): the plan asked each host's engine only, on one
    connection (no command, no SFTP, no probe tunnel, no drop, no new host key), straight
    to its sshd (no ProxyJump or ProxyCommand), and connected over TCP to nothing else."""
    opened = {h for h, p in getattr(workspace, "_providers", {}).items() if hasattr(p, "conn")}
    if not hosts:
        return not opened and not WATCH.tcp
    if WATCH.ssh_after is None or sorted(WATCH.ssh_after) != hosts or opened != set(hosts):
        return False
    allowed: set[tuple[str, int]] = set()
    for host in hosts:
        stats, route = WATCH.ssh_stats[host], WATCH.ssh_routes[host]
        if route.proxy_jump or route.proxy_command or stats.get("connections") != 1:
            return False
        if stats.get("channels", 0) != stats.get("channels_docker", 0) or stats.get("drops") or \
                stats.get("host_keys_added"):
            return False
        for *_, address in _socket.getaddrinfo(route.address, route.port, 0, _socket.SOCK_STREAM):
            allowed.add((str(address[0]), int(address[1])))
    return WATCH.tcp <= allowed


def images_used(workspace: Any) -> dict[str, list[str]]:
    """What wanted_image keeps: the IDs state records, and the apps' `image` references."""
    state = workspace.store.read()
    refs = [app.image for app in workspace.stack.apps.values() if app.build is None and app.image]
    return {"ids": sorted({r.id for r in (state.resources.values() if state else ()) if r.id}),
            "ids_named": sorted({r for r in refs if ":" not in r and "/" not in r and len(r) >= 12} |
                                {r.split(":", 1)[1] for r in refs if r.startswith("sha256:")}),
            "repositories": sorted({repository(r) for r in refs})}


def _record(attempt: Attempt, workspace: Any, plan: Any, lines: list[list[str]]) -> None:
    from berth.ui.plan_view import kept

    if not eligible(workspace, plan) or list(kept(plan)):
        return
    sdir = state_dir(attempt.opts, attempt.file)
    if os.path.realpath(sdir) != os.path.realpath(str(workspace.state_dir)):
        return
    skip = [os.path.join(sdir, d) + os.sep for d in ("stacks", "state", "cache", "logs", RECORD_DIR)]
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix}) + ("/proc/", "/dev/", "/sys/")

    def kept_path(path: str) -> bool:
        return not path.startswith(prefixes) and not any(path.startswith(s) or path + os.sep == s for s in skip)

    files, dirs = dict(WATCH.files), dict(WATCH.dirs)
    stack_dir = os.path.dirname(attempt.file)
    dirs.setdefault(stack_dir, dir_listing(stack_dir))
    files.setdefault(attempt.file, file_stat(attempt.file))
    for path, stat in files.items():  # what was read is still what is there
        if kept_path(path) and os.path.isfile(path) and stat != file_stat(path):
            return
    for path, listing in dirs.items():
        if kept_path(path) and listing is not None and listing != dir_listing(path):
            return
    store = str(workspace.store.path)
    hosts = ssh_hosts(workspace.stack)
    entry = {"version": VERSION, "store": store, "stack": workspace.stack.name,
             "socket": next(iter(local_sockets()), None),
             "files": sorted(p for p, s in files.items() if s is not None and kept_path(p) and os.path.isfile(p)),
             "dirs": sorted(p for p, s in dirs.items() if s is not None and kept_path(p)),
             "absent": sorted(p for p, s in files.items() if s is None and kept_path(p) and not os.path.lexists(p)),
             "lines": lines, "digest": None, "local": None, "images": images_used(workspace),
             "ssh": {h: ssh_settings(workspace, h) for h in hosts}}
    seen = world(entry, WATCH.ssh_after)
    if seen["state"][1]:
        return  # another berth holds the lock: its apply is under way
    state = workspace.store.read()
    views = ([seen["engine"]] if seen["engine"] else []) + list((seen.get("ssh") or {}).values())
    listed = {c["Id"] for view in views for c in view[0]}
    if any(r.id not in listed for r in (state.resources.values() if state else ())
           if r.type in ("container", "gateway", "watcher") and r.id):
        return  # a container the stack's label does not list (imported): refresh looks it up by ID
    directory = os.path.join(sdir, RECORD_DIR)
    os.makedirs(directory, exist_ok=True)
    keys = ("store", "stack", "images", "ssh")

    def compared(view: dict[str, Any]) -> list[Any]:  # the local engine only where this plan asked it
        return [view["state"][0], view["engine"] if entry["socket"] else None, view.get("ssh")]

    before = [(attempt.record, attempt.seen), attempt.before]
    if any(seen_then is not None and {k: then.get(k) for k in keys} == {k: entry[k] for k in keys}
           and (then.get("socket") == entry["socket"] or not entry["socket"]) and compared(seen_then) == compared(seen)
           for then, seen_then in (b for b in before if b is not None and b[0] is not None)):
        # The world before this plan (read by the attempt, or by before()) and after it
        # are the same: the no-op this plan found is the no-op of that world.
        key = _key(directory, create=True)
        entry["local"] = local_digest(key, attempt.opts, entry)
        entry["digest"] = digest(key, entry["local"], seen)
    path = record_path(attempt.opts, attempt.file)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(entry, f)
    os.replace(temporary, path)
