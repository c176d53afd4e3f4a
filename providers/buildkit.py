"""Builds through the Docker CLI's BuildKit client against one engine: which client this
machine has (buildx, the CLI's built-in BuildKit, or none), the `--progress=plain`
parser, and the build run itself (its whole log kept in a file).

The CLI is pointed at the target engine with DOCKER_HOST (the engine's socket; for an SSH
host the local end of the socket forwarded over its one connection), so the same code
builds on either. Secrets reach the build as files of mode 0600 in a private temporary
directory, named in argv by path only, and removed when the build ends.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from providers.types import BuildOptions, Progress, ProviderError

TAIL = 30  # output lines of the failing step a failure shows

LEGACY_WARNING = ("no BuildKit client found: building with Docker's legacy builder, which refuses "
                  "RUN --mount, --secret and COPY --chmod; install Debian's docker.io (its /usr/bin/docker "
                  "has BuildKit built in) or the docker-buildx plugin")


@dataclass(frozen=True)
class Builder:
    """How this machine builds: `buildx` (docker buildx build), `buildkit` (DOCKER_BUILDKIT=1
    docker build, a CLI older than 23.0), or `legacy` (docker-py's API: no CLI with BuildKit)."""

    kind: Literal["buildx", "buildkit", "legacy"]
    cli: str | None = None  # absolute path of the docker CLI
    version: str = ""  # its version

    @property
    def buildkit(self) -> bool:
        return self.kind != "legacy"

    def describe(self) -> str:
        match self.kind:
            case "buildx":
                return f"BuildKit (docker buildx, {self.cli} {self.version})"
            case "buildkit":
                return f"BuildKit (built into {self.cli} {self.version})"
            case _:
                return "legacy (Docker's API builder)"

    def argv(self) -> list[str]:
        assert self.cli is not None
        return [self.cli, "buildx", "build"] if self.kind == "buildx" else [self.cli, "build"]


def _cli_version(cli: str) -> str:
    try:
        out = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    match = re.search(r"version\s+([0-9][^\s,]*)", out)
    return match.group(1) if match else ""


def _has_buildx(cli: str) -> bool:
    try:
        return subprocess.run([cli, "buildx", "version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _major(version: str) -> int:
    match = re.match(r"(\d+)\.(\d+)", version)
    return int(match.group(1)) * 100 + int(match.group(2)) if match else 0


def clis_on_path(path: str | None = None) -> list[str]:
    """Every `docker` executable on PATH, first one first, each once."""
    found: list[str] = []
    for directory in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        candidate = os.path.join(directory or ".", "docker")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            real = os.path.realpath(candidate)
            if real not in {os.path.realpath(c) for c in found}:
                found.append(candidate)
    return found


def choose(clis: list[tuple[str, str, bool]], forced: str = "") -> Builder:
    """The builder among (cli, version, has buildx), pure: buildx where a CLI has it, else
    a CLI from 18.09 up to (not including) 23.0, whose BuildKit is built in, else legacy.
    forced (BERTH_BUILDER) names one kind: legacy always works; another kind is taken
    only where a CLI offers it."""
    buildx = [Builder("buildx", cli, version) for cli, version, has in clis if has]
    builtin = [Builder("buildkit", cli, version) for cli, version, _ in clis
               if 1809 <= _major(version) < 2300]
    if forced == "legacy":
        return Builder("legacy")
    if forced == "buildkit" and builtin:
        return builtin[0]
    return (buildx or builtin or [Builder("legacy")])[0]


@functools.cache
def find_builder() -> Builder:
    """This machine's builder, looked up once per run (BERTH_BUILDER=legacy|buildkit|buildx
    chooses where more than one is there)."""
    forced = os.environ.get("BERTH_BUILDER", "").strip().lower()
    if forced == "legacy":
        return Builder("legacy")
    clis = [(cli, _cli_version(cli), _has_buildx(cli)) for cli in clis_on_path()]
    return choose(clis, forced)


# The plain progress parser ----------------------------------------------------------

_LINE = re.compile(r"^#(\d+) (.*)$")
_OUTPUT = re.compile(r"^\d+\.\d+ (.*)$")
_EXIT = re.compile(r"exit code: (\d+)")


@dataclass
class BuildStep:
    number: int
    name: str  # "[2/4] RUN pip install ..." as BuildKit names it
    output: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    done: bool = False
    cached: bool = False
    error: str | None = None


@dataclass
class PlainProgress:
    """Reads `--progress=plain` line by line: steps (`#N [stage i/n] INSTRUCTION`), each
    step's output (`#N 12.345 text`: the text is kept verbatim), DONE, CACHED and ERROR.
    feed() returns what the live view should show for the line: ("step", name),
    ("output", text), or None."""

    steps: dict[int, BuildStep] = field(default_factory=dict)
    trailer: list[str] = field(default_factory=list)  # lines outside any step (the final error)
    failed: BuildStep | None = None

    def feed(self, line: str) -> tuple[str, str] | None:
        line = line.rstrip("\r\n")
        match = _LINE.match(line)
        if match is None:
            if line.strip() and not line.startswith(("------", " > ")):
                self.trailer.append(line)
            return None
        number, rest = int(match.group(1)), match.group(2)
        step = self.steps.get(number)
        if step is None:
            self.steps[number] = BuildStep(number, rest)
            return ("step", rest) if rest.startswith("[") and not rest.startswith("[internal]") else None
        if rest.startswith("sha256:") or rest.startswith("DONE "):
            step.done = step.done or rest.startswith("DONE ")
            return None
        if rest == "CACHED":
            step.cached = True
            return None
        if rest.startswith("ERROR"):
            step.error = rest.partition(":")[2].strip() or rest
            # The last error is the build's: an earlier one may not have stopped it (a
            # cache_from image that cannot be fetched is only a warning).
            self.failed = step
            return None
        output = _OUTPUT.match(rest)
        if output is not None and step.error is None:  # (newer clients repeat a failed step's tail)
            step.output.append(output.group(1))
            return ("output", output.group(1))
        return None  # transfers, "resolve ... done" and the like

    def failure(self) -> tuple[str, int | None, list[str]]:
        """(the failing instruction, its exit code, its last output lines), from a failed build."""
        step = self.failed
        if step is None:
            message = self.trailer[-1] if self.trailer else "the build failed"
            return message, None, []
        code = _EXIT.search(step.error or "")
        instruction = re.sub(r"^\[[^\]]*\]\s*", "", step.name)
        return instruction, int(code.group(1)) if code else None, list(step.output)


def failure_message(host: str, progress: PlainProgress, log: Path | None) -> tuple[str, str]:
    """The one-line error and the verbatim tail for a failed build."""
    instruction, code, tail = progress.failure()
    if progress.failed is None:
        head = f"image build failed on {host}: {instruction}"
    else:
        head = (f"image build failed on {host}: {instruction} "
                + (f"exited with code {code}" if code is not None else f"failed: {progress.failed.error}"))
    if log is not None:
        head += f" (whole log: {log})"
    return head, "\n".join(tail)


class BuildFailed(ProviderError):
    """A build failed; log_tail holds the failing step's last output lines, one per line."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


# The build --------------------------------------------------------------------------


def log_path(log_dir: Path | None, name: str) -> Path | None:
    """log_dir/build-NAME-TIMESTAMP.log (UTC, to the millisecond), or None without a dir."""
    if log_dir is None:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:].replace(".", "")
    return log_dir / f"build-{name}-{stamp}Z.log"


def cli_build(
    builder: Builder, docker_host: str, host: str, context: str, dockerfile: str,
    args: dict[str, str], tag: str, labels: dict[str, str], progress: Progress,
    options: BuildOptions, log_dir: Path | None,
) -> str:
    """Build with the CLI against the engine at docker_host, streaming each step and its
    output to progress, the whole log to a file; returns the image ID."""
    log = log_path(log_dir, options.name or tag.partition(":")[0])
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        progress(f"build log: {log}")
    parser = PlainProgress()
    with tempfile.TemporaryDirectory(prefix="berth-build-") as private:  # mode 0700
        iidfile = os.path.join(private, "iid")
        argv = [*builder.argv(), "--progress=plain", "--iidfile", iidfile, "-t", tag,
                "-f", _dockerfile_path(context, dockerfile)]
        for key, value in sorted(args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in sorted(labels.items()):
            argv += ["--label", f"{key}={value}"]
        if options.target:
            argv += ["--target", options.target]
        for ref in options.cache_from:
            argv += ["--cache-from", ref]
        for name, value in sorted(options.secrets.items()):
            path = os.path.join(private, f"secret-{len(argv)}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(value)
            argv += ["--secret", f"id={name},src={path}"]
        if builder.kind == "buildx":
            argv += ["--load"]
        argv.append(context)
        env = dict(os.environ, DOCKER_HOST=docker_host, DOCKER_BUILDKIT="1")
        env.pop("DOCKER_CONTEXT", None)
        code = _run(argv, env, parser, progress, log, _redactor(options.secrets))
        if code != 0:
            message, tail = failure_message(host, parser, log)
            raise BuildFailed(message, tail)
        try:
            return Path(iidfile).read_text().strip()
        except OSError:
            raise ProviderError(f"image build on {host} finished without naming its image") from None


def _redactor(secrets: dict[str, bytes]) -> Callable[[str], str]:
    """Replaces each build secret's value in a line of output (a RUN that echoed it)."""
    needles = sorted({v.decode("utf-8", "replace").strip() for v in secrets.values()} - {""}, key=len, reverse=True)

    def redact(line: str) -> str:
        for needle in needles:
            line = line.replace(needle, "(sensitive value)")
        return line

    return redact


def _run(argv: list[str], env: dict[str, str], parser: PlainProgress, progress: Progress, log: Path | None,
         redact: Callable[[str], str]) -> int:
    out = open(log, "w", encoding="utf-8") if log is not None else None
    try:
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace",
                              bufsize=1) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = redact(line)
                if out is not None:
                    out.write(line)
                    out.flush()
                shown = parser.feed(line)
                if shown is None:
                    continue
                kind, text = shown
                if kind == "step":
                    progress(text)
                else:
                    output_line(progress, text)
            return proc.wait()
    except OSError as err:
        raise ProviderError(f"cannot run {argv[0]}: {err}") from None
    finally:
        if out is not None:
            out.close()


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """text without terminal escapes (the legacy builder colours a RUN's stderr red)."""
    return _ANSI.sub("", text)


def output_line(progress: Progress, text: str) -> None:
    """A line of a step's own output: the view prints it or keeps it as a last line."""
    text = plain(text)
    try:
        progress(text, output=True)  # type: ignore[call-arg]
    except TypeError:  # a plain progress callable
        progress(text)


def _dockerfile_path(context: str, dockerfile: str) -> str:
    return dockerfile if os.path.isabs(dockerfile) else os.path.join(context, dockerfile)


def without_buildkit(options: BuildOptions, host: str) -> None:
    """The legacy builder has no build secrets: refuse them rather than build without."""
    if options.secrets:
        raise ProviderError(f"image build on {host}: build.secrets needs BuildKit; {LEGACY_WARNING.partition('; ')[2]}")


