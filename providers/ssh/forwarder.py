"""The local end of the Docker API over SSH: a unix socket whose every connection is
bridged onto one new channel of the host's SSH connection, and docker-py's pool on it.

A local forwarder listens on a unix socket in a private temporary directory; every
connection docker-py (or EngineHTTP) makes to it is bridged onto ONE new
`direct-streamlocal@openssh.com` channel, straight to the host's Docker socket. No
remote process is started per connection (docker-py's own ssh:// transport runs a
`docker system dial-stdio` per pooled connection, and those pile up), and HTTP
keep-alive reuses channels.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from typing import Any, Callable

from providers.ssh.connection import quietly

CHUNK = 1 << 20


class Forwarder:
    """A unix socket in a private directory; each connection to it is bridged onto one new
    channel from `open_channel`. Lives as long as the provider."""

    def __init__(self, open_channel: Callable[[], Any]) -> None:
        self._open_channel = open_channel
        self.dir = tempfile.mkdtemp(prefix="berth-ssh-")  # mode 0700: only this user
        self.path = os.path.join(self.dir, "docker.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(64)
        self.local_connections = 0
        self.last_error: Exception | None = None  # why the latest channel could not be opened
        threading.Thread(target=self._serve, name="berth-ssh-forwarder", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.local_connections += 1
            threading.Thread(target=self._bridge, args=(conn,), daemon=True).start()

    def _bridge(self, conn: socket.socket) -> None:
        try:
            channel = self._open_channel()
        except Exception as err:  # noqa: BLE001 - the client sees a closed connection; the provider asks why
            self.last_error = err
            conn.close()
            return
        self.last_error = None

        def upstream() -> None:
            try:
                while data := conn.recv(CHUNK):
                    channel.sendall(data)
                channel.shutdown_write()
            except Exception:  # noqa: BLE001 - either side gone: the other loop ends too
                quietly(channel.close)

        pump = threading.Thread(target=upstream, daemon=True)
        pump.start()
        try:
            while data := channel.recv(CHUNK):
                conn.sendall(data)
        except Exception:  # noqa: BLE001 - a dropped connection: the client sees it closed
            pass
        finally:
            quietly(channel.close)  # the connection may be gone already (berth closing, or a drop)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)



def share_one_pool(client: Any, socket_path: str) -> None:
    """docker-py keys its unix-socket connection pools by request URL, so every endpoint
    (/containers/json, /images/json, ...) opens a connection of its own: here, a channel
    each. One pool for all URLs lets keep-alive reuse channels across endpoints."""
    from docker.transport import UnixHTTPAdapter

    class OnePool(UnixHTTPAdapter):
        def get_connection(self, url: Any, proxies: Any = None) -> Any:
            return super().get_connection("http+docker://localhost", proxies)

    adapter = OnePool(f"http+unix://{socket_path}", timeout=900, max_pool_size=16)
    client.mount("http+docker://", adapter)
    client._custom_adapter = adapter

