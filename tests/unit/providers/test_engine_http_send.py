"""The calls a stop and a removal make, through berth's own Engine API client
(providers.engine_http.EngineHTTP.send) against a small HTTP server on a unix socket
standing in for the engine's: each answer the engine gives them (stopped, already
stopped, absent, refused) is read as docker-py's errors were, and parallel calls reuse
connections instead of making one each."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from pathlib import Path

import pytest

from providers import docker_containers as containers
from providers import docker_images as images
from providers.engine_http import EngineHTTP, message
from providers.types import ProviderError


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, answers: dict[tuple[str, str], tuple[int, dict | None]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str]] = []
        self.connections = 0
        super().__init__(path, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive, as dockerd keeps them

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def address_string(self) -> str:
        return "engine"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path))
        status, body = self.server.answers.get((self.command, self.path.split("?")[0]), (404, {"message": "no such container"}))
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = do_GET = _answer


@pytest.fixture
def engine(tmp_path: Path):
    def start(answers: dict[tuple[str, str], tuple[int, dict | None]]) -> tuple[_Engine, EngineHTTP]:
        server = _Engine(str(tmp_path / "docker.sock"), answers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server, EngineHTTP(f"unix://{tmp_path / 'docker.sock'}")

    started: list[_Engine] = []
    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_stop_and_remove_read_the_engines_answers(engine) -> None:
    server, client = engine({
        ("POST", "/containers/running/stop"): (204, None),
        ("DELETE", "/containers/running"): (204, None),
        ("POST", "/containers/stopped/stop"): (304, None),
        ("DELETE", "/containers/stopped"): (409, {"message": "removal of container stopped is already in progress"}),
        ("POST", "/containers/stuck/stop"): (500, {"message": "cannot kill container: permission denied"}),
    })
    containers.stop(client.send, "local", "running")
    containers.stop(client.send, "local", "stopped")  # already stopped: nothing to do
    containers.stop(client.send, "local", "gone")  # absent: nothing to do
    containers.remove(client.send, "local", "running")
    containers.remove(client.send, "local", "gone")  # absent: no removal asked for
    with pytest.raises(ProviderError, match="cannot stop container stuck on local: cannot kill container: permission denied"):
        containers.stop(client.send, "local", "stuck")
    with pytest.raises(ProviderError, match="cannot remove container stopped on local: removal of container stopped"):
        containers.remove(client.send, "local", "stopped")
    assert ("DELETE", "/containers/running?force=1&v=1") in server.seen
    assert not any(path.startswith("/containers/gone") for method, path in server.seen if method == "DELETE")
    client.close()


def test_parallel_calls_share_a_few_connections(engine) -> None:
    server, client = engine({("POST", f"/containers/c{i}/stop"): (204, None) for i in range(40)})
    threads = [threading.Thread(target=lambda n=n: [client.send("POST", f"/containers/c{i}/stop", timeout=5)
                                                     for i in range(n, 40, 4)]) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(server.seen) == 40
    assert server.connections <= 4  # at most one per thread at a time, then reused
    client.close()


def test_an_unreachable_engine_is_a_provider_error(tmp_path: Path) -> None:
    client = EngineHTTP(f"unix://{tmp_path / 'none.sock'}")
    with pytest.raises(ProviderError, match="cannot reach the Docker engine at unix://"):
        client.send("POST", "/containers/x/stop")


def test_the_engines_message_is_its_json_message_or_its_text() -> None:
    assert message(b'{"message": "no such container: x"}') == "no such container: x"
    assert message(b"page not found\n") == "page not found"
    assert message(b"") == ""


def test_an_image_is_untagged_unless_in_use_and_a_tag_gone_meanwhile_is_no_error(engine) -> None:
    server, client = engine({
        ("DELETE", "/images/berth-web:1"): (200, []),
        ("DELETE", "/images/berth-used:1"): (409, {"message": "image is being used by running container"}),
        ("DELETE", "/images/sha256:aaaa"): (500, {"message": "unrecognized image ID sha256:aaaa"}),
        ("DELETE", "/images/berth-odd:1"): (500, {"message": "driver failed"}),
        ("GET", "/images/berth-odd:1/json"): (200, {}),
    })
    images.remove(client.send, "local", "berth-web:1")
    images.remove(client.send, "local", "berth-used:1")  # another's container uses it: kept, no error
    images.remove(client.send, "local", "sha256:aaaa")  # gone with another tag meanwhile: asked, absent
    images.remove(client.send, "local", "berth-gone:1")
    with pytest.raises(ProviderError, match="host local: cannot remove image: driver failed"):
        images.remove(client.send, "local", "berth-odd:1")
    assert ("GET", "/images/sha256:aaaa/json") in server.seen
    client.close()
