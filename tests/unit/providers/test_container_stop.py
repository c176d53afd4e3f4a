"""A stop (in a destroy, a replace, a failed readiness) asks the engine to stop the
container with the grace it was created with, in one call: no `t` in the request (the
engine then applies the container's own StopTimeout), no inspect first, and no read
timeout that a long grace would outlast."""

from __future__ import annotations

from typing import Any

from providers import docker_containers as containers


class Response:
    status_code = 204


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post(self, url: str, **kwargs: Any) -> Response:
        self.calls.append(("post", url, kwargs))
        return Response()

    def _raise_for_status(self, response: Response) -> None:
        self.calls.append(("checked", response.status_code))

    def inspect_container(self, container_id: str) -> dict:
        self.calls.append(("inspect", container_id))
        return {"Config": {"StopTimeout": 45}}

    def stop(self, container_id: str, timeout: int | None = None) -> None:
        self.calls.append(("stop", container_id, timeout))

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        self.calls.append(("remove", container_id, force, v))


def test_remove_stops_with_the_containers_own_grace_in_one_call_then_removes() -> None:
    api = RecordingApi()
    containers.remove(api, "local", "c1")
    assert api.calls == [("post", "/containers/c1/stop", {"timeout": None}), ("checked", 204),
                         ("remove", "c1", True, True)]


def test_stop_is_one_call_without_t_and_without_a_read_timeout() -> None:
    api = RecordingApi()
    containers.stop(api, "local", "c1")
    assert api.calls == [("post", "/containers/c1/stop", {"timeout": None}), ("checked", 204)]
