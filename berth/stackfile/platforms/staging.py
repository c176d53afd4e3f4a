"""The build directory berth writes for a platform app's image: the staged context and the
Dockerfile it generates for Cerebrium's python runtime and for a docker_server Truss.

Build directory: `.berth/build/APP/` beside the stack file holds the Dockerfile berth
generated and `context/`, the files the image is built from: the app directory's files
that the format would upload, less the platform file itself (hard links where the filesystem allows, so staging is
cheap and content hashes see the same files), plus `.berth-build/` with generated
dependency lists. Staging keeps berth's own `.berth/` out of every image, and lets a
Cerebrium include/exclude list mean what it means on Cerebrium.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# The default (cortex) runtime's server (platforms/cortex_server.py): its file and its
# requirements under .berth-build/, and where the image holds it.
CORTEX_SERVER = "cortex_server.py"
CORTEX_REQUIREMENTS = "cortex-requirements.txt"
CORTEX_INSTALLED_AT = "/opt/berth/cortex_server.py"

STATE_DIR = ".berth"
GENERATED_DIR = ".berth-build"  # inside a staged context: files berth wrote


# -- the build directory ---------------------------------------------------------------


def build_dir(stack_dir: Path, app: str) -> Path:
    return stack_dir / STATE_DIR / "build" / app


def stage_build(
    stack_dir: Path, app: str, app_dir: Path, *, include: Sequence[str], exclude: Sequence[str],
    generated: dict[str, str], dockerfile: str | None, leave_out: Sequence[str] = (),
) -> tuple[Path, Path | None]:
    """Fill the app's build directory: the Dockerfile berth generated (when `dockerfile`
    is its text; None when the app brings its own), then the staged context. Returns the
    context and the generated Dockerfile's path."""
    out = build_dir(stack_dir, app)
    written = None
    if dockerfile is not None:
        written = out / "Dockerfile"
        write_if_changed(written, dockerfile)
    context = out / "context"
    stage_context(app_dir, context, include, exclude, generated, leave_out)
    return context, written


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
    leave_out: Sequence[str] = (),
) -> None:
    """Make `context` hold exactly the files of `app_dir` that `include` names and
    `exclude` does not (berth's own .berth/ never, nor the paths `leave_out` names,
    relative to app_dir), plus `generated` under .berth-build/.

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
            if rel in leave_out or _matches(rel, exclude) or not _matches(rel, include):
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


def cache_mounts() -> bool:
    """Whether the Dockerfiles berth writes use RUN --mount=type=cache: where this machine
    builds with BuildKit (providers.buildkit); the legacy builder refuses the flag."""
    from providers.buildkit import find_builder

    return find_builder().buildkit


# Where BuildKit's cache mounts keep pip's, uv's and apt's downloads between builds: out
# of the image's layers, shared by every build on the engine.
PIP_CACHE = "/var/cache/berth/pip"
UV_CACHE = "/var/cache/berth/uv"
APT_MOUNTS = ("--mount=type=cache,target=/var/cache/apt,sharing=locked "
              "--mount=type=cache,target=/var/lib/apt/lists,sharing=locked")
# Debian's images delete downloaded packages after each install (docker-clean); with the
# cache mounted that would empty the cache, so apt is told to keep them (Docker's own
# documentation of cache mounts does the same).
APT_KEEP = ("rm -f /etc/apt/apt.conf.d/docker-clean && echo 'Binary::apt::APT::Keep-Downloaded-Packages "
            "\"true\";' > /etc/apt/apt.conf.d/keep-cache")


def apt_install(packages: Sequence[str], *, cached: bool = False) -> str:
    if cached:
        return (f"RUN {APT_MOUNTS} {APT_KEEP} && apt-get update && apt-get install -y --no-install-recommends "
                + " ".join(packages))
    return ("RUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(packages) + " && rm -rf /var/lib/apt/lists/*")


def pip_install(requirements: str, *, python: str = "python3", uv: bool = False, cached: bool = False) -> list[str]:
    """RUN lines installing a requirements file into the image's Python (no venv:
    Debian's Python marks itself externally managed, which the environment overrides).
    cached: downloads kept in a BuildKit cache mount, so a rebuild after one requirement
    changed fetches only that one."""
    if uv:
        if cached:
            return [
                f"RUN --mount=type=cache,target={PIP_CACHE} PIP_CACHE_DIR={PIP_CACHE} {python} -m pip install uv",
                # The cache is another file system: uv copies instead of linking.
                f"RUN --mount=type=cache,target={UV_CACHE} UV_CACHE_DIR={UV_CACHE} UV_LINK_MODE=copy UV_NATIVE_TLS=1 "
                f"{python} -m uv pip install --system --break-system-packages --python {python} -r {requirements}",
            ]
        return [
            f"RUN {python} -m pip install --no-cache-dir uv",
            # uv reads the system's CA store only when asked; images behind a TLS-inspecting
            # proxy need it, and it is where ca-certificates puts public roots too.
            f"RUN UV_NATIVE_TLS=1 {python} -m uv pip install --system --break-system-packages "
            f"--python {python} --no-cache -r {requirements}",
        ]
    if cached:
        return [f"RUN --mount=type=cache,target={PIP_CACHE} PIP_CACHE_DIR={PIP_CACHE} {python} -m pip install "
                f"-r {requirements}"]
    return [f"RUN {python} -m pip install --no-cache-dir -r {requirements}"]


PYTHON_ENV = "/opt/berth/python"  # the environment of a python_version the base lacks
PYTHON_HOME = "/opt/berth/pythons"  # where uv keeps the managed Python it installs


def python_install(version: str) -> str:
    """A RUN line that leaves the image's python3 at `version` (major.minor): nothing when
    the base's python3 is that; else Debian's (or Ubuntu's) python{version} package where
    the base's release has one, else uv's managed Python (downloaded from its vendor's
    releases on GitHub); either in a virtual environment at PYTHON_ENV. Where neither can
    be had the build stops, naming both versions and what to change."""
    stop = (f'echo "python_version {version} was asked for; the base image has Python $have, its release '
            f'packages no python{version}, and uv could not fetch its managed Python {version}: set '
            f'python_version = \\"$have\\" or docker_base_image_url to an image with Python {version} '
            f'(python:{version}-slim)" >&2; exit 1')
    uv = f"UV_NATIVE_TLS=1 UV_PYTHON_INSTALL_DIR={PYTHON_HOME}"
    return (
        f"RUN have=$(python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'); "
        f'if [ "$have" != "{version}" ]; then '
        f"if apt-get update >/dev/null 2>&1 && apt-cache show python{version}-venv >/dev/null 2>&1; then "
        f"apt-get install -y --no-install-recommends python{version} python{version}-venv "
        f"&& python{version} -m venv {PYTHON_ENV} || exit 1; "
        f"else {{ python3 -m pip install --no-cache-dir uv && {uv} python3 -m uv python install {version} "
        f"&& {uv} python3 -m uv venv --seed --python {version} {PYTHON_ENV}; }} || {{ {stop}; }}; fi; "
        "rm -rf /var/lib/apt/lists/*; fi"
    )


# -- the Dockerfiles berth writes for the platforms ------------------------------------


# The Dockerfiles hold only what goes into the image, so that an edit of how the container
# runs (port, entrypoint or start command, replicas, limits, probes) never changes the
# content hash and rebuilds: berth gives the container its command and ports when it
# creates it, so no CMD or EXPOSE here, and the platform file itself is not staged.


def cerebrium_dockerfile(build: dict[str, Any], generated: dict[str, str], origin: str,
                         cached: bool | None = None) -> str:
    """The Dockerfile of a Cerebrium python or cortex runtime: the base image, a check that its
    Python is python_version, apt and pip dependencies, berth's cortex server when
    `generated` holds it, the app's files (the entrypoint is the container's command). cached (default: cache_mounts()): BuildKit cache mounts for apt and pip."""
    cached = cache_mounts() if cached is None else cached
    python = build["python"]
    check = (f"import sys; v = '%d.%d' % sys.version_info[:2]; "
             f"sys.exit(0 if v == '{python}' else 'python_version {python} was asked for; "
             f"the image has Python ' + v)")
    lines = [
        f"# Generated by berth from {origin}. Edit the cerebrium.toml, not this file.",
        f"FROM {build['base']}",
        "ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1 PYTHONUNBUFFERED=1",
        *(f"RUN {command_line}" for command_line in build["pre_build"]),
        # A base without Python (debian:bookworm-slim as published) gets Debian's.
        "RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then "
        "apt-get update && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates "
        "&& rm -rf /var/lib/apt/lists/*; fi",
        python_install(python),
        # The environment python_install makes, when it makes one, is the image's python3 and pip.
        f"ENV PATH={PYTHON_ENV}/bin:$PATH",
        f'RUN python3 -c "{check}"',
    ]
    if "apt.txt" in generated:
        lines.append(f"COPY {GENERATED_DIR}/apt.txt /tmp/berth-apt.txt")
        if cached:
            lines.append(f"RUN {APT_MOUNTS} {APT_KEEP} && apt-get update && xargs -a /tmp/berth-apt.txt apt-get install "
                         "-y --no-install-recommends")
        else:
            lines.append("RUN apt-get update && xargs -a /tmp/berth-apt.txt apt-get install -y --no-install-recommends "
                         "&& rm -rf /var/lib/apt/lists/*")
    server = generated.get(CORTEX_SERVER) is not None
    if server:
        # berth's server for the default (cortex) runtime needs FastAPI and uvicorn; installed
        # before the app's own packages, so that the app's pins of either win.
        lines += [f"COPY {GENERATED_DIR}/{CORTEX_REQUIREMENTS} /tmp/berth-cortex-requirements.txt",
                  *pip_install("/tmp/berth-cortex-requirements.txt", uv=build["uv"], cached=cached)]
    if "requirements.txt" in generated:
        lines += [f"COPY {GENERATED_DIR}/requirements.txt /tmp/berth-requirements.txt",
                  *pip_install("/tmp/berth-requirements.txt", uv=build["uv"], cached=cached)]
    if server:
        lines.append(f"COPY {GENERATED_DIR}/{CORTEX_SERVER} {CORTEX_INSTALLED_AT}")
    lines += ["WORKDIR /app", "COPY . /app", *(f"RUN {command_line}" for command_line in build["shell"]), ""]
    return "\n".join(lines)


def truss_dockerfile(image: str, python: str, layer: dict[str, Any], origin: str, cached: bool | None = None) -> str:
    """The Dockerfile of a docker_server Truss: a thin layer on base_image.image (apt and pip
    packages, the data directory, build_commands), its ENTRYPOINT cleared (the start
    command under `sh -c` is the container's command). cached (default: cache_mounts()):
    BuildKit cache mounts for apt and pip."""
    cached = cache_mounts() if cached is None else cached
    lines = [
        f"# Generated by berth from {origin}. Edit the config.yaml, not this file.",
        f"FROM {image}",
        "ENV DEBIAN_FRONTEND=noninteractive PIP_BREAK_SYSTEM_PACKAGES=1",
    ]
    if layer["apt"]:
        lines.append(apt_install(layer["apt"], cached=cached))
    if "requirements.txt" in layer["generated"]:
        lines += [f"COPY {GENERATED_DIR}/requirements.txt /tmp/berth-requirements.txt",
                  *pip_install("/tmp/berth-requirements.txt", python=python, cached=cached)]
    if layer["data"]:
        lines.append(f"COPY {layer['data']} /app/data")
    lines += [f"RUN {command}" for command in layer["commands"]]
    # Truss runs the start command under `sh -c` in place of the image's entrypoint.
    lines += ["ENTRYPOINT []", ""]
    return "\n".join(lines)
