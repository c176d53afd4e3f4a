"""A small read-only client for the Docker Engine API over a unix socket or plain TCP:
the two GET calls refresh makes, without loading docker-py.

Refresh needs two GET calls per host. docker-py, with requests and paramiko beneath it,
costs about 0.3 s to import, more than the calls themselves; so refresh (and with it
every no-op plan and apply) speaks HTTP directly, and docker-py is loaded only when a
step has something to change.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlencode, urlparse

from providers.types import ProviderError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class EngineHTTP:
    """GET-only Engine API client. Paths are unversioned: the engine answers with its
    own current API version, which is what docker-py's negotiation settles on too."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    @staticmethod
    def supports(base_url: str, tls: bool) -> bool:
        scheme = urlparse(base_url).scheme
        return scheme in ("unix", "http") or (scheme == "tcp" and not tls)

    def _connect(self) -> http.client.HTTPConnection:
        url = urlparse(self.base_url)
        if url.scheme == "unix":
            return _UnixConnection(url.path, self.timeout)
        return http.client.HTTPConnection(url.hostname or "localhost", url.port or 2375, timeout=self.timeout)

    def get_json(self, path: str, **params: Any) -> Any:
        query = urlencode({k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()})
        target = f"{path}?{query}" if query else path
        for attempt in (1, 2):  # a kept-alive connection the engine closed is retried once
            conn = self._conn or self._connect()
            try:
                conn.request("GET", target, headers={"Host": "docker"})
                response = conn.getresponse()
                body = response.read()
                self._conn = conn
                break
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                self._conn = None
                if attempt == 2 or not isinstance(err, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    raise ProviderError(f"cannot reach the Docker engine at {self.base_url}: {err}") from None
        if response.status >= 400:
            try:
                message = json.loads(body).get("message", "")
            except ValueError:
                message = body.decode(errors="replace")
            raise ProviderError(f"the Docker engine at {self.base_url} answered {response.status} to GET {path}: {message}")
        return json.loads(body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
