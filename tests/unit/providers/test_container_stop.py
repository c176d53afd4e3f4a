"""A stop (in a destroy, a replace, a failed readiness) asks the engine to stop the
container with the grace it was created with, in one call: no `t` in the request (the
engine then applies the container's own StopTimeout), no inspect first, and no read
timeout that a long grace would outlast."""

from __future__ import annotations

from typing import Any

from providers import docker_containers as containers


class RecordingSend:
    """DockerEngine._send's shape: (method, path, timeout=, **query) -> (status, message)."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        self.calls.append((method, path, kwargs))
        return self.status, ""


def test_remove_stops_with_the_containers_own_grace_in_one_call_then_removes() -> None:
    send = RecordingSend()
    containers.remove(send, "local", "c1")
    assert send.calls == [("POST", "/containers/c1/stop", {"timeout": None}),
                          ("DELETE", "/containers/c1", {"force": "1", "v": "1"})]


def test_stop_is_one_call_without_t_and_without_a_read_timeout() -> None:
    send = RecordingSend()
    containers.stop(send, "local", "c1")
    assert send.calls == [("POST", "/containers/c1/stop", {"timeout": None})]


def test_a_container_already_gone_is_neither_stopped_again_nor_removed() -> None:
    send = RecordingSend(404)
    containers.remove(send, "local", "c1")
    containers.stop(send, "local", "c1")
    assert [method for method, _, _ in send.calls] == ["POST", "POST"]
