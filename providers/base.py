"""The Provider protocol: everything the planner may ask of a host.

One Provider per host for the whole run. Implementations must be safe to call from
several worker threads at once (the apply walk runs independent steps in parallel).
"""

from __future__ import annotations

from typing import Iterator, Protocol

from providers.types import ContainerSpec, Observation, ObservedContainer, Progress


class Provider(Protocol):
    host: str  # the host's name in the stack file ("local", "gpu-a")

    def observe(self, stack: str) -> Observation:
        """The stack's containers and the host's images, in one batched query."""
        ...

    def containers_by_id(self, ids: list[str]) -> tuple[ObservedContainer, ...]:
        """Containers with these IDs whatever their labels (adopted ones carry none), in
        one query; refresh calls it only for IDs state records that observe() missed."""
        ...

    def inspect_container(self, ref: str) -> dict | None:
        """Docker's inspect of a container by name or ID plus its image's Config under
        "ImageConfig" (for `import`); None when absent."""
        ...

    def build_image(
        self, context: str, dockerfile: str, args: dict[str, str], tag: str,
        labels: dict[str, str], progress: Progress,
    ) -> str:
        """Build and tag an image from a local context directory; returns its ID."""
        ...

    def ensure_image(self, ref: str, progress: Progress) -> str:
        """The ID of the image `ref` names, pulling it if the host lacks it."""
        ...

    def tag_image(self, image_id: str, tag: str) -> None: ...

    def remove_image(self, ref: str) -> None:
        """Remove a tag of an image berth made (the image goes with its last tag);
        absent or in use is not an error."""
        ...

    def run_container(self, spec: ContainerSpec) -> str:
        """Create and start a container; returns its ID."""
        ...

    def update_container(self, container_id: str, spec: ContainerSpec) -> None:
        """Apply what Docker can change live: the name (rename), restart policy and
        resource limits."""
        ...

    def remove_container(self, container_id: str) -> None:
        """Stop (gracefully, then kill) and remove; absent is not an error."""
        ...

    def container_state(self, container_id: str) -> dict:
        """Docker's State object: Status, ExitCode, Restarting, ... plus RestartCount."""
        ...

    def logs(self, container_id: str, tail: int) -> str: ...

    def stream_logs(self, container_id: str, tail: int | None, follow: bool) -> Iterator[str]:
        """Output as text chunks (for `berth logs`); with follow, until the container stops."""
        ...

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        """One readiness or liveness check against a published port on this host:
        (passed, what was seen). path None means a TCP connect."""
        ...

    def close(self) -> None: ...
