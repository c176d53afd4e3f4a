"""What the platforms' own formats (Cerebrium, Truss) share: collecting their problems
with file, key path and line, the result of reading one (an app's fields), and the
build directory berth writes for the images it makes for them.

A platform file becomes one app. The reader returns an Imported: the AppConfig fields
the file asks for, the name it gives itself, and what berth cannot honour (`ignored`,
one line each, shown in the plan). Nothing here prints.

Build directory: `.berth/build/APP/` beside the stack file holds the Dockerfile berth
generated and `context/`, the files the image is built from: the app directory's files
that the format would upload (hard links where the filesystem allows, so staging is
cheap and content hashes see the same files), plus `.berth-build/` with generated
dependency lists. Staging keeps berth's own `.berth/` out of every image, and lets a
Cerebrium include/exclude list mean what it means on Cerebrium.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.diagnostics import Diagnostic

STATE_DIR = ".berth"
GENERATED_DIR = ".berth-build"  # inside a staged context: files berth wrote
Loc = tuple[str | int, ...]


@dataclass
class PlatformSource:
    """One platform file being read, and the problems found in it so far."""

    file: Path
    shown: str  # the file as diagnostics name it
    format: str  # "Cerebrium", "Truss"
    find_line: Callable[[Sequence[str | int]], int | None]
    problems: list[Diagnostic] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    prefix: Loc = ()  # keys every loc is under (Cerebrium's legacy "cerebrium.")

    @property
    def origin(self) -> str:
        return f"{self.file.name} ({self.format})"

    def line(self, loc: Loc) -> int | None:
        return self.find_line(list(self.prefix + loc))

    def error(self, loc: Loc, summary: str, detail: str = "") -> None:
        self.problems.append(Diagnostic(summary=summary, file=self.shown, key=dotted(self.prefix + loc) or None,
                                        line=self.line(loc), detail=detail))

    def ignore(self, loc: Loc, why: str) -> None:
        """A key berth reads but cannot honour: shown in the plan, one line."""
        line = self.line(loc)
        where = f"{self.file.name}:{line}" if line else self.file.name
        self.ignored.append(f"{where}: {dotted(self.prefix + loc)}: {why}")


@dataclass
class Imported:
    """A platform file read into an app's fields (planner.desired.AppConfig keywords,
    without `name`), the name it gives itself, and where its files are."""

    fields: dict[str, Any]
    name: str | None  # Cerebrium deployment.name / Truss model_name, as written
    directory: Path  # the app directory: the file's own directory
    app: str = ""  # the app's name in the stack (and of its build directory)


def dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            text += f".{key}" if text else key
    return text


def sanitised_name(text: str) -> str:
    """A stack or app name (lowercase letters, digits, - and _) made from a platform's name."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")


def app_name(name: str | None, directory: Path) -> str:
    """The name a platform file's app (and single-file stack) goes by: the name the file
    gives, else its directory's, made into a valid name ("" when neither makes one)."""
    return sanitised_name(name or "") or sanitised_name(directory.name)


def is_set(value: Any) -> bool:
    """Whether a written value asks for anything (empty tables, lists and false do not)."""
    return value not in (None, "", [], {}, False)


# -- the build directory ---------------------------------------------------------------


def build_dir(stack_dir: Path, app: str) -> Path:
    return stack_dir / STATE_DIR / "build" / app


def write_if_changed(path: Path, text: str) -> None:
    """Rewrite only on a change, so an unchanged generated file keeps its mtime (and
    its memoised hash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.write_text(text)


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.removeprefix("./").rstrip("/") or "*"
        if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
        if fnmatch.fnmatchcase(rel, pattern + "/*"):  # a directory names everything in it
            return True
    return False


def stage_context(
    app_dir: Path, context: Path, include: Sequence[str], exclude: Sequence[str], generated: dict[str, str],
) -> None:
    """Make `context` hold exactly the files of `app_dir` that `include` names and
    `exclude` does not (berth's own .berth/ never), plus `generated` under .berth-build/.

    Files are hard-linked (copied where links fail), so an unchanged file keeps its
    inode and mtime; a file gone from the app directory goes from the context.
    """
    wanted: set[str] = set()
    context.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(app_dir):
        rel_root = os.path.relpath(root, app_dir)
        rel_root = "" if rel_root == "." else rel_root + "/"
        kept = []
        for name in sorted(dirs):
            rel = rel_root + name
            if name == STATE_DIR or (not rel_root and name == GENERATED_DIR) or _matches(rel, exclude):
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            rel = rel_root + name
            if _matches(rel, exclude) or not _matches(rel, include):
                continue
            wanted.add(rel)
            _place(app_dir / rel, context / rel)
    for name, text in generated.items():
        wanted.add(f"{GENERATED_DIR}/{name}")
        write_if_changed(context / GENERATED_DIR / name, text)
    _prune(context, wanted)


def _place(source: Path, target: Path) -> None:
    try:
        src = os.lstat(source)
        dst = os.lstat(target)
        if (src.st_ino, src.st_dev) == (dst.st_ino, dst.st_dev):
            return
        if os.path.islink(source) and os.path.islink(target) and os.readlink(source) == os.readlink(target):
            return
        target.unlink()
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _prune(context: Path, wanted: set[str]) -> None:
    for root, dirs, files in os.walk(context, topdown=False):
        rel_root = os.path.relpath(root, context)
        rel_root = "" if rel_root == "." else rel_root + "/"
        for name in files:
            if rel_root + name not in wanted:
                os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                if rel_root + name not in wanted:
                    os.unlink(path)
            elif not os.listdir(path):
                os.rmdir(path)


# -- pieces of generated Dockerfiles ---------------------------------------------------


def json_list(items: Sequence[str]) -> str:
    import json

    return json.dumps(list(items))


def apt_install(packages: Sequence[str]) -> str:
    return ("RUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(packages) + " && rm -rf /var/lib/apt/lists/*")


def pip_install(requirements: str, *, python: str = "python3", uv: bool = False) -> list[str]:
    """RUN lines installing a requirements file into the image's Python (no venv:
    Debian's Python marks itself externally managed, which the environment overrides)."""
    if uv:
        return [
            f"RUN {python} -m pip install --no-cache-dir uv",
            # uv reads the system's CA store only when asked; images behind a TLS-inspecting
            # proxy need it, and it is where ca-certificates puts public roots too.
            f"RUN UV_NATIVE_TLS=1 {python} -m uv pip install --system --break-system-packages "
            f"--python {python} --no-cache -r {requirements}",
        ]
    return [f"RUN {python} -m pip install --no-cache-dir -r {requirements}"]
