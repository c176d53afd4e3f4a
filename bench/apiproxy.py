"""A counting proxy for the Docker API socket: relays bytes both ways and counts the
HTTP requests a client sends, so a benchmark can show that a no-op plan costs one list
call per host however many apps the stack has.

Run a command against it with DOCKER_HOST=unix://<proxy.path>.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
from collections import Counter

REQUEST = re.compile(rb"(?:^|\r\n)(GET|POST|PUT|DELETE|HEAD) (/[^ ?]*)")


class ApiProxy:
    def __init__(self, upstream: str = "/var/run/docker.sock") -> None:
        self.upstream = upstream
        self.path = os.path.join(tempfile.mkdtemp(prefix="berth-bench-"), "docker.sock")
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        for method, path in REQUEST.findall(data):
                            # /v1.41/containers/json -> GET /containers/json
                            name = re.sub(rb"^/v[0-9.]+", b"", path).decode()
                            name = re.sub(r"/[0-9a-f]{12,}", "/ID", name)
                            self.requests[f"{method.decode()} {name}"] += 1
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()
        os.unlink(self.path)
        os.rmdir(os.path.dirname(self.path))
