"""The weights cache on the machine berth runs on: ROOT/entries/KEY/{files,manifest.json},
filled from a local directory, or by the fetcher's helper container (which mounts ROOT).

ROOT is /var/lib/berth/weights when berth runs as root, else $XDG_STATE_HOME/berth/weights
(~/.local/state/berth/weights); BERTH_WEIGHTS_DIR overrides both. One cache per host,
shared by every stack: entries are content-addressed and never changed once they appear.
A copy goes to ROOT/partial/KEY first (files already there with the same size and
sha256, from an interrupted copy, are kept), then appears by one rename, so a partial
copy is never mounted. berth never deletes an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from providers.types import ProviderError

ENTRIES, PARTIAL, FILES, MANIFEST = "entries", "partial", "files", "manifest.json"
SERVER_ROOT = "/var/lib/berth/weights"
USER_ROOT = ".local/state/berth/weights"  # under the login's home
PROGRESS_EVERY = 1.0  # seconds between progress lines

# (relative path, local path, size, sha256, executable) of one file to put in an entry
LocalFile = tuple[str, str, int, str, bool]


def default_root() -> Path:
    configured = os.environ.get("BERTH_WEIGHTS_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    if os.geteuid() == 0:
        return Path(SERVER_ROOT)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "berth" / "weights"


def manifest(key: str, source: str, files: list[LocalFile]) -> bytes:
    return json.dumps({"source": source, "kind": "dir", "key": key, "bytes": sum(f[2] for f in files),
                       "files": [{"path": f[0], "size": f[2], "sha256": f[3]} for f in files]},
                      indent=1, sort_keys=True).encode()


class Meter:
    """Bytes sent and the rate, said about once a second: what image delivery says."""

    def __init__(self, total: int, progress: Callable[[str], None], host: str) -> None:
        self.total, self.progress, self.host = total, progress, host
        self.sent, self.started, self.said = 0, time.monotonic(), 0.0

    def add(self, n: int) -> None:
        self.sent += n
        now = time.monotonic()
        if now - self.said >= PROGRESS_EVERY:
            self.said = now
            self.progress(self.line())

    def line(self) -> str:
        rate = self.sent / max(time.monotonic() - self.started, 1e-3)
        return f"sent {_mb(self.sent)} of {_mb(self.total)} to {self.host} ({_mb(rate)}/s)"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class LocalWeightsFiles:
    """WeightsFiles (providers.base) on the local file system."""

    def __init__(self, root: Path, host: str = "local") -> None:
        self._root = root
        self.host = host

    def root(self) -> str:
        return str(self._root)

    def ensure_root(self) -> str:
        try:
            (self._root / ENTRIES).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ProviderError(f"host {self.host}: cannot make the weights cache {self._root}: {err.strerror}") from None
        return str(self._root)

    def entries(self) -> frozenset[str]:
        try:
            return frozenset(p.name for p in (self._root / ENTRIES).iterdir())
        except FileNotFoundError:
            return frozenset()
        except OSError as err:
            raise ProviderError(f"host {self.host}: cannot list the weights cache {self._root}: {err.strerror}") from None

    def put(self, key: str, source: str, files: list[LocalFile], progress: Callable[[str], None],
            previous: str | None = None) -> int:
        entry = self._root / ENTRIES / key
        if entry.is_dir():
            progress(f"entry {key[:12]} is already in {self.host}'s cache: nothing copied")
            return 0
        staging = self._root / PARTIAL / key
        old = self._root / ENTRIES / previous / FILES if previous else None
        if old is not None and old.is_dir() and not staging.exists():
            try:
                shutil.copytree(old, staging / FILES, copy_function=os.link)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another file system: copy it all
        meter = Meter(sum(f[2] for f in files if not self._same(staging / FILES / f[0], f)), progress, self.host)
        try:
            for rel, path, size, sha, executable in files:
                target = staging / FILES / rel
                if self._same(target, (rel, path, size, sha, executable)):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_name(target.name + ".part")
                with open(path, "rb") as src, open(part, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        meter.add(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(part, 0o755 if executable else 0o644)
                os.replace(part, target)
            wanted = {f[0] for f in files}
            for path in sorted((staging / FILES).rglob("*"), reverse=True):  # left by a seed or an older copy
                rel = path.relative_to(staging / FILES).as_posix()
                if path.is_file() and rel not in wanted:
                    path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
            (staging / MANIFEST).write_bytes(manifest(key, source, files))
            (self._root / ENTRIES).mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, entry)
            except OSError:
                if not entry.is_dir():  # another stack's apply put it there first: fine
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as err:
            raise ProviderError(f"host {self.host}: cannot copy weights into {staging}: {err.strerror or err}") from None
        progress(meter.line())
        return meter.sent

    @staticmethod
    def _same(target: Path, file: LocalFile) -> bool:
        try:
            return target.stat().st_size == file[2] and _sha256(target) == file[3]
        except OSError:
            return False
