"""Secret files on an SSH host, over the host's one SFTP session: the layout, modes and
atomic replacement of providers.secret_files (ROOT/STACK/APP/SECRET, 0600 in 0700
directories, a temporary file renamed over the old one), on the server's disk.

ROOT is `secrets_dir` of [hosts.NAME] when set; otherwise /var/lib/berth/secrets when
berth logs in as root, and the login user's ~/.local/state/berth/secrets for anyone
else, made absolute with the server's own idea of that home (SFTP REALPATH of "."),
since Docker bind-mounts only absolute sources. Listing (every plan) is pipelined: a
few round trips on one channel, however many apps have secrets.
"""

from __future__ import annotations

import errno
import posixpath
import secrets as _random
import stat
from contextlib import AbstractContextManager
from typing import Any, Callable, TypeVar

from providers.secret_files import checked_parts
from providers.types import ProviderError, SecretParts

SERVER_ROOT = "/var/lib/berth/secrets"
USER_ROOT = ".local/state/berth/secrets"  # under the login's home

T = TypeVar("T")


def server_root(user: str, secrets_dir: str | None, home: str | None = None) -> str | None:
    """ROOT on a server for a login as `user`: secrets_dir when set, SERVER_ROOT for
    root, else under `home` (the login's absolute home); None while that home is needed
    and not known."""
    if secrets_dir:
        return secrets_dir
    if user == "root":
        return SERVER_ROOT
    if home is None:
        return None
    return posixpath.join(home, USER_ROOT)


class SftpSecretFiles:
    """SecretFiles (providers.base) on an SSH host. `session` gives the host's SFTP
    client for the length of a `with` (providers.ssh.host.SshConnection.sftp), held by
    one thread at a time. A dropped connection surfaces as ConnectionError or paramiko's
    SSHException, for the caller's retry (SshHost._call); every other failure is a
    ProviderError naming the host and the path, never the value."""

    def __init__(self, host: str, session: Callable[[], AbstractContextManager[Any]], user: str,
                 secrets_dir: str | None = None) -> None:
        self.host = host
        self._session = session
        self._root = server_root(user, secrets_dir)

    # Where ---------------------------------------------------------------------------

    def path(self, parts: SecretParts) -> str:
        """Pure once ROOT is known; a non-root login's home is asked for once (one round
        trip on the SFTP session) the first time a path is needed."""
        checked_parts(self.host, parts)
        if self._root is None:
            with self._session() as sftp:
                self._root_of(sftp)
        assert self._root is not None
        return posixpath.join(self._root, *parts)

    def _root_of(self, sftp: Any) -> str:
        if self._root is None:
            try:
                home = sftp.normalize(".")
            except OSError as err:
                raise self._error(sftp, "cannot find the login's home directory (for secret files)", err) from None
            self._root = posixpath.join(home, USER_ROOT)
        return self._root

    # Write ---------------------------------------------------------------------------

    def write(self, parts: SecretParts, value: bytes) -> str:
        checked_parts(self.host, parts)
        with self._session() as sftp:
            root = self._root_of(sftp)
            target = posixpath.join(root, *parts)
            app_dir = posixpath.dirname(target)
            doing = _Doing()
            try:
                self._make_dirs(sftp, root, posixpath.dirname(app_dir), app_dir, doing)
                temporary = posixpath.join(app_dir, f".{parts[2]}.tmp-{_random.token_hex(4)}")
                out = doing("create", temporary, sftp.open, temporary, "wx")  # O_EXCL: never an existing file
                try:
                    doing("set the mode of", temporary, out.chmod, 0o600)  # before a byte is written
                    doing("write", temporary, _write_synced, sftp, out, value)
                    doing("rename to", target, sftp.posix_rename, temporary, target)
                except BaseException:
                    _quietly(out.close)
                    _quietly(lambda: sftp.remove(temporary))
                    raise
            except OSError as err:  # strerror and the path only: never the value
                raise self._error(sftp, f"cannot write secret file {target}", err, doing) from None
        return target

    def _make_dirs(self, sftp: Any, root: str, stack_dir: str, app_dir: str, doing: _Doing) -> None:
        """ROOT/STACK and ROOT/STACK/APP, mode 0700 whatever the umask or an earlier owner
        left; ROOT itself only when missing (a given secrets_dir may be shared)."""
        for directory in (stack_dir, app_dir):
            try:  # one round trip when it exists, as it mostly does
                doing("set the mode of", directory, sftp.chmod, directory, 0o700)
                continue
            except OSError as err:
                if err.errno != errno.ENOENT:
                    raise
            if directory == stack_dir:
                self._make_root(sftp, root, doing)
            doing("create directory", directory, _mkdir, sftp, directory, 0o700)
            doing("set the mode of", directory, sftp.chmod, directory, 0o700)

    def _make_root(self, sftp: Any, root: str, doing: _Doing) -> None:
        missing = []
        path = root
        while path not in ("/", ""):
            try:
                doing("look up", path, sftp.stat, path)
                break
            except OSError as err:
                if err.errno != errno.ENOENT:
                    raise
            missing.append(path)
            path = posixpath.dirname(path)
        for path in reversed(missing):  # parents as the server's umask makes them; ROOT 0700
            doing("create directory", path, _mkdir, sftp, path, 0o700 if path == root else 0o755)
        if missing:
            doing("set the mode of", root, sftp.chmod, root, 0o700)

    # Remove --------------------------------------------------------------------------

    def remove(self, parts: SecretParts) -> None:
        """The file, temporary files a crash left beside it, then the app's and the
        stack's directories if that emptied them; absent is not an error."""
        checked_parts(self.host, parts)
        with self._session() as sftp:
            root = self._root_of(sftp)
            target = posixpath.join(root, *parts)
            app_dir = posixpath.dirname(target)
            doing = _Doing()
            try:
                entries = doing("list", app_dir, _read_dirs, sftp, [app_dir])[app_dir]
                names = {e.filename for e in entries or ()}
                gone = {n for n in names if n == parts[2] or n.startswith(f".{parts[2]}.tmp-")}
                for name in sorted(gone):
                    path = posixpath.join(app_dir, name)
                    doing("remove", path, _unlink, sftp, path)
                if names - gone:
                    return  # the app's other secrets stay, and so does its directory
                for directory in (app_dir, posixpath.dirname(app_dir)):
                    if not doing("remove directory", directory, _rmdir_if_empty, sftp, directory):
                        return
            except OSError as err:
                raise self._error(sftp, f"cannot remove secret file {target}", err, doing) from None

    # List ----------------------------------------------------------------------------

    def list(self, stack: str) -> tuple[tuple[str, str], ...]:
        """Four round trips on the session whatever the number of apps: the stack's
        directory and then all of its app directories are each opened, read and closed
        in pipelined requests. Before ROOT is known, a non-root login's ROOT is named
        relative to its home, as SFTP resolves relative paths there."""
        with self._session() as sftp:
            base = posixpath.join(self._root if self._root is not None else USER_ROOT, stack)
            try:
                apps = _read_dirs(sftp, [base])[base] or []
                dirs = [posixpath.join(base, e.filename) for e in apps
                        if stat.S_ISDIR(e.st_mode or 0) and not e.filename.startswith(".")]
                listed = _read_dirs(sftp, dirs) if dirs else {}
            except OSError as err:
                raise self._error(sftp, f"cannot list secret files in {base}", err) from None
        return tuple(sorted((posixpath.basename(d), e.filename) for d, entries in listed.items()
                            for e in entries or () if stat.S_ISREG(e.st_mode or 0) and not e.filename.startswith(".")))

    # Errors --------------------------------------------------------------------------

    def _error(self, sftp: Any, what: str, err: OSError, doing: _Doing | None = None) -> Exception:
        """A ProviderError naming host and path with the server's reason, or, when the
        session itself is gone, a ConnectionError for the caller's retry."""
        if sftp.sock.closed or not sftp.sock.get_transport().is_active():
            return ConnectionError(f"host {self.host}: the SFTP session was lost")
        if isinstance(err, TimeoutError):  # a reply may still come, mid-packet: start afresh next time
            _quietly(sftp.close)
            return ProviderError(f"host {self.host}: {what}: no answer from the SFTP server")
        reason = err.strerror or (str(err.args[0]) if err.args else type(err).__name__)
        where = f" ({doing.verb} {doing.path})" if doing and doing.path and doing.path not in what else ""
        return ProviderError(f"host {self.host}: {what}: {reason}{where}")


class _Doing:
    """What an operation is doing to which path, so that its error can say so."""

    verb = ""
    path = ""

    def __call__(self, verb: str, path: str, fn: Callable[..., T], *args: Any) -> T:
        self.verb, self.path = verb, path
        return fn(*args)


# SFTP pieces ---------------------------------------------------------------------------


def _mkdir(sftp: Any, path: str, mode: int) -> None:
    """mkdir, where one made meanwhile (another berth, another stack) is fine. SFTP
    reports "exists" as a bare failure: the stat says which it was."""
    try:
        sftp.mkdir(path, mode)
    except OSError:
        try:
            if stat.S_ISDIR(sftp.stat(path).st_mode or 0):
                return
        except OSError:
            pass
        raise


def _unlink(sftp: Any, path: str) -> None:
    try:
        sftp.remove(path)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise


def _rmdir_if_empty(sftp: Any, path: str) -> bool:
    """True when the directory is gone (removed, or was absent); False when it still
    holds something. SFTP reports "not empty" as a bare failure: a listing tells."""
    try:
        sftp.rmdir(path)
        return True
    except OSError as err:
        if err.errno == errno.ENOENT:
            return True
        listed = _read_dirs(sftp, [path])[path]
        if listed is None:
            return True
        if listed:
            return False
        raise


def _write_synced(sftp: Any, out: Any, value: bytes) -> None:
    """Write and close, each write awaited (paramiko's pipelined mode would drop write
    errors); fsync@openssh.com before the close, so the rename publishes data that is on
    disk (a container Docker restarts after a reboot reads the file). A server without
    that extension refuses it: its file is as durable as its own close makes it."""
    from paramiko.sftp import CMD_EXTENDED

    out.write(value)
    out.flush()
    try:
        sftp._request(CMD_EXTENDED, "fsync@openssh.com", out.handle)
    except OSError:
        pass
    out.close()


class _Replies:
    """Collects the replies to pipelined requests: paramiko's SFTPClient hands a reply
    to the object a request was registered with (as it does for an SFTPFile's)."""

    def __init__(self) -> None:
        self.got: dict[int, tuple[int, Any]] = {}

    def _async_response(self, t: int, msg: Any, num: int) -> None:
        self.got[num] = (t, msg)


def _pipeline(sftp: Any, requests: list[tuple[int, tuple[Any, ...]]]) -> list[tuple[int, Any]]:
    """Send every request, then read every reply: one round trip for all. Only requests
    whose order does not matter (the server may answer in any order), or that act on one
    handle (which it must take in order), go in one batch."""
    sink = _Replies()
    numbers = [sftp._async_request(sink, kind, *args) for kind, args in requests]
    while any(n not in sink.got for n in numbers):
        sftp._read_response()  # one reply, dispatched to its request's object
    return [sink.got[n] for n in numbers]


def _status(msg: Any) -> tuple[int, str]:
    return msg.get_int(), msg.get_text()


def _raise_status(code: int, text: str) -> None:
    from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_PERMISSION_DENIED

    number = {SFTP_NO_SUCH_FILE: errno.ENOENT, SFTP_PERMISSION_DENIED: errno.EACCES}.get(code)
    raise OSError(number, text) if number else OSError(text)


def _read_dirs(sftp: Any, paths: list[str]) -> dict[str, list[Any] | None]:
    """The entries (SFTPAttributes, without . and ..) of each directory; None for one
    that does not exist. Two round trips for any number of directories: all OPENDIRs;
    then per handle two READDIRs and its CLOSE. OpenSSH answers up to 100 entries per
    READDIR, so the second says EOF; a directory whose listing had not ended by then
    (a bigger one, another server) is read again the plain way."""
    from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR, CMD_STATUS, SFTP_EOF, SFTP_NO_SUCH_FILE
    from paramiko.sftp_attr import SFTPAttributes

    found: dict[str, list[Any] | None] = {}
    handles: dict[str, bytes] = {}
    for path, (kind, msg) in zip(paths, _pipeline(sftp, [(CMD_OPENDIR, (p,)) for p in paths])):
        if kind == CMD_HANDLE:
            handles[path] = msg.get_binary()
            continue
        code, text = _status(msg) if kind == CMD_STATUS else (-1, "unexpected reply")
        if code != SFTP_NO_SUCH_FILE:
            _raise_status(code, text)
        found[path] = None
    requests = [(kind, (handle,)) for handle in handles.values() for kind in (CMD_READDIR, CMD_READDIR, CMD_CLOSE)]
    replies = iter(_pipeline(sftp, requests)) if requests else iter(())
    for path in handles:
        entries: list[Any] = []
        ended = False
        for kind, msg in (next(replies), next(replies)):
            if kind == CMD_NAME:
                for _ in range(msg.get_int()):
                    name, long_name = msg.get_text(), msg.get_text()
                    entry = SFTPAttributes._from_msg(msg, name, long_name)
                    if name not in (".", ".."):
                        entries.append(entry)
            elif kind == CMD_STATUS:
                code, text = _status(msg)
                if code != SFTP_EOF:
                    _raise_status(code, text)
                ended = True
                break
        next(replies)  # CLOSE's status: the handle is gone either way
        found[path] = entries if ended else sftp.listdir_attr(path)
    return found


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - cleaning up after the error being reported
        pass
