"""The weights fetcher: fills a host's content-addressed weights cache from one source.

Standalone, imports nothing of berth: it runs on the host in a short-lived helper container
with the host's weights cache mounted (as planner/serving/watcher_script.py runs in the
watcher), or as a plain program in tests.

    python3 fetch_script.py --cache DIR SOURCE [--allow PAT]... [--ignore PAT]...
                            [--token-file FILE] [--check]

SOURCE is `hf://REPO[@REVISION]` (a Hugging Face model repo, through
`huggingface_hub.snapshot_download`; HF_ENDPOINT is honoured) or an `https://` (or
`http://`) URL of one file, optionally ending in `#sha256=HEX`. Patterns are the Hub's
allow/ignore patterns (fnmatch; "dir/" means everything below dir); a URL takes none.
The token, for gated repos or private URLs, is read from a file, never from argv, and
goes as `Authorization: Bearer ...`.

The cache (what must hold; berth relies on it):
  DIR/entries/KEY/files/...        the fetched files, exactly the ones asked for
  DIR/entries/KEY/manifest.json    source, resolved revision, patterns, files with sizes
  DIR/partial/KEY/                 a fetch in progress (kept when interrupted: resumed)
  DIR/locks/KEY.lock               held (flock) by the one fetcher working on KEY
KEY = sha256 of the canonical JSON of {kind, repo or url, resolved revision, allow,
ignore} (`cache_key`): a branch name is resolved to its commit first, so `@main` and
`@<that commit>` share one entry, and a new commit gets a new entry beside the old one.
An entry appears only by one rename of its finished partial directory, after every file's
size, and the sha256 (LFS files) or git blob sha1 (others) the Hub lists, were checked,
so a partial or corrupt fetch is never visible under entries/. An entry that exists is
complete: fetching it again downloads nothing (one revision lookup for a branch name,
no request at all for a commit sha or a URL with #sha256).

Output: one JSON object per line on stdout, `event` first: "resolved" {source, revision,
key, entry}; "cached" {key, entry} when complete already; "missing" (--check only);
"plan" {files, total}; "progress" {done, total, rate, resumed} about twice a second;
"done" {key, entry, files, bytes, downloaded, seconds}; "error" {message}. `entry` is
relative to DIR (mount DIR/ENTRY read-only). Exit status: 0 done or cached, 1 failed,
2 bad arguments, 3 missing (--check).

Resume: huggingface_hub 1.17.0 is the pinned version (pip install 'huggingface_hub==1.17.0'),
because it resumes a download interrupted in an earlier call from the `.incomplete` file
it left (Range request); since 1.18 a killed client's next call downloads the whole file
again. URLs resume with a Range/If-Range request from the partial file.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

ENTRIES = "entries"
PARTIAL = "partial"
LOCKS = "locks"
FILES = "files"
MANIFEST = "manifest.json"
PROGRESS_INTERVAL = 0.5  # seconds between progress lines
HF_LOCAL_META = ".cache"  # snapshot_download(local_dir=...)'s bookkeeping inside files/
HF_CHUNK = 1 << 20  # bytes huggingface_hub reads and writes at a time

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REPO = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


class FetchError(Exception):
    """A fetch that cannot complete; its message is for the user."""


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# What to fetch: parsed once ------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    text: str  # as written
    kind: str  # "hf" or "url"
    repo: str = ""  # hf: org/name
    revision: str = "main"  # hf: as asked (branch, tag or commit)
    url: str = ""  # url: without the fragment
    sha256: str | None = None  # url: from #sha256=HEX

    @property
    def filename(self) -> str:
        name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(self.url).path)).name
        return name if name not in ("", ".", "..") else "download"


def parse_source(text: str) -> Source:
    if text.startswith("hf://"):
        rest = text[len("hf://"):]
        repo, _, rev = rest.partition("@")
        repo = repo.strip("/")
        if not _REPO.match(repo):
            raise FetchError(f"{text}: not hf://REPO[@REVISION] (REPO is org/name)")
        if "@" in text[len("hf://"):] and not rev:
            raise FetchError(f"{text}: empty revision after @")
        return Source(text, "hf", repo=repo, revision=rev or "main")
    if text.startswith(("https://", "http://")):
        url, _, frag = text.partition("#")
        sha = None
        if frag:
            k, _, v = frag.partition("=")
            if k != "sha256" or not _HEX64.match(v.lower()):
                raise FetchError(f"{text}: the only fragment understood is #sha256=<64 hex digits>")
            sha = v.lower()
        if not urllib.parse.urlsplit(url).netloc:
            raise FetchError(f"{text}: no host in the URL")
        return Source(text, "url", url=url, sha256=sha)
    raise FetchError(f"{text}: a source is hf://REPO[@REVISION] or an https:// URL")


def normalise_patterns(patterns: list[str] | None) -> list[str]:
    return sorted(set(patterns or []))


def cache_key(source: Source, revision: str, allow: list[str] | None = None,
              ignore: list[str] | None = None) -> str:
    """The entry's name: the same source, resolved revision and patterns, the same key."""
    material = {"kind": source.kind, "revision": revision,
                "allow": normalise_patterns(allow), "ignore": normalise_patterns(ignore)}
    material["repo" if source.kind == "hf" else "url"] = source.repo or source.url
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def entry_rel(key: str) -> str:
    return f"{ENTRIES}/{key}/{FILES}"


def is_complete(cache: Path, key: str) -> bool:
    return (cache / ENTRIES / key / MANIFEST).is_file()


# Checking what arrived ------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    path: str  # relative, forward slashes
    size: int | None
    sha256: str | None = None
    git_sha1: str | None = None  # git's blob id: sha1(b"blob SIZE\0" + bytes)


def safe_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] == HF_LOCAL_META:
        raise FetchError(f"refusing a file path from the source: {path!r}")
    return p.as_posix()


def verify(root: Path, expected: list[Expected]) -> list[tuple[str, str]]:
    """(path, what is wrong) for every expected file that is missing or differs."""
    problems: list[tuple[str, str]] = []
    for e in expected:
        p = root / e.path
        if not p.is_file():
            problems.append((e.path, "missing"))
            continue
        size = p.stat().st_size
        if e.size is not None and size != e.size:
            problems.append((e.path, f"size {size}, expected {e.size}"))
            continue
        if e.sha256 is None and e.git_sha1 is None:
            continue
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1(b"blob %d\0" % size)
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha256.update(chunk)
                if e.git_sha1:
                    sha1.update(chunk)
            os.fsync(f.fileno())  # the bytes are on disk before the entry appears
        if e.sha256 and sha256.hexdigest() != e.sha256:
            problems.append((e.path, f"sha256 {sha256.hexdigest()}, expected {e.sha256}"))
        elif e.git_sha1 and sha1.hexdigest() != e.git_sha1:
            problems.append((e.path, f"git blob sha1 {sha1.hexdigest()}, expected {e.git_sha1}"))
    return problems


# Progress: the partial directory's size, sampled --------------------------------------
@dataclass
class Progress:
    root: Path
    total: int
    interval: float = PROGRESS_INTERVAL
    resumed: int = 0
    done: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def measure(self) -> int:
        n = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.endswith((".lock", ".metadata")):
                    continue
                try:
                    n += os.lstat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    pass  # renamed between listing and stat
        return min(n, self.total) if self.total else n

    def line(self) -> None:
        self.done = self.measure()
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        rate = max(self.done - self.resumed, 0) / elapsed
        say("progress", done=self.done, total=self.total, rate=round(rate), resumed=self.resumed)

    def __enter__(self) -> "Progress":
        self.resumed = self.done = self.measure()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.line()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.line()

    @property
    def downloaded(self) -> int:
        return max(self.done - self.resumed, 0)


# The cache: lock, stage, publish ---------------------------------------------------------
class KeyLock:
    """flock on DIR/locks/KEY.lock: one fetcher per key, others wait and then find it done."""

    def __init__(self, cache: Path, key: str) -> None:
        (cache / LOCKS).mkdir(parents=True, exist_ok=True)
        self.path = cache / LOCKS / f"{key}.lock"
        self.fd = -1

    def __enter__(self) -> "KeyLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting", message="another fetch of the same source is under way")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def publish(cache: Path, key: str, staging: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest into the staging directory, then rename it into entries/ at once."""
    shutil.rmtree(staging / FILES / HF_LOCAL_META, ignore_errors=True)
    tmp = staging / (MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, staging / MANIFEST)
    (cache / ENTRIES).mkdir(parents=True, exist_ok=True)
    os.rename(staging, cache / ENTRIES / key)  # atomic on one filesystem; we hold the key's lock
    fd = os.open(cache / ENTRIES, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest(source: Source, revision: str, key: str, allow, ignore,
              expected: list[Expected]) -> dict[str, Any]:
    return {"source": source.text, "kind": source.kind, "repo": source.repo or None,
            "url": source.url or None, "revision": revision, "key": key,
            "allow": normalise_patterns(allow), "ignore": normalise_patterns(ignore),
            "bytes": sum(e.size or 0 for e in expected),
            "files": [{"path": e.path, "size": e.size, "sha256": e.sha256,
                       "git_sha1": e.git_sha1} for e in expected]}


def _discard(files: Path, path: str) -> None:
    """Forget a bad file, with the hub library's bookkeeping of it, so a retry fetches it anew."""
    (files / path).unlink(missing_ok=True)
    meta = files / HF_LOCAL_META / "huggingface" / "download"
    for p in (meta.glob(f"{path}.*") if meta.is_dir() else []):
        p.unlink(missing_ok=True)


def _remove_unexpected(files: Path, expected: list[Expected]) -> None:
    want = {e.path for e in expected}
    for p in sorted(files.rglob("*"), reverse=True):
        rel = p.relative_to(files).as_posix()
        if rel == HF_LOCAL_META or rel.startswith(HF_LOCAL_META + "/"):
            continue
        if p.is_file() and rel not in want:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


# hf:// ----------------------------------------------------------------------------------
def settled(cache: Path, text: str, revision: str, key: str, check: bool) -> int | None:
    """Say what the source resolved to; the exit status when nothing is left to do (its
    entry is complete already, or --check found it missing), else None: fetch it."""
    say("resolved", source=text, revision=revision, key=key, entry=entry_rel(key))
    if is_complete(cache, key):
        say("cached", key=key, entry=entry_rel(key))
        return EXIT_OK
    if check:
        say("missing", key=key, entry=entry_rel(key))
        return EXIT_MISSING
    return None


def fetch_hf(source: Source, cache: Path, allow, ignore, token: str | None,
             check: bool) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # we print our own progress
    try:
        from huggingface_hub import HfApi, snapshot_download
        from huggingface_hub.hf_api import RepoFile
        from huggingface_hub.utils import filter_repo_objects
    except ImportError as e:
        raise FetchError(f"hf:// needs huggingface_hub (pip install 'huggingface_hub==1.17.0'): {e}")

    import huggingface_hub.constants as hf_constants

    # The library writes a download in chunks of 10 MiB: progress would jump by 10 MiB and a
    # killed fetch would lose up to that much. 1 MiB keeps both fine-grained.
    hf_constants.DOWNLOAD_CHUNK_SIZE = HF_CHUNK
    hf_token: str | bool = token if token else False  # never send a token nobody gave
    api = HfApi(token=hf_token)
    t0 = time.monotonic()
    revision = source.revision
    if not _COMMIT.match(revision):
        revision = api.model_info(source.repo, revision=source.revision, token=hf_token).sha
        if not revision:
            raise FetchError(f"{source.text}: the hub named no commit for {source.revision}")
    key = cache_key(source, revision, allow, ignore)
    if (done := settled(cache, source.text, revision, key, check)) is not None:
        return done

    with KeyLock(cache, key):
        if is_complete(cache, key):  # another fetcher finished while we waited
            say("cached", key=key, entry=entry_rel(key))
            return EXIT_OK
        tree = [f for f in api.list_repo_tree(source.repo, revision=revision, recursive=True,
                                              token=hf_token) if isinstance(f, RepoFile)]
        chosen = list(filter_repo_objects(tree, allow_patterns=allow or None,
                                          ignore_patterns=ignore or None, key=lambda f: f.path))
        if not chosen:
            raise FetchError(f"{source.text}: no file at {revision[:12]} matches the patterns")
        expected = [Expected(safe_relpath(f.path), f.size,
                             sha256=f.lfs.sha256 if f.lfs else None,
                             git_sha1=None if f.lfs else f.blob_id) for f in chosen]
        total = sum(e.size or 0 for e in expected)
        say("plan", files=len(expected), total=total)
        staging = cache / PARTIAL / key
        files = staging / FILES
        files.mkdir(parents=True, exist_ok=True)
        with Progress(files, total) as progress:
            snapshot_download(source.repo, revision=revision, local_dir=str(files),
                              allow_patterns=allow or None, ignore_patterns=ignore or None,
                              token=hf_token)
        _remove_unexpected(files, expected)
        problems = verify(files, expected)
        if problems:
            for path, _ in problems:
                _discard(files, path)
            raise FetchError("; ".join(f"{p}: {why}" for p, why in problems)
                             + " (discarded; nothing was put in the cache)")
        publish(cache, key, staging, _manifest(source, revision, key, allow, ignore, expected))
    say("done", key=key, entry=entry_rel(key), files=len(expected), bytes=total,
        downloaded=progress.downloaded, seconds=round(time.monotonic() - t0, 3))
    return EXIT_OK


# https:// -------------------------------------------------------------------------------
def _request(url: str, method: str, token: str | None, extra: dict[str, str] | None = None):
    headers = {"User-Agent": "berth-weights-fetch/1", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        raise FetchError(f"{method} {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FetchError(f"{method} {url}: {e.reason}") from None


def fetch_url(source: Source, cache: Path, allow, ignore, token: str | None,
              check: bool) -> int:
    if allow or ignore:
        raise FetchError(f"{source.text}: allow/ignore patterns apply to hf:// repos, not to a URL")
    t0 = time.monotonic()
    etag = size = None
    if source.sha256:
        revision = f"sha256:{source.sha256}"  # content-addressed: no request to know the key
    else:
        with _request(source.url, "HEAD", token) as r:
            etag = r.headers.get("ETag")
            size = r.headers.get("Content-Length")
            modified = r.headers.get("Last-Modified")
        if etag and not etag.startswith("W/"):
            revision = f"etag:{etag.strip(chr(34))}"
        elif modified:
            revision = f"modified:{modified}|{size}"
        else:
            raise FetchError(f"{source.url} names no version (no ETag, no Last-Modified): "
                             "add #sha256=<hex> to the source")
    key = cache_key(source, revision)
    if (done := settled(cache, source.text, revision, key, check)) is not None:
        return done

    with KeyLock(cache, key):
        if is_complete(cache, key):
            say("cached", key=key, entry=entry_rel(key))
            return EXIT_OK
        staging = cache / PARTIAL / key
        files = staging / FILES
        files.mkdir(parents=True, exist_ok=True)
        name = safe_relpath(source.filename)
        part = files / (name + ".part")
        have = part.stat().st_size if part.exists() else 0
        extra = {}
        if have:
            extra["Range"] = f"bytes={have}-"
            if etag and not etag.startswith("W/"):
                extra["If-Range"] = etag
        resp = _request(source.url, "GET", token, extra)
        with resp:
            if resp.status == 206:
                mode = "ab"
                length = resp.headers.get("Content-Range", "").rpartition("/")[2]
                total = int(length) if length.isdigit() else None
            else:  # 200: whole file (the server ignored the range, or nothing to resume)
                mode, have = "wb", 0
                cl = resp.headers.get("Content-Length")
                total = int(cl) if cl and cl.isdigit() else None
            if mode == "wb":
                part.unlink(missing_ok=True)
            say("plan", files=1, total=total or 0)
            with Progress(files, total or 0) as progress, open(part, mode) as out:
                if mode == "ab":
                    progress.resumed = have
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
        expected = [Expected(name, total, sha256=source.sha256)]
        got = part.stat().st_size
        if total is not None and got < total:
            raise FetchError(f"{name}: {got} of {total} bytes arrived (kept; the next fetch resumes)")
        if total is not None and got > total:
            part.unlink()
            raise FetchError(f"{name}: {got} bytes arrived, expected {total} (discarded)")
        os.replace(part, files / name)
        problems = verify(files, expected)
        if problems:
            for path, _ in problems:
                _discard(files, path)
            raise FetchError("; ".join(f"{p}: {why}" for p, why in problems)
                             + " (discarded; nothing was put in the cache)")
        publish(cache, key, staging, _manifest(source, revision, key, None, None, expected))
    say("done", key=key, entry=entry_rel(key), files=1, bytes=got,
        downloaded=progress.downloaded, seconds=round(time.monotonic() - t0, 3))
    return EXIT_OK


# The program ----------------------------------------------------------------------------
def run(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fetch_script.py",
                                 description="Fill a content-addressed weights cache.")
    ap.add_argument("source")
    ap.add_argument("--cache", required=True, type=Path)
    ap.add_argument("--allow", action="append", default=[], metavar="PATTERN")
    ap.add_argument("--ignore", action="append", default=[], metavar="PATTERN")
    ap.add_argument("--token-file", type=Path)
    ap.add_argument("--check", action="store_true",
                    help="only say whether the entry is complete (exit 0) or missing (exit 3)")
    try:
        a = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    try:
        source = parse_source(a.source)
        token = None
        if a.token_file is not None:
            try:
                token = a.token_file.read_text().strip() or None
            except OSError as e:
                raise FetchError(f"token file {a.token_file}: {e.strerror}") from None
        a.cache.mkdir(parents=True, exist_ok=True)
        fetch = fetch_hf if source.kind == "hf" else fetch_url
        return fetch(source, a.cache, a.allow, a.ignore, token, a.check)
    except FetchError as e:
        say("error", message=str(e))
        return EXIT_FAILED
    except Exception as e:  # the hub library's errors: one line for the user, not a traceback
        say("error", message=f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run())
