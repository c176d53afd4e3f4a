"""Secret files on the machine berth runs on: ROOT/STACK/APP/SECRET, mode 0600, in
directories of mode 0700.

ROOT is /var/lib/berth/secrets when berth runs as root: outside the project, so a build
context, a synced or shared project directory, or a copy of `.berth/` never carries a
secret; and on disk, not in /run, so containers that Docker restarts after a reboot
still find their files. Other users get $XDG_STATE_HOME/berth/secrets
(~/.local/state/berth/secrets); BERTH_SECRETS_DIR overrides both.
"""

from __future__ import annotations

import errno
import os
import re
import secrets as _random
from pathlib import Path

from providers.types import ProviderError, SecretParts

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


def checked_parts(host: str, parts: SecretParts) -> SecretParts:
    """parts, refused unless each is a plain name: names are validated on load; this
    keeps every path inside ROOT whatever a caller passes."""
    for part in parts:
        if not _PART.match(part):
            raise ProviderError(f"host {host}: {part!r} cannot name a secret file")
    return parts


def default_root() -> Path:
    configured = os.environ.get("BERTH_SECRETS_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/berth/secrets")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "berth" / "secrets"


class LocalSecretFiles:
    """SecretFiles (providers.base) on the local file system. Thread-safe: every write
    goes to its own temporary file, renamed into place."""

    def __init__(self, root: Path, host: str = "local") -> None:
        self.root = root
        self.host = host

    def path(self, parts: SecretParts) -> str:
        return str(self.root.joinpath(*checked_parts(self.host, parts)))

    def write(self, parts: SecretParts, value: bytes) -> str:
        target = Path(self.path(parts))
        try:
            if not self.root.is_dir():  # a root berth makes is its own: 0700 whatever the umask
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(self.root, 0o700)
            # A root that already existed is left as it is (BERTH_SECRETS_DIR may name a
            # shared directory, even /tmp): the per-stack directory, always 0700, guards.
            for directory in (target.parent.parent, target.parent):
                directory.mkdir(mode=0o700, exist_ok=True)
                os.chmod(directory, 0o700)  # whatever the umask or an earlier owner left
            temporary = target.with_name(f".{target.name}.tmp-{_random.token_hex(4)}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(value)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            _fsync_dir(target.parent)
        except OSError as err:  # strerror and the path only: never the value
            raise ProviderError(f"host {self.host}: cannot write secret file {target}: {err.strerror or err}") from None
        return str(target)

    def remove(self, parts: SecretParts) -> None:
        target = Path(self.path(parts))
        try:
            target.unlink(missing_ok=True)
            if target.parent.is_dir():  # temporary files a crash left behind
                for leftover in target.parent.glob(f".{target.name}.tmp-*"):
                    leftover.unlink(missing_ok=True)
            for directory in (target.parent, target.parent.parent):
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
        except OSError as err:
            # ENOENT: an app's secrets are removed in parallel, and a sibling's removal
            # may take the directory away while this one lists or empties it.
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise ProviderError(f"host {self.host}: cannot remove secret file {target}: {err.strerror or err}") from None

    def list(self, stack: str) -> tuple[tuple[str, str], ...]:
        base = self.root / stack
        try:
            apps = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            return tuple((app.name, f.name) for app in apps for f in sorted(app.iterdir())
                         if f.is_file() and not f.name.startswith("."))
        except OSError as err:
            raise ProviderError(f"host {self.host}: cannot list secret files in {base}: {err.strerror or err}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
