"""The Provider protocol: everything the planner may ask of a host.

One Provider per host for the whole run. Implementations must be safe to call from
several worker threads at once (the apply walk runs independent steps in parallel).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol

from providers.types import ContainerSpec, Observation, ObservedContainer, Progress, SecretParts


class SecretFiles(Protocol):
    """Where a host keeps secret files, and how berth reaches them: the local file
    system (providers.secret_files.LocalSecretFiles) or a host's SFTP session
    (providers.ssh.secret_files.SftpSecretFiles). A DockerEngine takes one, so the
    Docker-level code is shared between hosts.

    Both make ROOT (0700) when it is missing and leave an existing one as it is, and
    mkdir ROOT/STACK and ROOT/STACK/APP and chmod them 0700; open a temporary file
    beside the target exclusively with mode 0600 set *before* writing (never write then
    chmod), then rename it over the target; remove unlinks the file and temporary files
    a crash left, and rmdirs the emptied directories; list reads each app directory.
    ROOT on a server is [hosts.NAME] secrets_dir, else /var/lib/berth/secrets (SSH as
    root), else the login user's ~/.local/state/berth/secrets as an absolute path.
    Errors name the host and path, never the value."""

    def path(self, parts: SecretParts) -> str:
        """The host path of the file for (stack, app, secret), absolute (Docker mounts
        it); pure once ROOT is known (a server's may need its login's home, asked once)."""
        ...

    def write(self, parts: SecretParts, value: bytes) -> str: ...  # as Provider.write_secret
    def remove(self, parts: SecretParts) -> None: ...  # as Provider.remove_secret

    def list(self, stack: str) -> tuple[tuple[str, str], ...]:
        """(app, secret) of every secret file of the stack on the host."""
        ...


class Provider(Protocol):
    host: str  # the host's name in the stack file ("local", "gpu-a")

    def observe(self, stack: str, secrets: bool = True) -> Observation:
        """The stack's containers and the host's images, in one batched query, and with
        `secrets` the stack's secret files (False: the stack can have none here, so the
        listing, an SFTP session on an SSH host, is skipped)."""
        ...

    def containers_by_id(self, ids: list[str]) -> tuple[ObservedContainer, ...]:
        """Containers with these IDs whatever their labels (adopted ones carry none), in
        one query; refresh calls it only for IDs state records that observe() missed."""
        ...

    def container_limits(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The CPU and memory limits each container has now ({"cpus": float | None,
        "memory": bytes | None}), by ID; absent ones are left out. Refresh reads them for
        the containers state records, so a `docker update` behind berth's back is drift."""
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

    def restart_container(self, container_id: str) -> None:
        """Stop (gracefully) and start again, keeping the container: its bind mounts are
        set up afresh, so a secret file rewritten since it started is read anew."""
        ...

    # Secrets. A secret is one file per (stack, app, secret) on the host, holding the raw
    # value; containers bind-mount it read-only at /secrets/NAME. The value passes
    # through here in memory only: implementations never log it, put it in an error
    # message, or keep it anywhere but that file.

    def write_secret(self, parts: SecretParts, value: bytes) -> str:
        """Write `value` to the file for parts = (stack, app, secret), replacing any
        earlier one atomically (a new file renamed over the old, so a running container
        keeps the old value until it restarts). The file is mode 0600 in directories
        (per stack, per app) of mode 0700 that berth's user (root on a server) owns.
        Returns the file's path on the host, which run_container mounts."""
        ...

    def remove_secret(self, parts: SecretParts) -> None:
        """Remove the file and the per-app and per-stack directories it leaves empty;
        absent is not an error."""
        ...

    # observe() also lists the stack's secret files (Observation.secrets), so a file
    # removed behind berth's back is planned back and a leftover one is removed.

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

    def run_in(self, container_id: str, command: list[str], files: dict[str, bytes] | None = None) -> tuple[int, str]:
        """Run command inside a running container, after copying files (absolute path:
        content) into it: (exit code, output). Raises ProviderError when it cannot run
        (the container stopped)."""
        ...

    def close(self) -> None: ...
