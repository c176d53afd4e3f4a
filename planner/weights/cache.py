"""What berth knows of a weights source before any host is asked: its cache key when that
follows from the stack alone, the files of a local directory, and the attributes state keeps.

The cache itself (DIR/entries/KEY/files, entries appearing only by one rename of a finished
partial/KEY) is fetch_script.py's layout; a local directory is put there by the provider
in the same layout. Keys:

- a local directory: sha256 of its files (relative path, mode, content) after the
  allow/ignore patterns, so an unchanged directory costs nothing and a changed one gets
  an entry beside the old one;
- hf://REPO@COMMIT (40 hex) and https://...#sha256=HEX: fetch_script.cache_key, known now;
- any other hf:// or https:// source: known once the host resolved it (the branch's
  commit, the URL's ETag): the weights step records it, the container mounts it.

Entries are never deleted by berth: a container may mount one, and another stack on the
host may share it. Remove DIR/entries/KEY by hand when nothing runs from it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from planner.desired import WeightsSource
from planner.weights import fetch_script

LOCAL_PREFIX = "weights:"  # content_hashes' key of a local directory's weights key


def hash_key(w: WeightsSource) -> str:
    """Where the key of a local directory source sits in the content hashes refresh makes."""
    return f"{LOCAL_PREFIX}{w.source}|{','.join(w.allow)}|{','.join(w.ignore)}"


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    """The Hub's pattern rule: fnmatch, and "dir/" means everything below dir."""
    return any(fnmatch.fnmatch(path, p + "*" if p.endswith("/") else p) for p in patterns)


def local_files(w: WeightsSource) -> list[tuple[str, Path, os.stat_result]]:
    """(relative path, path, stat) of every regular file the source puts in the cache,
    sorted; symlinks are followed (a model directory often links into a download cache)."""
    root = Path(w.source)
    found = []
    for directory, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            full = Path(directory) / name
            rel = full.relative_to(root).as_posix()
            if w.allow and not _matches(rel, w.allow):
                continue
            if w.ignore and _matches(rel, w.ignore):
                continue
            st = full.stat()
            if stat.S_ISREG(st.st_mode):
                found.append((rel, full, st))
    return found


def file_sha256(path: Path, st: os.stat_result, memo: MutableMapping[str, str] | None = None) -> str:
    from planner.contexthash import file_hash

    return file_hash(str(path), st, memo)


# (relative path, local path, size, sha256, executable): what a provider copies in
LocalFile = tuple[str, str, int, str, bool]


def local_entries(w: WeightsSource, memo: MutableMapping[str, str] | None = None) -> list[LocalFile]:
    return [(rel, str(full), st.st_size, file_sha256(full, st, memo), bool(st.st_mode & 0o111))
            for rel, full, st in local_files(w)]


def key_of(w: WeightsSource, files: list[LocalFile]) -> str:
    digest = hashlib.sha256(json.dumps({"kind": "dir", "allow": sorted(w.allow), "ignore": sorted(w.ignore)},
                                       sort_keys=True).encode())
    for rel, _path, size, sha, executable in files:
        digest.update(f"{rel}\0{size}\0{int(executable)}\0{sha}\n".encode())
    return digest.hexdigest()


def local_key(w: WeightsSource, memo: MutableMapping[str, str] | None = None) -> str:
    """The cache key of a local directory source (OSError when it cannot be read)."""
    return key_of(w, local_entries(w, memo))


def source_of(attrs: dict[str, Any]) -> WeightsSource:
    """The WeightsSource a weights resource's attributes were made from."""
    return WeightsSource(source=attrs["source"], mount=attrs["mount"], allow=tuple(attrs.get("allow") or ()),
                         ignore=tuple(attrs.get("ignore") or ()), secret=attrs.get("secret"))


def known_key(w: WeightsSource) -> str | None:
    """The key of a remote source when the stack alone fixes it (a commit, a sha256)."""
    if w.kind == "dir":
        return None
    source = fetch_script.parse_source(w.source)
    if source.kind == "hf" and fetch_script._COMMIT.match(source.revision):
        return fetch_script.cache_key(source, source.revision, list(w.allow), list(w.ignore))
    if source.kind == "url" and source.sha256:
        return fetch_script.cache_key(source, f"sha256:{source.sha256}")
    return None


def attributes(w: WeightsSource, key: str | None) -> dict[str, Any]:
    """A weights resource's attributes; key None: known once the host resolved it."""
    return {"source": w.source, "kind": w.kind, "mount": w.mount, "allow": list(w.allow),
            "ignore": list(w.ignore), "secret": w.secret, "key": key}


REQUEST_KEYS = ("source", "allow", "ignore")  # what asks for an entry (mount and secret do not)
