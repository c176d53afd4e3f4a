"""Containers on one engine: create (taking a leftover of the same stack off the name),
start, stop, update, remove, restart, the last exit code; plain functions of (api, host)
that DockerEngine calls as its engine calls, through docker-py's APIClient, except stop
and remove, which take DockerEngine._send (no docker-py: a destroy loads none).

Errors are ProviderErrors naming the host; docker-py is loaded only when one runs.
"""

from __future__ import annotations

from typing import Any, Callable

from providers.docker_spec import STOP_TIMEOUT, create_args, limits
from providers.types import LABEL_STACK, ContainerSpec, ProviderError, summary


def create(api: Any, host: str, spec: ContainerSpec, host_config: dict,
           remove: Callable[[str], None]) -> str:
    """Create, not start: a config Docker refuses is refused here. A container already
    holding the name is removed first only when this stack owns it (remove: how)."""
    import docker.errors

    try:
        return api.create_container(**create_args(spec, host_config))["Id"]
    except docker.errors.APIError as err:
        if err.status_code != 409:
            raise ProviderError(f"cannot create {spec.name} on {host}: {summary(err)}") from None
    existing = api.inspect_container(spec.name)
    stack = (existing["Config"].get("Labels") or {}).get(LABEL_STACK)
    if stack != spec.labels.get(LABEL_STACK):
        raise ProviderError(
            f"a container named {spec.name} already exists on {host} and berth does not "
            f"manage it (stack label: {stack or 'none'}); rename or remove it"
        )
    remove(existing["Id"])
    try:
        return api.create_container(**create_args(spec, host_config))["Id"]
    except docker.errors.APIError as err:
        raise ProviderError(f"cannot create {spec.name} on {host}: {summary(err)}") from None


def start(api: Any, host: str, container_id: str, spec: ContainerSpec | None = None) -> None:
    """Start a created or stopped container (spec, when given, names it in errors)."""
    import docker.errors

    try:
        api.start(container_id)
    except docker.errors.APIError as err:
        if spec is None:
            raise ProviderError(f"cannot start container {container_id[:12]} on {host}: {summary(err)}") from None
        raise start_error(host, spec, err) from None


def start_error(host: str, spec: ContainerSpec, err: Exception) -> ProviderError:
    hint = ""
    if spec.gpus and 'device driver "nvidia"' in summary(err):
        hint = (f" (the engine on {host} has no NVIDIA runtime: install nvidia-container-toolkit "
                f"there; the container was created with GPUs {','.join(spec.gpus)} and is left stopped)")
    return ProviderError(f"cannot start {spec.name} on {host}: {summary(err)}{hint}")


def grace(api: Any, container_id: str) -> int:
    """The seconds the container was created to get from SIGTERM to SIGKILL (its
    stop_timeout), asked so that a restart waits as long as the app asked for (Docker's
    restart takes the seconds from the request; a stop, _stop_as_created, needs not ask)."""
    import docker.errors

    try:
        return int(api.inspect_container(container_id)["Config"].get("StopTimeout") or STOP_TIMEOUT)
    except (docker.errors.APIError, KeyError, TypeError, ValueError):
        return STOP_TIMEOUT  # absent: the stop below says so (or has nothing to do)


Send = Callable[..., tuple[int, str]]
"""DockerEngine._send: (method, path, timeout=, **query) -> (HTTP status, engine's message)."""


def _stop_as_created(send: Send, container_id: str) -> tuple[int, str]:
    """Stop with the grace the container was created with (its StopTimeout, which the
    engine applies when the request names no `t`), without an inspect to ask for it first:
    one engine call a container fewer in a destroy. No read timeout: the engine answers
    once the container exited, or was killed when its grace ran out (docker-py's stop()
    would send `t`, or time out after its client timeout + 10 s, short of a long grace).
    204 stopped, 304 already stopped, 404 absent."""
    return send("POST", f"/containers/{container_id}/stop", timeout=None)


def stop(send: Send, host: str, container_id: str) -> None:
    """Stop (gracefully, then kill), keeping the container; absent is not an error."""
    status, message = _stop_as_created(send, container_id)
    if status not in (204, 304, 404):
        raise ProviderError(f"cannot stop container {container_id[:12]} on {host}: {message}")


def update(api: Any, host: str, container_id: str, spec: ContainerSpec) -> None:
    """What Docker changes live: the name, the restart policy, the limits."""
    import docker.errors

    try:
        if api.inspect_container(container_id)["Name"].lstrip("/") != spec.name:
            api.rename(container_id, spec.name)
        api.update_container(container_id, restart_policy={"Name": spec.restart, "MaximumRetryCount": 0},
                             **limits(spec))
    except docker.errors.APIError as err:
        raise ProviderError(f"cannot update {spec.name} on {host}: {summary(err)}") from None


def remove(send: Send, host: str, container_id: str) -> None:
    """Stop, then remove with its anonymous volumes; absent is not an error. A stop the
    engine refuses (stuck) is settled by the forced removal."""
    if _stop_as_created(send, container_id)[0] == 404:
        return
    status, message = send("DELETE", f"/containers/{container_id}", force="1", v="1")
    if status not in (204, 404):
        raise ProviderError(f"cannot remove container {container_id[:12]} on {host}: {message}")


def restart(api: Any, host: str, container_id: str) -> None:
    import docker.errors

    try:
        api.restart(container_id, timeout=grace(api, container_id))
    except docker.errors.APIError as err:
        raise ProviderError(f"cannot restart container {container_id[:12]} on {host}: {summary(err)}") from None


def last_exit_code(api: Any, container_id: str, default: Any) -> Any:
    """The exit code of the container's last "die" event (Docker resets State.ExitCode
    when its restart policy starts it again); default when there is none."""
    import time

    try:
        events = api.events(since=int(time.time()) - 3600, until=int(time.time()) + 1, decode=True,
                            filters={"container": [container_id], "event": ["die"]})
        codes = [e.get("Actor", {}).get("Attributes", {}).get("exitCode") for e in events]
    except Exception:  # noqa: BLE001 - only the message loses its exit code
        return default
    codes = [c for c in codes if c is not None]
    return int(codes[-1]) if codes and str(codes[-1]).lstrip("-").isdigit() else default
