"""Secret values: read from their sources into memory, and digested with the stack's key.

What must hold, and what callers may rely on: a value lives only in a SecretValues
object (and, for the moment it is handed over, in a provider's write_secret or a
container's secret env). Nothing this module returns that could be stored or printed —
digests, diagnostics, errors, reprs — contains a value, a piece of one, or a failing
command's output (which may hold one). State and plans keep only `digest()`: an
HMAC-SHA256 keyed by a random per-stack key kept beside the state store, not in it, so
equal values in two stacks give different digests and a copy of the state alone gives
nothing to guess against.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _random
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from planner.desired import SecretSource, Stack
from planner.diagnostics import Diagnostic, DiagnosticsError
from providers.types import ProviderError

DIGEST_PREFIX = "hmac-sha256:"
SENSITIVE = "(sensitive value)"
KEY_FILE = "secrets.key"
KEY_BYTES = 32
COMMAND_TIMEOUT = 120.0  # seconds a password manager may take (it may wait for a PIN)
REDACT_MIN = 4  # shorter values are not searched for in messages: they would blank out text
_ENV_KEY = re.compile(rb"[A-Za-z0-9_.-]+")


class SecretUnavailable(ProviderError):
    """A secret's source failed at apply time (at plan time it is a Diagnostic)."""


class SecretKey:
    """The stack's HMAC key: KEY_BYTES random bytes in a 0600 file beside the state
    store. Read when present; otherwise made in memory on first use, so `plan` leaves
    no trace, and written by save(), which apply calls before it records any digest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: bytes | None = None
        self._made = False
        self._lock = threading.Lock()

    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                try:
                    key = self.path.read_bytes()
                except FileNotFoundError:
                    self._key, self._made = _random.token_bytes(KEY_BYTES), True
                except OSError as err:
                    raise DiagnosticsError([Diagnostic(f"cannot read the secrets key {self.path}: {err.strerror}")]) from None
                else:
                    if len(key) != KEY_BYTES:
                        raise DiagnosticsError([Diagnostic(
                            f"the secrets key {self.path} is damaged ({len(key)} bytes, not {KEY_BYTES}); "
                            "remove it and apply again: every secret is then rewritten and its containers restarted")])
                    self._key = key
            return self._key

    def save(self) -> None:
        key = self.key()
        with self._lock:
            if not self._made:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key)
            self._made = False


def digest(key: bytes, name: str, value: bytes) -> str:
    """The keyed digest state keeps for a value; the name is mixed in so that two
    secrets of one stack with equal values do not show it."""
    mac = hmac.new(key, name.encode() + b"\0" + value, hashlib.sha256)
    return DIGEST_PREFIX + mac.hexdigest()


class SecretValues:
    """The values of a stack's secrets, each read once per run and kept in memory.
    Thread-safe: apply's workers ask for values concurrently."""

    def __init__(self, stack: Stack, key: SecretKey) -> None:
        self.stack = stack
        self.key = key
        self._values: dict[str, bytes] = {}
        self._env_files: dict[str, dict[str, bytes]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SecretValues of {self.stack.name}: {len(self._values)} read>"

    def resolve(self, names: Iterable[str]) -> None:
        """Read every named secret; all failures at once, as plan errors."""
        problems = []
        for name in dict.fromkeys(names):
            try:
                self._read(name)
            except _SourceError as err:
                problems.append(err.diagnostic)
        if problems:
            raise DiagnosticsError(problems)

    def value(self, name: str) -> bytes:
        """The value, read now if not yet; a failing source raises SecretUnavailable."""
        try:
            return self._read(name)
        except _SourceError as err:
            raise SecretUnavailable(err.diagnostic.summary) from None

    def digest(self, name: str) -> str:
        return digest(self.key.key(), name, self.value(name))

    def digests(self, names: Iterable[str]) -> dict[str, str]:
        self.resolve(names)
        return {name: self.digest(name) for name in dict.fromkeys(names)}

    def readable_digests(self, names: Iterable[str]) -> tuple[dict[str, str], dict[str, Diagnostic]]:
        """(digests of the secrets whose source can be read now, why each other cannot)."""
        found: dict[str, str] = {}
        unread: dict[str, Diagnostic] = {}
        for name in dict.fromkeys(names):
            try:
                self._read(name)
            except _SourceError as err:
                unread[name] = err.diagnostic
                continue
            found[name] = self.digest(name)
        return found, unread

    def redact(self, text: str) -> str:
        """text with every value read so far (and each long line of a multi-line one)
        replaced by (sensitive value): for messages that quote what a host said, such
        as a container's log."""
        if not text:
            return text
        with self._lock:
            values = list(self._values.values())
        needles = set()
        for value in values:
            decoded = value.decode("utf-8", "replace")
            needles.add(decoded)
            needles.update(line.strip() for line in decoded.splitlines() if len(line.strip()) >= 8)
        for needle in sorted((n for n in needles if len(n) >= REDACT_MIN), key=len, reverse=True):
            text = text.replace(needle, SENSITIVE)
        return text

    # -- reading sources ----------------------------------------------------------------

    def _read(self, name: str) -> bytes:
        with self._lock:
            if name in self._values:
                return self._values[name]
        source = self.stack.secrets.get(name)
        if source is None:
            raise _SourceError(Diagnostic(f"secret {name} has no source; define it in [secrets.{name}]",
                                          file=_shown(self.stack.file)))
        value = self._from_source(source)
        if not value:
            raise _SourceError(_problem(source, "gives an empty value"))
        with self._lock:
            return self._values.setdefault(name, value)

    def _from_source(self, source: SecretSource) -> bytes:
        if source.env is not None:
            value = os.environb.get(source.env.encode())
            if value is None:
                raise _SourceError(_problem(source, "is not set"))
            return value
        if source.file is not None:
            try:
                return _strip_newline(Path(source.file).read_bytes())
            except FileNotFoundError:
                raise _SourceError(_problem(source, "does not exist")) from None
            except OSError as err:
                raise _SourceError(_problem(source, f"cannot be read: {err.strerror}")) from None
        if source.command is not None:
            return _strip_newline(_run(source, Path(self.stack.file).parent))
        assert source.secrets_file is not None, f"secret {source.name} has no source"
        entries = self._env_file(source)
        if source.name not in entries:
            raise _SourceError(_problem(source, f"has no line {source.name}=..."))
        return entries[source.name]

    def _env_file(self, source: SecretSource) -> dict[str, bytes]:
        path = source.secrets_file
        assert path is not None
        with self._lock:
            if path in self._env_files:
                return self._env_files[path]
        try:
            text = Path(path).read_bytes()
        except FileNotFoundError:
            raise _SourceError(_problem(source, "does not exist")) from None
        except OSError as err:
            raise _SourceError(_problem(source, f"cannot be read: {err.strerror}")) from None
        entries = parse_env_file(text, lambda line: _SourceError(
            _problem(source, f"line {line} is not KEY=VALUE (its text is not shown: it may be a secret)")))
        with self._lock:
            return self._env_files.setdefault(path, entries)


def parse_env_file(text: bytes, bad_line) -> dict[str, bytes]:
    """KEY=VALUE lines: blank lines and `#` comments skipped, an `export ` prefix and
    quotes around the whole value ('...' or "...") removed; no escapes, no expansion.
    A later line for a key wins. bad_line(n) makes the exception for a malformed line."""
    entries: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"export "):
            line = line[len(b"export "):].lstrip()
        key, equals, value = line.partition(b"=")
        key = key.strip()
        if not equals or not _ENV_KEY.fullmatch(key):
            raise bad_line(number)
        value = value.strip()
        if len(value) >= 2 and value[:1] in (b'"', b"'") and value[-1:] == value[:1]:
            value = value[1:-1]
        entries[key.decode()] = value
    return entries


class _SourceError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.summary)
        self.diagnostic = diagnostic


def describe(source: SecretSource) -> str:
    """The source in words: `environment variable HF_TOKEN`, `command `pass show hf``."""
    kind, _, rest = source.source.partition(" ")
    return {
        "env": f"environment variable {rest}",
        "file": f"file {rest}",
        "command": f"command `{rest}`",
        "secrets_file": f"secrets file {rest}",
    }.get(kind, source.source)


def _problem(source: SecretSource, what: str) -> Diagnostic:
    return Diagnostic(f"secret {source.name}: {describe(source)} {what}", file=source.defined_file,
                      key=source.defined_key, line=source.defined_line)


def _run(source: SecretSource, cwd: Path) -> bytes:
    """The command's stdout. Its stderr is never shown: a failing password manager or
    script may print the secret there (set -x, a debug line). stdin is closed, so the
    command cannot eat the 'yes' that apply reads next."""
    command = list(source.command or ())
    try:
        done = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        raise _SourceError(_problem(source, f"cannot be run: {command[0]} not found")) from None
    except PermissionError:
        raise _SourceError(_problem(source, f"cannot be run: {command[0]} is not executable")) from None
    except OSError as err:
        raise _SourceError(_problem(source, f"cannot be run: {err.strerror}")) from None
    except subprocess.TimeoutExpired:
        raise _SourceError(_problem(source, f"did not finish within {COMMAND_TIMEOUT:.0f} s")) from None
    if done.returncode != 0:
        how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited with status {done.returncode}"
        raise _SourceError(_problem(
            source, f"{how}; its output is not shown, as it may hold the secret: run the command yourself to see why"))
    return done.stdout


def _strip_newline(value: bytes) -> bytes:
    """One trailing newline (as `echo` and editors leave), nothing else."""
    if value.endswith(b"\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith(b"\n") else value


def _shown(file: str) -> str:
    try:
        return str(Path(file).relative_to(Path.cwd()))
    except ValueError:
        return file
