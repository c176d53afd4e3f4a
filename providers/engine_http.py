"""A small client for the Docker Engine API over a unix socket or plain TCP: the GET
calls refresh makes, and the calls without a body a stop or a removal makes, without
loading docker-py.

Refresh needs a few GET calls per host. docker-py, with requests beneath it, costs
about 0.1 s of CPU to import, more than the calls themselves; so refresh (and with it
every no-op plan and apply) speaks HTTP directly, and so do the steps that stop and
remove containers: a destroy loads neither. docker-py is loaded when a step creates,
builds, pulls or execs.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
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
    """Engine API client: GETs on one kept-alive connection (refresh asks in turn), and
    send() for calls that change something. Paths are unversioned: the engine answers
    with its own current API version, which is what docker-py's negotiation settles on too."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._idle: list[http.client.HTTPConnection] = []  # send()'s, between calls
        self._idle_lock = threading.Lock()

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

    def send(self, method: str, path: str, timeout: float | None = 60.0, **params: str) -> tuple[int, str]:
        """One call without a body that changes something (a stop, a removal): (HTTP status,
        the engine's message, "" when it sent none). Each runs on a connection of its own,
        taken from the idle ones or made: steps run in parallel threads, and a stop holds
        its connection until the container has exited (timeout None: no read timeout).
        ProviderError when the engine cannot be reached."""
        query = urlencode(params)
        target = f"{path}?{query}" if query else path
        for attempt in (1, 2):
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            conn = conn or self._connect()
            conn.timeout = timeout
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request(method, target, headers={"Host": "docker"})
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                if reused and attempt == 1 and isinstance(
                        err, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue  # a kept-alive connection the engine closed meanwhile: once more on a new one
                raise ProviderError(f"cannot reach the Docker engine at {self.base_url}: {err}") from None
            with self._idle_lock:
                self._idle.append(conn)
            return response.status, message(body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def message(body: bytes) -> str:
    """The engine's explanation in an answer's body: its JSON `message`, else the text."""
    try:
        found = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()
    return str(found.get("message", "")) if isinstance(found, dict) else ""
