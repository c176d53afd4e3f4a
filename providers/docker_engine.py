"""A Provider over one Docker engine's API (docker-py's low-level APIClient).

The local engine and, later, SSH hosts share this class; they differ only in how the
API is reached and how a published port is dialled for probes. Only low-level calls
are used: the high-level `containers.list()` inspects every container (one API call
each), while refresh must cost one list call per host.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from providers.base import SecretFiles
from providers.engine_http import EngineHTTP
from providers.readiness import TCP_HOLD, tcp_verdict
from providers.types import (
    LABEL_CONTENT_HASH,
    LABEL_STACK,
    ContainerSpec,
    Observation,
    ObservedContainer,
    ObservedImage,
    Progress,
    ProviderError,
    SecretParts,
)

STOP_TIMEOUT = 10  # seconds a container gets to exit on SIGTERM before it is killed
# Where berth picks a replica's port when none is fixed: Docker's own range for ports it
# picks, above where users fix theirs.
PICKED_PORTS = range(32768, 61000)
CPU_PERIOD = 100_000


def _summary(err: Exception) -> str:
    explanation = getattr(err, "explanation", None)
    return str(explanation or err).strip()


class DockerEngine:
    """client is a docker-py client, or None with `connect` giving one on first use;
    with `http`, refresh reads through it and never loads docker-py. secret_files: where
    this host keeps secret files (None where berth cannot reach its file system)."""

    def __init__(
        self, host: str, client: Any, probe_address: str, *,
        connect: Callable[[], Any] | None = None, http: EngineHTTP | None = None,
        secret_files: SecretFiles | None = None,
    ) -> None:
        self.host = host
        self._api = client.api if hasattr(client, "api") else client
        self._connect = connect
        self._http = http
        self._api_lock = threading.Lock()
        self.probe_address = probe_address
        # None where berth cannot put files beside the engine (DOCKER_HOST on another
        # machine): stacks with secrets then fail at their first secret step.
        self.secret_files = secret_files
        self._pull_lock = threading.Lock()
        self._locks_guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @property
    def api(self) -> Any:
        """docker-py's APIClient, made on first use (importing it costs 0.3 s)."""
        if self._api is None:
            with self._api_lock:
                if self._api is None:
                    assert self._connect is not None, "DockerEngine needs a client or a connect()"
                    client = self._connect()
                    self._api = client.api if hasattr(client, "api") else client
        return self._api

    # Refresh -------------------------------------------------------------------------

    def observe(self, stack: str, secrets: bool = True) -> Observation:
        filters = {"label": [f"{LABEL_STACK}={stack}"]}
        if self._http is not None:
            listed = self._http.get_json("/containers/json", all=1, filters=filters)
            images = self._http.get_json("/images/json")
        else:
            import docker.errors

            try:
                listed = self.api.containers(all=True, filters=filters)
                images = self.api.images()
            except docker.errors.DockerException as err:
                raise ProviderError(f"host {self.host}: cannot list containers: {_summary(err)}") from None
        return Observation(
            host=self.host,
            secrets=self.secret_files.list(stack) if secrets and self.secret_files else (),
            containers=tuple(_observed(c) for c in listed),
            images=tuple(
                ObservedImage(
                    id=i["Id"],
                    tags=tuple(t for t in i.get("RepoTags") or () if t != "<none>:<none>"),
                    digests=tuple(d for d in i.get("RepoDigests") or () if d != "<none>@<none>"),
                    labels=i.get("Labels") or {},
                )
                for i in images
            ),
        )

    def containers_by_id(self, ids: list[str]) -> tuple[ObservedContainer, ...]:
        """Containers state records that the label query did not list (adopted by
        `import`, so unlabelled), in one list call; those gone are simply absent."""
        if not ids:
            return ()
        if self._http is not None:
            listed = self._http.get_json("/containers/json", all=1, filters={"id": list(ids)})
        else:
            import docker.errors

            try:
                listed = self.api.containers(all=True, filters={"id": list(ids)})
            except docker.errors.DockerException as err:
                raise ProviderError(f"host {self.host}: cannot list containers: {_summary(err)}") from None
        wanted = set(ids)
        return tuple(_observed(c) for c in listed if c["Id"] in wanted)

    def container_limits(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """One GET per container (/containers/ID/json; the list call has no HostConfig
        limits), over the kept-alive refresh connection when there is one."""
        found: dict[str, dict[str, Any]] = {}
        for container_id in ids:
            if self._http is not None:
                try:
                    info = self._http.get_json(f"/containers/{container_id}/json")
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
                                        f"{_summary(err)}") from None
            found[container_id] = observed_limits(info.get("HostConfig") or {})
        return found

    def inspect_container(self, ref: str) -> dict | None:
        """Docker's full inspect of a container by name or ID, with its image's Config
        under "ImageConfig"; None when there is no such container."""
        import docker.errors

        try:
            info = self.api.inspect_container(ref)
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot inspect container {ref}: {_summary(err)}") from None
        try:
            info["ImageConfig"] = self.api.inspect_image(info["Image"]).get("Config") or {}
        except docker.errors.DockerException:
            info["ImageConfig"] = {}
        return info

    # Images --------------------------------------------------------------------------

    def build_image(
        self, context: str, dockerfile: str, args: dict[str, str], tag: str,
        labels: dict[str, str], progress: Progress,
    ) -> str:
        # Apps built from one context share an image: the first build makes it, the
        # others wait for it here and only add their tag.
        with self._lock_for(labels.get(LABEL_CONTENT_HASH, tag)):
            existing = self.api.images(filters={"label": [f"{k}={v}" for k, v in labels.items()]})
            if existing:
                self.tag_image(existing[0]["Id"], tag)
                progress(f"same content as {existing[0]['Id'][7:19]}: tagged, not rebuilt")
                return existing[0]["Id"]
            return self._build(context, dockerfile, args, tag, labels, progress)

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _build(
        self, context: str, dockerfile: str, args: dict[str, str], tag: str,
        labels: dict[str, str], progress: Progress,
    ) -> str:
        import docker.errors

        last: list[str] = []
        try:
            for chunk in self.api.build(
                path=context, dockerfile=dockerfile, buildargs=args or None, tag=tag,
                labels=labels, rm=True, forcerm=True, decode=True,
            ):
                if "error" in chunk:
                    tail = "".join(last[-10:]).rstrip()
                    raise ProviderError(
                        f"image build failed on {self.host}: {chunk['error'].strip()}"
                        + (f"\n{tail}" if tail else "")
                    )
                line = chunk.get("stream", "")
                if line.strip():
                    last.append(line)
                    if line.startswith("Step "):
                        progress(line.strip())
            return self.api.inspect_image(tag)["Id"]
        except docker.errors.DockerException as err:
            raise ProviderError(f"image build failed on {self.host}: {_summary(err)}") from None

    def ensure_image(self, ref: str, progress: Progress) -> str:
        import docker.errors

        try:
            return self.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot inspect image {ref}: {_summary(err)}") from None
        with self._pull_lock:  # one pull at a time: two apps often name one image
            try:
                repo, tag = _split_ref(ref)
                for chunk in self.api.pull(repo, tag=tag, stream=True, decode=True):
                    if "error" in chunk:
                        raise ProviderError(f"pull of {ref} failed on {self.host}: {chunk['error']}")
                    if chunk.get("status", "").startswith(("Pulling from", "Digest", "Status")):
                        progress(chunk["status"])
                return self.api.inspect_image(ref)["Id"]
            except docker.errors.DockerException as err:
                raise ProviderError(
                    f"image {ref} is not on host {self.host} and could not be pulled: {_summary(err)}"
                ) from None

    def tag_image(self, image_id: str, tag: str) -> None:
        repo, version = _split_ref(tag)
        self.api.tag(image_id, repo, version)

    def remove_image(self, ref: str) -> None:
        """Untag ref (the image itself goes with its last tag), or remove an untagged
        image by ID. Never forced: an image a container still uses stays."""
        import docker.errors

        try:
            self.api.remove_image(ref)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if err.status_code == 409:  # in use by a container berth does not own
                return
            # Two tags of one image untagged at once: the engine deletes the image with
            # the first and may answer the second "unrecognized image ID". The tag is
            # gone either way, which is all this step asks.
            try:
                self.api.inspect_image(ref)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError:
                pass
            raise ProviderError(f"host {self.host}: cannot remove image: {_summary(err)}") from None

    # Containers ----------------------------------------------------------------------

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
        candidates = [p for p in random.sample(PICKED_PORTS, 64) if p not in used]
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
                            f"{PICKED_PORTS.start}-{PICKED_PORTS.stop - 1}")

    def _run(self, spec: ContainerSpec, picked: bool = False) -> str:
        """picked: the host port was berth's pick, so another one can be tried if it
        turns out taken (_PortTaken)."""
        import docker.errors

        host_network = spec.network_mode == "host"
        host_config = self.api.create_host_config(
            port_bindings=None if host_network else {spec.port: spec.host_port},
            network_mode=spec.network_mode,
            sysctls=spec.sysctls or None,
            extra_hosts=spec.extra_hosts or None,
            restart_policy={"Name": spec.restart, "MaximumRetryCount": 0},
            init=True,  # forwards SIGTERM to the server and reaps zombies
            mounts=self._mounts(spec),
            **_limits(spec),
            **_devices(spec),
        )
        try:
            created = self._create(spec, host_config)
        except docker.errors.APIError as err:
            if err.status_code != 409:
                raise ProviderError(f"cannot create {spec.name} on {self.host}: {_summary(err)}") from None
            self._remove_leftover(spec)
            created = self._create(spec, host_config)
        try:
            self.api.start(created["Id"])
        except docker.errors.APIError as err:
            if picked and any(words in _summary(err) for words in ("port is already allocated", "address already in use")):
                raise _PortTaken(created["Id"]) from None
            hint = ""
            if spec.gpus and 'device driver "nvidia"' in _summary(err):
                hint = (f" (the engine on {self.host} has no NVIDIA runtime: install nvidia-container-toolkit "
                        f"there; the container was created with GPUs {','.join(spec.gpus)} and is left stopped)")
            raise ProviderError(f"cannot start {spec.name} on {self.host}: {_summary(err)}{hint}") from None
        return created["Id"]

    def _create(self, spec: ContainerSpec, host_config: dict) -> dict:
        env = spec.env | ({"NVIDIA_VISIBLE_DEVICES": ",".join(spec.gpus)} if spec.gpus else {})
        return self.api.create_container(
            image=spec.image, name=spec.name, command=list(spec.command) if spec.command else None,
            environment=env | spec.secret_env, labels=spec.labels,
            ports=None if spec.network_mode == "host" else [spec.port],
            host_config=host_config, stop_timeout=STOP_TIMEOUT,
        )

    def _mounts(self, spec: ContainerSpec) -> list[Any] | None:
        """Read-only bind mounts of the secret files, then the spec's host paths. A
        Mount, not a -v bind: a missing source is an error, where -v would quietly
        create an empty directory there."""
        if not spec.secret_mounts and not spec.host_mounts:
            return None
        from docker.types import Mount

        mounts = []
        if spec.secret_mounts:
            files = self._files()
            mounts += [Mount(target=m.target, source=files.path(m.parts), type="bind", read_only=True)
                       for m in spec.secret_mounts]
        return mounts + [Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only)
                         for m in spec.host_mounts]

    def _remove_leftover(self, spec: ContainerSpec) -> None:
        """A container already holds the name: take it away only if this stack owns it."""
        existing = self.api.inspect_container(spec.name)
        stack = (existing["Config"].get("Labels") or {}).get(LABEL_STACK)
        if stack != spec.labels.get(LABEL_STACK):
            raise ProviderError(
                f"a container named {spec.name} already exists on {self.host} and berth does not "
                f"manage it (stack label: {stack or 'none'}); rename or remove it"
            )
        self.remove_container(existing["Id"])

    def update_container(self, container_id: str, spec: ContainerSpec) -> None:
        import docker.errors

        try:
            if self.api.inspect_container(container_id)["Name"].lstrip("/") != spec.name:
                self.api.rename(container_id, spec.name)
            self.api.update_container(
                container_id, restart_policy={"Name": spec.restart, "MaximumRetryCount": 0},
                **_limits(spec),
            )
        except docker.errors.APIError as err:
            raise ProviderError(f"cannot update {spec.name} on {self.host}: {_summary(err)}") from None

    def remove_container(self, container_id: str) -> None:
        import docker.errors

        try:
            self.api.stop(container_id, timeout=STOP_TIMEOUT)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            pass  # already stopped or stuck: removal with force below settles it
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            raise ProviderError(f"cannot remove container {container_id[:12]} on {self.host}: {_summary(err)}") from None

    def restart_container(self, container_id: str) -> None:
        import docker.errors

        try:
            self.api.restart(container_id, timeout=STOP_TIMEOUT)
        except docker.errors.APIError as err:
            raise ProviderError(f"cannot restart container {container_id[:12]} on {self.host}: {_summary(err)}") from None

    # Secrets -------------------------------------------------------------------------

    def _files(self) -> SecretFiles:
        if self.secret_files is None:
            why = (f"the Docker engine (DOCKER_HOST={os.environ.get('DOCKER_HOST')}) runs on another machine; "
                   "declare that machine as an SSH host" if self.host == "local" else "no file transport to it")
            raise ProviderError(f"host {self.host}: berth cannot write secret files beside its engine: {why}")
        return self.secret_files

    def write_secret(self, parts: SecretParts, value: bytes) -> str:
        return self._files().write(parts, value)

    def remove_secret(self, parts: SecretParts) -> None:
        self._files().remove(parts)

    def container_state(self, container_id: str) -> dict:
        import docker.errors

        try:
            info = self.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return {"Status": "removed", "ExitCode": None, "RestartCount": 0}
        return info["State"] | {"RestartCount": info.get("RestartCount", 0)}

    def logs(self, container_id: str, tail: int) -> str:
        import docker.errors

        try:
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        except docker.errors.DockerException:
            return ""
        return raw.decode("utf-8", "replace")

    def stream_logs(self, container_id: str, tail: int | None, follow: bool) -> Iterator[str]:
        """The container's output as text chunks, the last `tail` lines first (all when
        None); with follow, new output as it comes until the container stops."""
        import docker.errors

        try:
            chunks = self.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=follow,
                                   tail="all" if tail is None else tail)
            for chunk in chunks:
                yield chunk.decode("utf-8", "replace")
        except docker.errors.NotFound:
            raise ProviderError(f"container {container_id[:12]} no longer exists on {self.host}") from None
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot read the logs of {container_id[:12]}: {_summary(err)}") from None

    # Probes --------------------------------------------------------------------------

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        if path is None:
            try:
                sock = socket.create_connection((self.probe_address, port), timeout=timeout)
            except OSError as err:
                return False, f"TCP connect: {err.strerror or err}"
            with sock:
                sock.settimeout(TCP_HOLD)
                return tcp_verdict(sock.recv)
        conn = http.client.HTTPConnection(self.probe_address, port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": "berth-probe"})
            status = conn.getresponse().status
            return 200 <= status < 300, f"HTTP {status}"
        except (OSError, http.client.HTTPException) as err:
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            return False, reason.lower() if isinstance(err, OSError) else reason
        finally:
            conn.close()

    def run_in(self, container_id: str, command: list[str], files: dict[str, bytes] | None = None) -> tuple[int, str]:
        """Run command inside a running container (docker exec), after copying files
        (path: content, mode 0600) into it: (exit code, its output). ProviderError when
        the container is not running."""
        import docker.errors

        try:
            if files:
                self.api.put_archive(container_id, "/", _tar(files))
            exec_id = self.api.exec_create(container_id, command)["Id"]
            output = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.DockerException as err:
            raise ProviderError(f"cannot run {command[0]} in container {container_id[:12]} on {self.host}: "
                                f"{_summary(err)}") from None
        return code if code is not None else -1, output.decode("utf-8", "replace")

    # Facts --------------------------------------------------------------------------

    def gpus(self) -> tuple:
        """The GPUs of the machine berth runs on (the local engine's, as nvidia-smi says)."""
        from providers.gpus import local_gpus

        return local_gpus()

    def docker_version(self) -> str:
        import docker.errors

        try:
            return self.api.version().get("Version", "?")
        except docker.errors.DockerException as err:
            raise ProviderError(f"host {self.host}: cannot read the Docker version: {_summary(err)}") from None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._api is not None:
            try:
                self._api.close()
            except Exception:
                pass


def _tar(files: dict[str, bytes]) -> bytes:
    """An archive of files by absolute path, for put_archive at /."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _observed(c: dict[str, Any]) -> ObservedContainer:
    return ObservedContainer(
        id=c["Id"],
        name=(c.get("Names") or ["/"])[0].lstrip("/"),
        state=c.get("State", ""),
        image_id=c.get("ImageID", ""),
        labels=c.get("Labels") or {},
        host_ports=tuple(sorted({p["PublicPort"] for p in c.get("Ports") or () if p.get("PublicPort")})),
    )


def _devices(spec: ContainerSpec) -> dict[str, Any]:
    """The GPUs placement assigned, as `docker run --gpus '"device=0,1"'` asks for them."""
    if not spec.gpus:
        return {}
    import docker.types

    return {"device_requests": [docker.types.DeviceRequest(
        driver="nvidia", device_ids=list(spec.gpus), capabilities=[["gpu"]])]}


def observed_limits(host_config: dict[str, Any]) -> dict[str, Any]:
    """A container's limits as berth records them, from its HostConfig: cpus from
    NanoCpus (`docker update --cpus`) or CpuQuota/CpuPeriod (how berth sets them), memory
    in bytes; None where unlimited."""
    nano = host_config.get("NanoCpus") or 0
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 0
    cpus = nano / 1e9 if nano else (quota / (period or CPU_PERIOD) if quota > 0 else None)
    memory = host_config.get("Memory") or None
    return {"cpus": cpus, "memory": memory}


def _limits(spec: ContainerSpec) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if spec.memory is not None:
        limits |= {"mem_limit": spec.memory, "memswap_limit": -1}
    if spec.cpus is not None:
        limits |= {"cpu_period": CPU_PERIOD, "cpu_quota": int(spec.cpus * CPU_PERIOD)}
    return limits


def _split_ref(ref: str) -> tuple[str, str | None]:
    """docker-py wants repository and tag (or digest) apart."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    name, _, tag = ref.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return ref, "latest"


def local_engine(secrets_root: Path | None = None) -> DockerEngine:
    """The engine berth runs beside, as the docker CLI would find it (DOCKER_HOST).
    secrets_root: where secret files go on this machine (the session decides; see
    providers.secret_files); None, or an engine on another machine, leaves it without."""
    from providers.secret_files import LocalSecretFiles

    base_url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def connect() -> Any:
        import docker

        try:
            return docker.from_env(timeout=900)
        except docker.errors.DockerException as err:
            raise ProviderError(
                f"cannot reach the local Docker engine ({base_url}): {_summary(err)}. "
                "Is dockerd running? (scripts/setup.sh starts one)"
            ) from None

    tls = bool(os.environ.get("DOCKER_TLS_VERIFY"))
    http = EngineHTTP(base_url) if EngineHTTP.supports(base_url, tls) else None
    url = urlparse(base_url)
    probe_address = url.hostname if url.scheme in ("tcp", "http", "https") and url.hostname else "127.0.0.1"
    remote = url.scheme in ("tcp", "http", "https", "ssh") and url.hostname not in (None, "localhost", "127.0.0.1", "::1")
    return DockerEngine("local", None, probe_address, connect=connect, http=http,
                        secret_files=None if remote or secrets_root is None else LocalSecretFiles(secrets_root))


class _PortTaken(Exception):
    """The port berth picked for a container was taken between its check and the start."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
