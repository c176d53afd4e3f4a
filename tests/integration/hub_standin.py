"""A local stand-in of the Hugging Face Hub's file API, for tests: not the Hub, and no part
of berth. It serves directories as model repos with the few endpoints `huggingface_hub`'s
`snapshot_download` needs (measured in DESIGN.md, "huggingface_hub against a local stand-in
of the hub"), checks a Bearer token when one is set, and counts every request and every
body byte it sends, so a test can assert that a second fetch downloads nothing.

    with HubStandIn() as hub:
        hub.add_repo("tiny/llama", weights_dir)              # revision "main"
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
        ... fetch ...
        assert hub.bytes_sent == 0

Endpoints (REPO is `org/name`, REV a branch name or a commit sha):
  GET  /api/models/REPO/revision/REV            {"id", "sha", "siblings": [{"rfilename"}]}
  GET  /api/models/REPO/tree/REV[/PATH]?recursive=true   [{type, path, size, oid, lfs?}]
  HEAD /REPO/resolve/REV/FILE                   X-Repo-Commit, ETag, Content-Length
  GET  /REPO/resolve/REV/FILE                   the bytes; `Range: bytes=N-[M]` answers 206

A file of `lfs_threshold` bytes or more is an LFS file, as on the Hub: its tree entry
carries `lfs: {oid: SHA256, size, pointerSize}` and its ETag is that sha256 (X-Linked-Etag
and X-Linked-Size too); a smaller one's oid and ETag are its git blob sha1. A commit sha is
the sha1 of the repo's listing, so the same files always make the same commit.

Tests can make it misbehave: `tamper(repo, path, data)` serves other bytes for a file
while the tree and ETag keep the true size and hashes (a corrupt or truncated download);
`throttle` (bytes per second) slows bodies so a test can kill a client mid-file.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_THRESHOLD = 1 << 20  # 1 MiB; the Hub's own cut-off is 10 MB, any value works for tests
CHUNK = 64 * 1024


@dataclass(frozen=True)
class RepoFile:
    path: str  # relative, with forward slashes
    data_path: Path
    size: int
    blob_sha1: str  # git's blob id: sha1(b"blob SIZE\0" + bytes)
    sha256: str
    lfs: bool

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_sha1


@dataclass
class Revision:
    sha: str
    files: dict[str, RepoFile]


@dataclass
class Request:
    method: str
    path: str  # the URL path, unquoted, without the query
    status: int
    body_bytes: int  # bytes of the body sent
    authorization: str | None
    range: str | None


@dataclass
class _Repo:
    revisions: dict[str, Revision] = field(default_factory=dict)  # name or sha -> revision


def _hash_file(path: Path) -> tuple[str, str, int]:
    size = path.stat().st_size
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha1.update(chunk)
            sha256.update(chunk)
    return sha1.hexdigest(), sha256.hexdigest(), size


class HubStandIn:
    """A threaded HTTP server on `host` (an ephemeral port) serving repos from directories."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 lfs_threshold: int = LFS_THRESHOLD, throttle: float | None = None) -> None:
        self.token = token
        self.lfs_threshold = lfs_threshold
        self.throttle = throttle  # bytes per second for file bodies, None: as fast as possible
        self._repos: dict[str, _Repo] = {}
        self._tampered: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- set up -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_repo(self, repo_id: str, directory: Path, revision: str = "main") -> str:
        """Serve `directory`'s files as `repo_id` at `revision`; return the commit sha.

        Files are read when served, so keep the directory as it was; add another directory
        under another revision name to publish a new commit.
        """
        directory = Path(directory)
        files: dict[str, RepoFile] = {}
        for p in sorted(directory.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(directory).as_posix()
            sha1, sha256, size = _hash_file(p)
            files[rel] = RepoFile(rel, p, size, sha1, sha256, size >= self.lfs_threshold)
        listing = json.dumps([[f.path, f.etag] for f in files.values()]).encode()
        sha = hashlib.sha1(repo_id.encode() + b"\0" + listing).hexdigest()
        rev = Revision(sha, files)
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            repo.revisions[revision] = rev
            repo.revisions[sha] = rev
        return sha

    def tamper(self, repo_id: str, path: str, data: bytes) -> None:
        """Serve `data` for `path` from now on, while the tree and ETag keep the truth."""
        with self._lock:
            self._tampered[(repo_id, path)] = data

    # -- counters ---------------------------------------------------------------------
    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return sum(r.body_bytes for r in self.requests)

    @property
    def file_bytes_sent(self) -> int:
        """Body bytes of file downloads only (GET .../resolve/...)."""
        with self._lock:
            return sum(r.body_bytes for r in self.requests
                       if r.method == "GET" and "/resolve/" in r.path)

    def downloads(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> "HubStandIn":
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="hub-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- used by the handler ----------------------------------------------------------
    def _revision(self, repo_id: str, rev: str) -> Revision | None:
        with self._lock:
            repo = self._repos.get(repo_id)
            return repo.revisions.get(rev) if repo else None

    def _has_repo(self, repo_id: str) -> bool:
        with self._lock:
            return repo_id in self._repos

    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)


_API_REVISION = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/revision/(?P<rev>.+)$")
_API_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def _handler_for(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects of the Hub

        def log_message(self, *args) -> None:  # quiet: tests read hub.requests instead
            pass

        # Each answer goes through _send, which records it.
        def _send(self, status: int, headers: dict[str, str], body: bytes | None = None,
                  *, stream: tuple[Path | bytes, int, int] | None = None,
                  head: bool = False) -> None:
            # Recorded before the body goes, and counted as it goes, so a test that killed
            # a client mid-file reads the bytes already sent.
            record = Request(self.command, unquote(urlsplit(self.path).path), status, 0,
                             self.headers.get("Authorization"), self.headers.get("Range"))
            hub._record(record)
            self.send_response(status)
            length = len(body or b"") if stream is None else stream[2] - stream[1]
            headers = {"Content-Length": str(length), **headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            if stream is None:
                if body:
                    self.wfile.write(body)
                    with hub._lock:
                        record.body_bytes = len(body)
            else:
                self._stream(record, *stream)

        def _stream(self, record: Request, source: Path | bytes, start: int, end: int) -> int:
            sent = 0
            if isinstance(source, bytes):
                chunks = (source[i:min(i + CHUNK, end)] for i in range(start, end, CHUNK))
            else:
                def read():
                    with open(source, "rb") as f:
                        f.seek(start)
                        left = end - start
                        while left > 0:
                            chunk = f.read(min(CHUNK, left))
                            if not chunk:
                                return
                            left -= len(chunk)
                            yield chunk
                chunks = read()
            t0 = time.monotonic()
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    with hub._lock:
                        record.body_bytes = sent
                    if hub.throttle:
                        ahead = sent / hub.throttle - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return sent

        def _json(self, status: int, obj, head: bool = False) -> None:
            self._send(status, {"Content-Type": "application/json"},
                       json.dumps(obj).encode(), head=head)

        def _error(self, status: int, message: str, code: str | None = None, head: bool = False):
            headers = {"Content-Type": "application/json", "X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, headers, json.dumps({"error": message}).encode(), head=head)

        def _authorized(self, head: bool) -> bool:
            if hub.token is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._error(401, "Invalid credentials in Authorization header (hub stand-in)",
                        "GatedRepo", head=head)
            return False

        def do_GET(self) -> None:
            self._dispatch(head=False)

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        def _dispatch(self, head: bool) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            if not self._authorized(head):
                return
            if m := _API_REVISION.match(path):
                return self._revision_info(m["repo"], m["rev"], head)
            if m := _API_TREE.match(path):
                recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                return self._tree(m["repo"], m["rev"], m["sub"] or "", recursive, head)
            if m := _RESOLVE.match(path):
                return self._resolve(m["repo"], m["rev"], m["file"], head)
            self._error(404, f"no such endpoint on the hub stand-in: {path}", head=head)

        def _lookup(self, repo: str, rev: str, head: bool) -> Revision | None:
            r = hub._revision(repo, rev)
            if r is None:
                if not hub._has_repo(repo):
                    self._error(404, f"Repository not found: {repo}", "RepoNotFound", head)
                else:
                    self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound", head)
            return r

        def _revision_info(self, repo: str, rev: str, head: bool) -> None:
            if (r := self._lookup(repo, rev, head)) is None:
                return
            self._json(200, {"id": repo, "modelId": repo, "sha": r.sha, "private": False,
                             "siblings": [{"rfilename": p} for p in r.files]}, head)

        def _tree(self, repo: str, rev: str, sub: str, recursive: bool, head: bool) -> None:
            if (r := self._lookup(repo, rev, head)) is None:
                return
            prefix = sub.strip("/") + "/" if sub.strip("/") else ""
            entries, dirs = [], set()
            for f in r.files.values():
                if not f.path.startswith(prefix):
                    continue
                rest = f.path[len(prefix):]
                parts = rest.split("/")
                for i in range(1, len(parts)):  # the folders on the way
                    d = prefix + "/".join(parts[:i])
                    if (recursive or i == 1) and d not in dirs:
                        dirs.add(d)
                        entries.append({"type": "directory", "oid": "0" * 40, "size": 0,
                                        "path": d})
                if not recursive and len(parts) > 1:
                    continue
                e = {"type": "file", "oid": f.blob_sha1, "size": f.size, "path": f.path}
                if f.lfs:
                    e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                entries.append(e)
            self._json(200, entries, head)

        def _resolve(self, repo: str, rev: str, file: str, head: bool) -> None:
            if (r := self._lookup(repo, rev, head)) is None:
                return
            f = r.files.get(file)
            if f is None:
                self._error(404, f"Entry not found: {file}", "EntryNotFound", head)
                return
            source: Path | bytes = hub._tampered.get((repo, file), f.data_path)
            size = len(source) if isinstance(source, bytes) else f.data_path.stat().st_size
            headers = {"X-Repo-Commit": r.sha, "ETag": f'"{f.etag}"',
                       "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            if f.lfs:
                headers["X-Linked-Etag"] = f'"{f.sha256}"'
                headers["X-Linked-Size"] = str(size)
            start, end, status = 0, size, 200
            rng = self.headers.get("Range")
            if rng and (m := _RANGE.match(rng.strip())):
                start = int(m[1])
                end = min(int(m[2]) + 1, size) if m[2] else size
                if start >= size:
                    self._send(416, {**headers, "Content-Range": f"bytes */{size}"}, b"",
                               head=head)
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            self._send(status, headers, stream=(source, start, end), head=head)

    return Handler
