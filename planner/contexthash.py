"""Content hashes of build contexts, so an unchanged context is never rebuilt.

The hash covers exactly what Docker would be sent (the same .dockerignore rules, via
docker-py's own exclude_paths), the Dockerfile name and the build args. Per-file hashes
are memoised by path, size, mtime and mode, so a re-plan reads only files that changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import MutableMapping
from pathlib import Path

from planner.desired import BuildSource

# A file modified this recently may change again within the same mtime tick without its
# size changing ("racy git"); its hash is not memoised.
RACY_SECONDS = 2.0
CHUNK = 1 << 20


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _file_hash(path: str, st: os.stat_result, memo: MutableMapping[str, str] | None) -> str:
    key = f"file:{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_mode}"
    if memo is not None and (cached := memo.get(key)) is not None:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    if memo is not None and time.time() - st.st_mtime > RACY_SECONDS:
        memo[key] = value
    return value


def file_hash(path: str, st: os.stat_result, memo: MutableMapping[str, str] | None = None) -> str:
    """A file's sha256, memoised by path, size, mtime and mode (weights directories use it)."""
    return _file_hash(path, st, memo)


def context_hash(build: BuildSource, memo: MutableMapping[str, str] | None = None) -> str:
    from docker.utils.build import exclude_paths

    root = Path(build.context)
    digest = hashlib.sha256()
    # The secrets' names (never their values), target and cache_from count only when set,
    # so a context hashed before they existed hashes the same.
    extra = {key: value for key, value in (("secrets", sorted(build.secrets)), ("target", build.target),
                                           ("cache_from", list(build.cache_from))) if value}
    digest.update(json.dumps({"dockerfile": build.dockerfile, "args": build.args, **extra}, sort_keys=True).encode())
    dockerfile = Path(build.dockerfile)
    if dockerfile.is_absolute() and root not in dockerfile.parents:
        # A Dockerfile outside the context (one berth generated) is sent beside it.
        st = os.stat(dockerfile)
        digest.update(f"dockerfile:{_file_hash(str(dockerfile), st, memo)}\n".encode())
    for rel in sorted(exclude_paths(str(root), _dockerignore(root), dockerfile=build.dockerfile)):
        full = os.path.join(root, rel)
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            entry = f"link:{os.readlink(full)}"
        elif stat.S_ISDIR(st.st_mode):
            entry = "dir"
        else:
            entry = f"file:{_file_hash(full, st, memo)}"
        digest.update(f"{rel}\0{stat.S_IMODE(st.st_mode):o}\0{entry}\n".encode())
    return digest.hexdigest()
