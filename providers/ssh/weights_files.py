"""The weights cache on an SSH host, over the host's one connection: the layout of
providers.weights_files (ROOT/entries/KEY, copied to ROOT/partial/KEY first, then one
rename), with ROOT /var/lib/berth/weights for a root login, else the login's
~/.local/state/berth/weights (made absolute with SFTP REALPATH of ".").

A copy sends only the files the partial directory lacks or holds with another size or
sha256 (one `sha256sum` on the host says which), each to FILE.part and renamed; a copy
of a new version starts as hard links to the previous entry's files (`cp -al`), so only
what changed travels.
"""

from __future__ import annotations

import posixpath
import shlex
from contextlib import AbstractContextManager
from typing import Any, Callable

from providers.types import ProviderError
from providers.weights_files import ENTRIES, FILES, MANIFEST, PARTIAL, SERVER_ROOT, USER_ROOT, LocalFile, Meter, manifest


class SftpWeightsFiles:
    def __init__(self, host: str, session: Callable[[], AbstractContextManager[Any]], user: str,
                 run: Callable[..., tuple[int, str, str]]) -> None:
        self.host = host
        self._session = session
        self._run = run
        self._root = SERVER_ROOT if user == "root" else None

    def root(self) -> str:
        if self._root is None:
            with self._session() as sftp:
                try:
                    self._root = posixpath.join(sftp.normalize("."), USER_ROOT)
                except OSError as err:
                    raise ProviderError(f"host {self.host}: cannot find the login's home directory "
                                        f"(for the weights cache): {err.strerror or err}") from None
        return self._root

    def _sh(self, command: str, what: str, timeout: float = 600.0) -> str:
        code, out, err = self._run(command, timeout=timeout)
        if code != 0:
            raise ProviderError(f"host {self.host}: cannot {what}: {err.strip() or out.strip() or f'exit {code}'}")
        return out

    def ensure_root(self) -> str:
        root = self.root()
        self._sh(f"mkdir -p {shlex.quote(posixpath.join(root, ENTRIES))}", f"make the weights cache {root}")
        return root

    def entries(self) -> frozenset[str]:
        path = posixpath.join(self.root(), ENTRIES)
        with self._session() as sftp:
            try:
                return frozenset(sftp.listdir(path))
            except FileNotFoundError:
                return frozenset()
            except OSError as err:
                raise ProviderError(f"host {self.host}: cannot list the weights cache {path}: {err.strerror or err}") from None

    def put(self, key: str, source: str, files: list[LocalFile], progress: Callable[[str], None],
            previous: str | None = None) -> int:
        root = self.ensure_root()
        entry, staging = posixpath.join(root, ENTRIES, key), posixpath.join(root, PARTIAL, key)
        q = shlex.quote
        # A new copy of a new version starts as hard links to the old entry's files.
        seed = ""
        if previous:
            old = posixpath.join(root, ENTRIES, previous, FILES)
            seed = (f"if [ ! -e {q(staging)} ] && [ -d {q(old)} ]; then mkdir -p {q(staging)} && "
                    f"cp -al {q(old)} {q(staging + '/' + FILES)} || rm -rf {q(staging)}; fi; ")
        listed = self._sh(
            f"if [ -d {q(entry)} ]; then echo ENTRY; exit 0; fi; {seed}mkdir -p {q(staging + '/' + FILES)} && "
            f"cd {q(staging + '/' + FILES)} && find . -type f ! -name '*.part' -print0 | xargs -0 -r sha256sum",
            f"read the partial copy {staging}")
        if listed.strip() == "ENTRY":
            progress(f"entry {key[:12]} is already in {self.host}'s cache: nothing copied")
            return 0
        there = {}
        for line in listed.splitlines():
            digest, _, name = line.partition("  ")
            there[posixpath.normpath(name)] = digest
        wanted = [f for f in files if there.get(f[0]) != f[3]]
        meter = Meter(sum(f[2] for f in wanted), progress, self.host)
        with self._session() as sftp:
            made = {posixpath.join(staging, FILES)}
            try:
                for rel, path, _size, _sha, executable in wanted:
                    target = posixpath.join(staging, FILES, rel)
                    directory = posixpath.dirname(target)
                    if directory not in made:
                        self._sh(f"mkdir -p {q(directory)}", f"make {directory}")
                        made.add(directory)
                    part = target + ".part"
                    with open(path, "rb") as src, sftp.open(part, "wb") as out:
                        out.set_pipelined(True)
                        while chunk := src.read(1 << 18):
                            out.write(chunk)
                            meter.add(len(chunk))
                    sftp.chmod(part, 0o755 if executable else 0o644)
                    sftp.posix_rename(part, target)
                for rel in sorted(set(there) - {f[0] for f in files}):  # left by a seed or an older copy
                    sftp.remove(posixpath.join(staging, FILES, rel))
                with sftp.open(posixpath.join(staging, MANIFEST), "wb") as out:
                    out.write(manifest(key, source, files))
            except OSError as err:
                raise ProviderError(f"host {self.host}: cannot copy weights into {staging}: {err.strerror or err}") from None
        # One rename makes the entry appear; one already there (another stack) wins.
        self._sh(f"sync; mv -T {q(staging)} {q(entry)} 2>/dev/null || {{ [ -d {q(entry)} ] && rm -rf {q(staging)}; }}",
                 f"move the copy into {entry}")
        progress(meter.line())
        return meter.sent
