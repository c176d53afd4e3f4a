"""The one Provider: Docker-level code (docker-py's low-level APIClient) over a Transport,
the same for the local engine and SSH hosts; every engine call runs through the transport.

Only low-level calls are used: the high-level `containers.list()` inspects every
container (one API call each), while refresh must cost one list call per host.
What is local-only lives in providers.local, what is SSH's in providers.ssh.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from providers.base import SecretFiles, Transport, engine_call
from providers import docker_client
from providers import docker_containers as containers
from providers.buildkit import LEGACY_WARNING, Builder, cli_build, find_builder, log_path, without_buildkit
from providers.docker_images import build, pull, remove
from providers.docker_spec import (
    host_config_args,
    observed_container,
    observed_image,
    observed_limits,
    observed_volume,
    split_ref,
    tar_of,
)
from providers.types import (
    BuildOptions,
    LABEL_CONTENT_HASH,
    LABEL_STACK,
    ContainerSpec,
    Observation,
    ObservedContainer,
    Progress,
    ProviderError,
    SecretParts,
    summary,
)

if TYPE_CHECKING:
    from providers.gpus import Gpu

docker_client.install()  # docker-py, when first imported, without paramiko (for local engines)

# Where berth picks a replica's port when none is fixed: Docker's own range for ports it
# picks, above where users fix theirs.
PICKED_PORTS = range(32768, 61000)


# The kernel's machine names (docker info's Architecture) as image platforms name them.
PLATFORM_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


class DockerEngine:
    """A Provider over `transport`. delivery_for(engine): the image delivery of a host
    whose images are built elsewhere (an SSH host's, providers.ssh.images: builds run on
    the local engine and receive_image sends them); None builds on this host's own engine."""

    # Provider methods that are not one retried engine call, and why (a unit test checks
    # that every other Provider method is an engine_call).
    NOT_RETRIED = {
        "observe": "two calls side by side (the engine's lists, the secret files), each retried",
        "ensure_image": "the pull is retried; the fallback send retries its own parts",
        "receive_image": "retries its parts: the check, the send (whole, from its start), the tag",
        "build_image": "a build streams its context into the engine through the CLI: a dropped one fails the step, never re-sent",
        "logs": "retried, and a log that cannot be read is empty, not an error",
        "stream_logs": "a stream: output already yielded would be repeated",
        "probe": "the transport retries opening its tunnel; a probe's answer is never repeated",
        "gpus": "nvidia-smi runs as one retried call; its answer is kept for the run",
        "put_weights": "one retried call under a lock per entry; a retry resumes from the partial copy",
        "fetch_weights": "making the cache and the fetch are each a retried call; a retried fetch resumes",
        "builder": "no engine call: which Docker CLI this machine has, looked up once",
        "close": "not an engine call",
    }

    def __init__(self, host: str, transport: Transport, *,
                 delivery_for: Callable[[DockerEngine], Any] | None = None) -> None:
        self.host = host
        self.transport = transport
        self._api: Any = None
        self._api_lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._locks_guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._gpus: tuple[Gpu, ...] | None = None
        self._info: list[dict[str, Any]] = []  # the engine's `docker info`, once read
        self.build_log_dir: Path | None = None  # where build logs go (the workspace's .berth/logs)
        self.delivery = delivery_for(self) if delivery_for is not None else None

    @property
    def builds_here(self) -> bool:
        return self.delivery is None

    @property
    def secret_files(self) -> SecretFiles | None:
        return self.transport.secret_files

    @property
    def api(self) -> Any:
        """docker-py's APIClient, made on first use (importing it costs 0.3 s)."""
        if self._api is None:
            with self._api_lock:
                if self._api is None:
                    client = self.transport.connect_api()
                    self._api = client.api if hasattr(client, "api") else client
        return self._api

    def _send(self, method: str, path: str, timeout: float | None = 900.0, **query: str) -> tuple[int, str]:
        """One engine call without a body: (HTTP status, the engine's message). Through the
        transport's EngineHTTP where it has one, so a step that only stops or removes
        loads neither docker-py nor requests; else through docker-py (an engine over TLS).
        The timeout is docker-py's client timeout, as before: a slow removal is not cut short."""
        http = self.transport.http
        if http is not None:
            return http.send(method, path, timeout=timeout, **query)
        from providers.engine_http import message

        api = self.api
        response = api._session.request(method, api._url(path), params=query, timeout=timeout)
        return response.status_code, message(response.content)

    # Refresh -------------------------------------------------------------------------

    def observe(self, stack: str, secrets: bool = True, weights: bool = False) -> Observation:
        """The Docker lists (through EngineHTTP where the transport has it: one channel,
        kept alive) and, with `secrets`, the secret files (an SFTP session on an SSH host)
        read side by side: the plan waits for the slower. With `weights`, the keys of the
        weights cache's entries (one listing)."""
        observed = self._observe(stack, secrets)
        if weights and self.weights_files is not None:
            keys = self.transport.call("list the weights cache", self.weights_files.entries)
            observed = dataclasses.replace(observed, weights=keys)
        return observed

    def _observe(self, stack: str, secrets: bool) -> Observation:
        files = self.secret_files if secrets else None
        if files is None:
            return self.transport.call("list containers and images", self._observe_engine, stack)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="berth-sftp") as pool:
            listed = pool.submit(self.transport.call, "list secret files", files.list, stack)
            observed = self.transport.call("list containers and images", self._observe_engine, stack)
            return dataclasses.replace(observed, secrets=listed.result())

    def _observe_engine(self, stack: str) -> Observation:
        filters = {"label": [f"{LABEL_STACK}={stack}"]}
        http = self.transport.http
        if http is not None:
            listed = http.get_json("/containers/json", all=1, filters=filters)
            images = http.get_json("/images/json")
            volumes = http.get_json("/volumes", filters=filters).get("Volumes") or []
        else:
            import docker.errors

            try:
                listed = self.api.containers(all=True, filters=filters)
                images = self.api.images()
                volumes = self.api.volumes(filters=filters).get("Volumes") or []
            except docker.errors.DockerException as err:
                raise ProviderError(f"host {self.host}: cannot list containers: {summary(err)}") from None
        return Observation(host=self.host, containers=tuple(observed_container(c) for c in listed),
                           images=tuple(observed_image(i) for i in images),
                           volumes=tuple(observed_volume(v) for v in volumes))

    @engine_call("list containers")
    def containers_by_id(self, ids: list[str]) -> tuple[ObservedContainer, ...]:
        """Containers state records that the label query did not list (adopted by
        `import`, so unlabelled), in one list call; those gone are simply absent."""
        if not ids:
            return ()
        if self.transport.http is not None:
            listed = self.transport.http.get_json("/containers/json", all=1, filters={"id": list(ids)})
        else:
            import docker.errors

            try:
                listed = self.api.containers(all=True, filters={"id": list(ids)})
            except docker.errors.DockerException as err:
                raise ProviderError(f"host {self.host}: cannot list containers: {summary(err)}") from None
        wanted = set(ids)
        return tuple(observed_container(c) for c in listed if c["Id"] in wanted)

    @engine_call("inspect containers")
    def container_limits(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """One GET per container (/containers/ID/json; the list call has no HostConfig
        limits), over the kept-alive refresh connection when there is one."""
        found: dict[str, dict[str, Any]] = {}
        for container_id in ids:
            if self.transport.http is not None:
                try:
                    info = self.transport.http.get_json(f"/containers/{container_id}/json")
                except ProviderError as err:
                    if " 404 " in str(err):
                        continue
                    raise
            else:
                import docker.errors

                try:
                    info = self.api.inspect_container(container_id)
                except docker.errors.NotFound:
                    continue
                except docker.errors.DockerException as err:
                    raise ProviderError(f"host {self.host}: cannot inspect container {container_id[:12]}: "
                                        f"{summary(err)}") from None
            found[container_id] = observed_limits(info.get("HostConfig") or {})
        return found

    @engine_call(lambda ref: f"inspect container {ref}")
    def inspect_container(self, ref: str) -> dict | None:
        """Docker's full inspect of a container by name or ID, with its image's Config
        under "ImageConfig"; None when there is no such container."""
        import docker.errors

        try:
            info = self.api.inspect_container(ref)
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot inspect container {ref}: {summary(err)}") from None
        try:
            info["ImageConfig"] = self.api.inspect_image(info["Image"]).get("Config") or {}
        except docker.errors.DockerException:
            info["ImageConfig"] = {}
        return info

    # Images --------------------------------------------------------------------------

    def build_image(
        self, context: str, dockerfile: str, args: dict[str, str], tag: str,
        labels: dict[str, str], progress: Progress, options: BuildOptions | None = None,
    ) -> str:
        options = options or BuildOptions()
        if self.delivery is not None and not options.on_host:
            return self.delivery.build(context, dockerfile, args, tag, labels, progress, options)
        # Apps built from one context share an image: the first build makes it, the
        # others wait for it here and only add their tag.
        with self._lock_for(labels.get(LABEL_CONTENT_HASH, tag)):
            existing = self.api.images(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
            if existing:
                self.tag_image(existing[0]["Id"], tag)
                progress(f"same content as {existing[0]['Id'][7:19]}: tagged, not rebuilt")
                return existing[0]["Id"]
            builder = self.builder()
            if builder.buildkit:
                return cli_build(builder, self.transport.docker_host, self.host, context, dockerfile, args, tag,
                                 labels, progress, options, self.build_log_dir)
            without_buildkit(options, self.host)
            progress(f"warning: {LEGACY_WARNING}")
            log = log_path(self.build_log_dir, options.name or split_ref(tag)[0])
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                progress(f"build log: {log}")
            return build(self.api, self.host, context, dockerfile, args, tag, labels, progress, options, log)

    def builder(self) -> Builder:
        """What builds this host's images here: BuildKit through the Docker CLI where this
        machine has a client for it, else the legacy API builder (providers.buildkit)."""
        return find_builder()

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def ensure_image(self, ref: str, progress: Progress) -> str:
        """As the host has it, else pulled there; where the pull fails (no registry) and
        the builder of this host's images has it, it is sent from there."""
        try:
            return self.transport.call(f"pull {ref}", self._ensure_image, ref, progress)
        except ProviderError as err:
            if self.delivery is None:
                raise
            return self.delivery.after_failed_pull(ref, err, progress)

    def _ensure_image(self, ref: str, progress: Progress) -> str:
        import docker.errors

        try:
            return self.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot inspect image {ref}: {summary(err)}") from None
        with self._pull_lock:  # one pull at a time: two apps often name one image
            return pull(self.api, self.host, ref, progress)

    def receive_image(self, ref: str, tag: str, progress: Progress) -> str:
        if self.delivery is not None:
            return self.delivery.receive(ref, tag, progress)
        image_id = self.transport.call("inspect an image", lambda: self.api.inspect_image(ref)["Id"])
        self.tag_image(image_id, tag)  # built here: already present
        return image_id

    @engine_call("tag an image")
    def tag_image(self, image_id: str, tag: str) -> None:
        repo, version = split_ref(tag)
        self.api.tag(image_id, repo, version)

    @engine_call("remove an image")
    def remove_image(self, ref: str) -> None:
        """Untag ref (the image itself goes with its last tag), or remove an untagged
        image by ID. Never forced: an image a container still uses stays."""
        remove(self._send, self.host, ref)

    # Containers ----------------------------------------------------------------------

    @engine_call(lambda spec: f"start {spec.name}")
    def run_container(self, spec: ContainerSpec) -> str:
        if spec.host_port is None and spec.network_mode != "host":
            return self._run_on_free_port(spec)
        return self._run(spec)

    def _run_on_free_port(self, spec: ContainerSpec) -> str:
        """Publish on a free port berth picks and names, not one Docker picks: Docker
        picks afresh at every start, so a replica restarted (by the liveness watcher, its
        restart policy, a reboot) would move away from the port the gateway routes to."""
        import random

        used = {p.get("PublicPort") for c in self.api.containers(all=True) for p in c.get("Ports") or ()}
        ports = range(spec.pick_ports[0], spec.pick_ports[1] + 1) if spec.pick_ports else PICKED_PORTS
        candidates = [p for p in random.sample(ports, min(64, len(ports))) if p not in used]
        for port in candidates:
            if self.probe(port, None, 1.0)[0]:
                continue  # something on the host listens there
            # (A listener that closes at once passes as free, like Docker's proxy
            # without a server: the start then fails and the next port is tried.)
            try:
                return self._run(dataclasses.replace(spec, host_port=port), picked=True)
            except _PortTaken as taken:
                self.remove_container(taken.container_id)
        raise ProviderError(f"cannot start {spec.name} on {self.host}: no free port found in "
                            f"{ports.start}-{ports.stop - 1}")

    def _run(self, spec: ContainerSpec, picked: bool = False) -> str:
        """picked: the host port was berth's pick, so another one can be tried if it
        turns out taken (_PortTaken)."""
        import docker.errors

        container_id = self._create_container(spec)
        try:
            self.api.start(container_id)
        except docker.errors.APIError as err:
            if picked and any(words in summary(err) for words in ("port is already allocated", "address already in use")):
                raise _PortTaken(container_id) from None
            raise containers.start_error(self.host, spec, err) from None
        return container_id

    @engine_call(lambda spec: f"create {spec.name}")
    def create_container(self, spec: ContainerSpec) -> str:
        """Create, not start: what Docker refuses in a config it refuses here, while an
        old container of the same address still runs (a replace)."""
        return self._create_container(spec)

    def _create_container(self, spec: ContainerSpec) -> str:
        host_config = self.api.create_host_config(**host_config_args(spec, lambda parts: self._files().path(parts)))
        return containers.create(self.api, self.host, spec, host_config,
                                 lambda found: containers.remove(self._send, self.host, found))

    @engine_call(lambda container_id, spec=None: f"start {spec.name if spec else container_id[:12]}")
    def start_container(self, container_id: str, spec: ContainerSpec | None = None) -> None:
        containers.start(self.api, self.host, container_id, spec)

    @engine_call("stop a container")
    def stop_container(self, container_id: str) -> None:
        containers.stop(self._send, self.host, container_id)

    @engine_call(lambda container_id, spec: f"update {spec.name}")
    def update_container(self, container_id: str, spec: ContainerSpec) -> None:
        containers.update(self.api, self.host, container_id, spec)

    @engine_call("remove a container")
    def remove_container(self, container_id: str) -> None:
        containers.remove(self._send, self.host, container_id)

    @engine_call("restart a container")
    def restart_container(self, container_id: str) -> None:
        containers.restart(self.api, self.host, container_id)

    # Volumes and host paths -----------------------------------------------------------

    @engine_call(lambda name, labels: f"create volume {name}")
    def create_volume(self, name: str, labels: dict[str, str]) -> str:
        """Make the named volume (Docker's local driver); one that exists is kept as it
        is, data and all (Docker answers a create of an existing name with it)."""
        import docker.errors

        try:
            return self.api.create_volume(name=name, labels=labels)["Name"]
        except docker.errors.APIError as err:
            raise ProviderError(f"cannot create volume {name} on {self.host}: {summary(err)}") from None

    @engine_call(lambda name: f"remove volume {name}")
    def remove_volume(self, name: str) -> None:
        status, message = self._send("DELETE", f"/volumes/{name}")
        if status not in (204, 404):
            raise ProviderError(f"cannot remove volume {name} on {self.host}: {message}")

    @engine_call("list published ports")
    def ports_taken(self, stack: str) -> dict[int, tuple[str, str]]:
        import docker.errors

        http = self.transport.http
        try:
            listed = http.get_json("/containers/json") if http is not None else self.api.containers()
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot list containers: {summary(err)}") from None
        return {port: (c.id, c.name) for c in map(observed_container, listed)
                if c.labels.get(LABEL_STACK) != stack for port in c.host_ports}

    @engine_call("check host paths")
    def missing_paths(self, paths: list[str]) -> list[str]:
        """The paths that do not exist on the host, asked in one command over its own
        connection (the engine's file system is the host's)."""
        if not paths:
            return []
        import shlex

        script = 'for p in "$@"; do [ -e "$p" ] || printf "%s\\n" "$p"; done'
        status, out, err = self.transport.run(shlex.join(["sh", "-c", script, "berth", *paths]))
        if status != 0:
            raise ProviderError(f"host {self.host}: cannot check host paths: {(err or out).strip() or f'exit {status}'}")
        return [line for line in out.splitlines() if line in paths]

    # Weights -------------------------------------------------------------------------

    @property
    def weights_files(self) -> Any:
        return getattr(self.transport, "weights_files", None)

    def _weights(self) -> Any:
        if self.weights_files is None:
            raise ProviderError(f"host {self.host}: berth cannot reach a weights cache beside its engine: "
                                f"{self.transport.why_no_files}")
        return self.weights_files

    @property
    def weights_cache(self) -> str:
        return self.transport.call("find the weights cache", self._weights().root)

    def put_weights(self, key: str, source: str, files: list[tuple[str, str, int, str, bool]],
                    progress: Progress, previous: str | None = None) -> int:
        with self._lock_for(f"weights:{key}"):  # two apps of one stack may copy one directory
            return self.transport.call(f"copy weights {key[:12]}", self._weights().put, key, source, files, progress,
                                       previous)

    def fetch_weights(self, image: str, script: str, source: str, allow: list[str], ignore: list[str],
                      token: SecretParts | None, progress: Progress) -> str:
        from providers import weights_fetch

        root = self.transport.call("make the weights cache", self._weights().ensure_root)
        secret = self._files().path(token) if token is not None else None
        return self.transport.call(f"fetch {source}", weights_fetch.run, self.api, self.host, image, root,
                                   script, source, allow, ignore, secret, progress)

    # Secrets -------------------------------------------------------------------------

    def _files(self) -> SecretFiles:
        if self.secret_files is None:
            raise ProviderError(f"host {self.host}: berth cannot write secret files beside its engine: "
                                f"{self.transport.why_no_files}")
        return self.secret_files

    @engine_call(lambda parts, value: f"write secret file {'/'.join(parts)}")
    def write_secret(self, parts: SecretParts, value: bytes) -> str:
        return self._files().write(parts, value)

    @engine_call(lambda parts: f"remove secret file {'/'.join(parts)}")
    def remove_secret(self, parts: SecretParts) -> None:
        self._files().remove(parts)

    @engine_call("inspect a container")
    def container_state(self, container_id: str) -> dict:
        import docker.errors

        try:
            info = self.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return {"Status": "removed", "ExitCode": None, "RestartCount": 0}
        state = info["State"] | {"RestartCount": info.get("RestartCount", 0)}
        if state["RestartCount"] and not state.get("ExitCode") and state.get("Status") in ("running", "restarting"):
            # Restarted by its policy: Docker has reset ExitCode to 0 for the new run, so
            # the code it really died with is in its last "die" event.
            state["ExitCode"] = containers.last_exit_code(self.api, container_id, state.get("ExitCode"))
        return state

    def logs(self, container_id: str, tail: int) -> str:
        try:
            return self.transport.call("read a container's log", self._logs, container_id, tail)
        except ProviderError:
            return ""

    def _logs(self, container_id: str, tail: int) -> str:
        import docker.errors

        try:
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        except docker.errors.DockerException:
            return ""
        return raw.decode("utf-8", "replace")

    def stream_logs(self, container_id: str, tail: int | None, follow: bool, *, since: int | None = None,
                    timestamps: bool = False) -> Iterator[str]:
        """The container's output as text chunks, the last `tail` lines first (all when
        None); with follow, new output as it comes until the container stops."""
        import docker.errors

        try:
            chunks = self.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=follow,
                                   tail="all" if tail is None else tail, since=since, timestamps=timestamps)
            for chunk in chunks:
                yield chunk.decode("utf-8", "replace")
        except docker.errors.NotFound:
            raise ProviderError(f"container {container_id[:12]} no longer exists on {self.host}") from None
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot read the logs of {container_id[:12]}: {summary(err)}") from None

    # Probes --------------------------------------------------------------------------

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        return self.transport.probe(port, path, timeout)

    @engine_call(lambda container_id, command, files=None: f"run {command[0]} in a container")
    def run_in(self, container_id: str, command: list[str], files: dict[str, bytes] | None = None) -> tuple[int, str]:
        """Run command inside a running container (docker exec), after copying files
        (path: content, mode 0600) into it: (exit code, its output). ProviderError when
        the container is not running."""
        import docker.errors

        try:
            if files:
                self.api.put_archive(container_id, "/", tar_of(files))
            exec_id = self.api.exec_create(container_id, command)["Id"]
            output = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.DockerException as err:
            raise ProviderError(f"cannot run {command[0]} in container {container_id[:12]} on {self.host}: "
                                f"{summary(err)}") from None
        return code if code is not None else -1, output.decode("utf-8", "replace")

    # Facts --------------------------------------------------------------------------

    def gpus(self) -> tuple[Gpu, ...]:
        """The host's GPUs from nvidia-smi, read once per run; none without nvidia-smi."""
        if self._gpus is None:
            from providers.gpus import NVIDIA_SMI_QUERY, read_gpus

            self._gpus = read_gpus(self.host, *self.transport.call("run nvidia-smi", self.transport.run, NVIDIA_SMI_QUERY))
        return self._gpus

    @property
    def engine_url(self) -> str:
        return self.transport.engine_url

    @engine_call("read the engine's info")
    def cpu_count(self) -> int | None:
        """The host's CPUs as its engine counts them (`docker info`'s NCPU: what a
        container's cpus may reach), read once per run."""
        count = self._engine_info().get("NCPU")
        return int(count) if isinstance(count, int) and count > 0 else None

    def memory_total(self) -> int | None:
        """The host's memory in bytes as its engine counts them (`docker info`'s
        MemTotal), read once per run."""
        total = self._engine_info().get("MemTotal")
        return int(total) if isinstance(total, int) and total > 0 else None

    @engine_call("read the engine's info")
    def architecture(self) -> str | None:
        """docker info's Architecture (the kernel's name: x86_64, aarch64) as image
        platforms name it (amd64, arm64), read once per run."""
        machine = self._engine_info().get("Architecture")
        return PLATFORM_ARCH.get(machine, machine) if isinstance(machine, str) and machine else None

    def _engine_info(self) -> dict[str, Any]:
        """`docker info`, read once per run (its CPU and memory counts, its architecture):
        through EngineHTTP where the transport has it, so a plan that asks loads no docker-py."""
        if not self._info:
            http = self.transport.http
            if http is not None:
                try:
                    info = http.get_json("/info")
                except ProviderError as err:
                    raise ProviderError(f"host {self.host}: cannot read the engine's info: {err}") from None
            else:
                import docker.errors

                try:
                    info = self.api.info()
                except docker.errors.DockerException as err:
                    raise ProviderError(f"host {self.host}: cannot read the engine's info: {summary(err)}") from None
            self._info.append(info if isinstance(info, dict) else {})
        return self._info[0]

    @engine_call("read the Docker version")
    def docker_version(self) -> str:
        import docker.errors

        try:
            return self.api.version().get("Version", "?")
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot read the Docker version: {summary(err)}") from None

    def close(self) -> None:
        if self._api is not None:
            try:
                self._api.close()
            except Exception:
                pass
        self.transport.close()


class _PortTaken(Exception):
    """The port berth picked for a container was taken between its check and the start."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
