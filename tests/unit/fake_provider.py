"""FakeHost: an in-memory Docker host that satisfies providers.base.Provider structurally.

It keeps what a host keeps (containers with labels, state, published ports and the spec
they were run from; images with tags, digests and labels; secret files) and answers as
the Docker engine does where the planner relies on it:
- run_container (create_container, then start_container) needs the image on the
  host, refuses a memory limit under Docker's 6 MB at create, takes a leftover container of the same
  stack off its name (another stack's is refused), and a fixed host port that a running
  container already holds fails the start, leaving the container created (as Docker
  does); with host_port None a free port is picked and inspect_container shows it; a
  container given a GPU that a running one holds fails its start (out of GPU memory);
- build_image with the labels of an image the host has only tags it; ensure_image pulls
  what the host lacks (refs in `unpullable` fail); remove_image untags and drops an
  image with its last tag; removing what is absent is no error;
- probe passes once a running container publishes the port, unless its app is in
  `never_ready` (then it answers HTTP 503 until the caller gives up).

Tests drive it from outside: `never_ready`, `fail_start` (an app's new containers
are created but fail to start), `crash` (an app's new containers start, then exit
with the log given), `fail_at` (the Nth change to the host raises ProviderError before
it happens), `kill_at` (berth is killed there: Killed, a BaseException, from then on), and changes behind berth's back (remove_behind_berth,
stop_behind_berth, rename_behind_berth, update_behind_berth). `log` lists every change made, in order, as (operation, subject).

Not modelled: builds reading their context, image delivery between hosts, import's full
inspect, logs (empty), commands run in containers (so no gateway or watcher). GPUs are
what the test gives (`gpu_list`). Thread-safe: the apply walk calls it from worker threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from providers.types import (
    LABEL_ADDRESS,
    LABEL_APP,
    LABEL_STACK,
    ContainerSpec,
    Observation,
    ObservedVolume,
    ObservedContainer,
    ObservedImage,
    Progress,
    ProviderError,
    SecretParts,
    normalize_ref,
)

PICKED_PORTS = range(32768, 61000)


class Killed(BaseException):
    """berth was killed (kill -9) at this call: nothing after it runs."""


@dataclass
class FakeContainer:
    id: str
    spec: ContainerSpec
    image_id: str
    state: str = "running"  # running, exited, created
    host_port: int | None = None
    restarts: int = 0
    started: bool = False  # ever started (fail_start fails only a first start)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return self.spec.labels.get(LABEL_ADDRESS, "")

    def observed(self) -> ObservedContainer:
        return ObservedContainer(id=self.id, name=self.name, state=self.state, image_id=self.image_id,
                                 labels=dict(self.spec.labels),
                                 host_ports=(self.host_port,) if self.host_port else ())


@dataclass
class FakeImage:
    id: str
    tags: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def observed(self) -> ObservedImage:
        return ObservedImage(id=self.id, tags=tuple(self.tags), digests=tuple(self.digests), labels=dict(self.labels))


class FakeHost:
    """One host. `images` seeds what it has before berth runs: {ref: labels}. `builder`:
    the host whose engine builds this one's images (an SSH host's is the local one), which
    receive_image then copies here; None: this host builds its own."""

    def __init__(self, host: str = "local", images: dict[str, dict[str, str]] | None = None,
                 builder: FakeHost | None = None) -> None:
        self.host = host
        self.builder = builder
        self.containers: dict[str, FakeContainer] = {}
        self.images: dict[str, FakeImage] = {}
        self.build_options: dict[str, Any] = {}  # tag: the BuildOptions its build was given
        self.secret_files: dict[SecretParts, bytes] = {}
        self.volumes: dict[str, dict[str, str]] = {}  # Docker volume name -> labels
        self.paths: set[str] = set()  # host paths that exist (bind mounts' sources)
        self.weights: dict[str, str] = {}  # the weights cache: key -> source
        self.revisions: dict[str, str] = {}  # what a remote weights source resolves to (default "r1")
        self.never_ready: set[str] = set()  # app names whose probe never passes
        self.unpullable: set[str] = set()  # refs (normalised) a pull of fails
        self.fail_start: set[str] = set()  # app names whose new containers are created but fail to start
        self.fail_at: int | None = None  # the Nth change (1-based) raises ProviderError
        self.refuse_create: str | None = None  # the engine refuses every create so (a config it rejects)
        # app name -> log text: the app's new containers start, then exit at once with that log
        # (a server that dies on boot: a wrong command, a model it cannot load)
        self.crash: dict[str, str] = {}
        # The Nth change (1-based) kills berth there (kill -9): it raises Killed, which no
        # handler catches, and so does every later call; on_kill runs first (a test keeps
        # the state the store held at that moment, as a killed process leaves it).
        self.kill_at: int | None = None
        self.on_kill: Callable[[], None] | None = None
        self.on_change: Callable[[int], None] | None = None  # called with the count at each change
        self.killed = False
        self.gpu_list: tuple = ()  # providers.gpus.Gpu values, as nvidia-smi would list them
        self.cpu_total: int | None = 64  # the CPUs its engine reports (docker info's NCPU)
        self.memory_bytes: int | None = 256 * 1024**3  # the memory its engine reports (MemTotal)
        self.arch: str | None = "amd64"  # the architecture its engine reports (docker info)
        self.cpu_reads = 0
        self.log: list[tuple[str, str]] = []
        self.closed = False
        self.changes_made = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        for ref, labels in (images or {}).items():
            self._add_image(ref, labels)

    # -- what tests look at and do behind berth's back ------------------------------------

    def container_at(self, address: str) -> FakeContainer | None:
        found = [c for c in self.containers.values() if c.address == address]
        assert len(found) <= 1, f"{len(found)} containers at {address}"
        return found[0] if found else None

    def stack_containers(self, stack: str) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.spec.labels.get(LABEL_STACK) == stack]

    def tags(self) -> set[str]:
        return {t for image in self.images.values() for t in image.tags}

    def remove_behind_berth(self, address: str) -> None:
        container = self.container_at(address)
        assert container is not None, f"no container at {address}"
        del self.containers[container.id]

    def stop_behind_berth(self, address: str) -> None:
        container = self.container_at(address)
        assert container is not None, f"no container at {address}"
        container.state = "exited"

    def rename_behind_berth(self, address: str, name: str) -> None:
        """`docker rename`: the labels stay, the name changes."""
        container = self.container_at(address)
        assert container is not None, f"no container at {address}"
        container.spec = dataclasses.replace(container.spec, name=name)

    def update_behind_berth(self, address: str, **limits: object) -> None:
        """`docker update --cpus/--memory`: the limits change live, the labels stay."""
        container = self.container_at(address)
        assert container is not None, f"no container at {address}"
        container.spec = dataclasses.replace(container.spec, **limits)

    def image_for(self, ref: str) -> FakeImage | None:
        """The image a tag, digest reference or ID names, as Docker resolves it."""
        with self._lock:
            return self._image(ref)

    def ops(self, operation: str) -> list[str]:
        """The subjects of every logged change of one kind, in order."""
        return [subject for op, subject in self.log if op == operation]

    # -- the Provider protocol -------------------------------------------------------------

    def observe(self, stack: str, secrets: bool = True, weights: bool = False) -> Observation:
        with self._lock:
            self.log.append(("observe", stack))
            return Observation(
                host=self.host,
                containers=tuple(c.observed() for c in self.stack_containers(stack)),
                images=tuple(i.observed() for i in self.images.values()),
                secrets=tuple(sorted((app, name) for s, app, name in self.secret_files if s == stack)) if secrets else (),
                volumes=tuple(ObservedVolume(name, dict(labels)) for name, labels in sorted(self.volumes.items())
                              if labels.get(LABEL_STACK) == stack),
                weights=frozenset(self.weights) if weights else frozenset(),
            )

    @property
    def weights_cache(self) -> str:
        return f"/fake/{self.host}/weights"

    def put_weights(self, key: str, source: str, files: list, progress: Progress, previous: str | None = None) -> int:
        with self._lock:
            self._change("put_weights", source)
            if key in self.weights:
                return 0
            self.weights[key] = source
            return sum(f[2] for f in files)

    def fetch_weights(self, image: str, script: str, source: str, allow: list[str], ignore: list[str],
                      token: SecretParts | None, progress: Progress) -> str:
        import hashlib

        with self._lock:
            self._change("fetch_weights", source)
            if token is not None and token not in self.secret_files:
                raise ProviderError(f"host {self.host}: no secret file {'/'.join(token)} for the fetcher's token")
            revision = self.revisions.get(source, "r1")
            key = hashlib.sha256(repr((source, revision, sorted(allow), sorted(ignore))).encode()).hexdigest()
            self.weights[key] = source
            return key

    def containers_by_id(self, ids: list[str]) -> tuple[ObservedContainer, ...]:
        with self._lock:
            return tuple(self.containers[i].observed() for i in ids if i in self.containers)

    def container_limits(self, ids: list[str]) -> dict[str, dict]:
        with self._lock:
            return {i: {"cpus": self.containers[i].spec.cpus, "memory": self.containers[i].spec.memory}
                    for i in ids if i in self.containers}

    def inspect_container(self, ref: str) -> dict | None:
        """Only what the planner reads after a start: Id, Name, State, labels and ports."""
        with self._lock:
            container = self.containers.get(ref) or next((c for c in self.containers.values() if c.name == ref), None)
            if container is None:
                return None
            spec = container.spec
            ports = {f"{spec.port}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(container.host_port)}]} \
                if container.host_port else {}
            return {"Id": container.id, "Name": "/" + container.name, "Image": container.image_id,
                    "State": self._state(container), "Config": {"Labels": dict(spec.labels), "Image": spec.image},
                    "NetworkSettings": {"Ports": ports}, "ImageConfig": {}}

    @property
    def builds_here(self) -> bool:
        return self.builder is None

    def build_image(self, context: str, dockerfile: str, args: dict[str, str], tag: str,
                    labels: dict[str, str], progress: Progress, options: Any = None) -> str:
        if self.builder is not None and not getattr(options, "on_host", False):
            return self.builder.build_image(context, dockerfile, args, tag, labels, progress, options)
        with self._lock:
            self.build_options[tag] = options
            self._change("build", tag)
            same = next((i for i in self.images.values() if labels and i.labels == labels), None)
            if same is not None:
                progress(f"same content as {same.id[7:19]}: tagged, not rebuilt")
                self._tag(same, tag)
                return same.id
            return self._add_image(tag, dict(labels)).id

    def builder(self) -> Any:
        from providers.buildkit import Builder

        return Builder("buildkit", "/usr/bin/docker", "20.10.24")

    def ensure_image(self, ref: str, progress: Progress) -> str:
        with self._lock:
            found = self._image(ref)
            if found is not None:
                return found.id
            self._change("pull", ref)
            if normalize_ref(ref) in self.unpullable:
                raise ProviderError(f"image {ref} is not on host {self.host} and could not be pulled: not found")
            return self._add_image(ref, {}).id

    def receive_image(self, ref: str, tag: str, progress: Progress) -> str:
        """The builder's image `ref` copied here with its ID and labels (as delivery keeps
        the image ID), tagged `tag`."""
        if self.builder is None:
            found = self._image(ref)
            if found is None:
                raise ProviderError(f"host {self.host}: no such image {ref}")
            return found.id
        source = self.builder._image(ref)
        if source is None:
            raise ProviderError(f"host {self.builder.host}: no such image {ref} to send to {self.host}")
        with self._lock:
            self._change("receive", tag)
            image = self.images.get(source.id)
            if image is None:
                image = self.images[source.id] = FakeImage(id=source.id, labels=dict(source.labels))
            self._tag(image, tag)
            return image.id

    def tag_image(self, image_id: str, tag: str) -> None:
        with self._lock:
            self._change("tag", tag)
            image = self.images.get(image_id)
            if image is None:
                raise ProviderError(f"host {self.host}: no such image {image_id}")
            self._tag(image, tag)

    def remove_image(self, ref: str) -> None:
        with self._lock:
            self._change("remove_image", ref)
            image = self._image(ref)
            if image is None:
                return
            if ref == image.id:
                if not any(c.image_id == image.id for c in self.containers.values()):
                    del self.images[image.id]
                return
            wanted = normalize_ref(ref)
            image.tags = [t for t in image.tags if normalize_ref(t) != wanted]
            image.digests = [d for d in image.digests if normalize_ref(d) != wanted]
            if not image.tags and not image.digests:
                del self.images[image.id]

    def run_container(self, spec: ContainerSpec) -> str:
        with self._lock:
            self._change("run", spec.labels.get(LABEL_ADDRESS, spec.name))
            container = self._created(spec)
            self._start(container)
            return container.id

    def create_container(self, spec: ContainerSpec) -> str:
        with self._lock:
            self._change("create", spec.labels.get(LABEL_ADDRESS, spec.name))
            return self._created(spec).id

    def start_container(self, container_id: str, spec: ContainerSpec | None = None) -> None:
        with self._lock:
            container = self.containers.get(container_id)
            self._change("start", container.address if container else container_id)
            if container is None:
                raise ProviderError(f"cannot start container {container_id[:12]} on {self.host}: no such container")
            self._start(container)

    def stop_container(self, container_id: str) -> None:
        with self._lock:
            container = self.containers.get(container_id)
            self._change("stop", container.address if container else container_id)
            if container is not None:
                container.state = "exited"

    def update_container(self, container_id: str, spec: ContainerSpec) -> None:
        with self._lock:
            self._change("update", spec.labels.get(LABEL_ADDRESS, spec.name))
            container = self.containers.get(container_id)
            if container is None:
                raise ProviderError(f"cannot update {spec.name} on {self.host}: No such container: {container_id}")
            container.spec = dataclasses.replace(container.spec, name=spec.name, restart=spec.restart,
                                                 cpus=spec.cpus, memory=spec.memory)

    def remove_container(self, container_id: str) -> None:
        with self._lock:
            container = self.containers.get(container_id)
            self._change("remove", container.address if container else container_id)
            self.containers.pop(container_id, None)

    def restart_container(self, container_id: str) -> None:
        with self._lock:
            container = self.containers.get(container_id)
            self._change("restart", container.address if container else container_id)
            if container is None:
                raise ProviderError(f"cannot restart container {container_id[:12]} on {self.host}: no such container")
            container.state, container.restarts = "running", container.restarts + 1

    def write_secret(self, parts: SecretParts, value: bytes) -> str:
        with self._lock:
            self._change("write_secret", "/".join(parts))
            self.secret_files[parts] = value
            return self._secret_path(parts)

    def remove_secret(self, parts: SecretParts) -> None:
        with self._lock:
            self._change("remove_secret", "/".join(parts))
            self.secret_files.pop(parts, None)

    def create_volume(self, name: str, labels: dict[str, str]) -> str:
        with self._lock:
            self._change("create_volume", name)
            self.volumes.setdefault(name, dict(labels))
            return name

    def remove_volume(self, name: str) -> None:
        with self._lock:
            self._change("remove_volume", name)
            if any(m.named and m.source == name for c in self.containers.values() for m in c.spec.volumes):
                raise ProviderError(f"cannot remove volume {name} on {self.host}: volume is in use")
            self.volumes.pop(name, None)

    def ports_taken(self, stack: str) -> dict[int, tuple[str, str]]:
        with self._lock:
            self.log.append(("ports_taken", stack))
            return {c.host_port: (c.id, c.spec.name) for c in self.containers.values()
                    if c.state == "running" and c.host_port and c.spec.labels.get(LABEL_STACK) != stack}

    def missing_paths(self, paths: list[str]) -> list[str]:
        with self._lock:
            self.log.append(("missing_paths", " ".join(paths)))
            return [p for p in paths if p not in self.paths]

    def container_state(self, container_id: str) -> dict:
        with self._lock:
            self._alive()
            container = self.containers.get(container_id)
            if container is None:
                return {"Status": "removed", "ExitCode": None, "RestartCount": 0}
            return self._state(container)

    def logs(self, container_id: str, tail: int) -> str:
        with self._lock:
            container = self.containers.get(container_id)
            return self.crash.get(container.spec.labels.get(LABEL_APP, ""), "") if container else ""

    def stream_logs(self, container_id: str, tail: int | None, follow: bool, *, since: int | None = None,
                    timestamps: bool = False) -> Iterator[str]:
        return iter(())

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        with self._lock:
            self._alive()
            serving = next((c for c in self.containers.values() if c.state == "running" and c.host_port == port), None)
            if serving is None:
                return False, "connection refused"
            if serving.spec.labels.get(LABEL_APP) in self.never_ready:
                return False, "HTTP 503" if path else "TCP connect: closed at once (nothing listens in the container)"
            if ("ready", serving.address) not in self.log:
                self.log.append(("ready", serving.address))
            return True, "HTTP 200" if path else "TCP connect succeeded"

    def run_in(self, container_id: str, command: list[str], files: dict[str, bytes] | None = None) -> tuple[int, str]:
        with self._lock:
            # Only the gateway and the watcher run commands in containers; their admin
            # protocols are not modelled, so a stack with gateway_port fails here, at once.
            raise ProviderError(f"cannot run {command[0]} in container {container_id[:12]} on {self.host}: "
                                "the fake host runs no commands in containers")

    def gpus(self) -> tuple:
        """The host's GPUs (nvidia-smi on a real host)."""
        return self.gpu_list

    def cpu_count(self) -> int | None:
        with self._lock:
            self.cpu_reads += 1
            return self.cpu_total

    def memory_total(self) -> int | None:
        return self.memory_bytes

    def architecture(self) -> str | None:
        return self.arch

    def docker_version(self) -> str:
        return "fake"

    def close(self) -> None:
        self.closed = True

    # -- inside ----------------------------------------------------------------------------

    def _change(self, operation: str, subject: str) -> None:
        """Log one change to the host; the fail_at-th raises before it is made."""
        self._alive()
        self.changes_made += 1
        if self.on_change is not None:
            self.on_change(self.changes_made)
        if self.kill_at == self.changes_made:
            self.killed = True
            if self.on_kill is not None:
                self.on_kill()
            raise Killed(f"killed before {operation} {subject}")
        if self.fail_at == self.changes_made:
            self.log.append(("failed", f"{operation} {subject}"))
            raise ProviderError(f"host {self.host}: {operation} {subject} failed (injected)")
        self.log.append((operation, subject))

    def _alive(self) -> None:
        if self.killed:
            raise Killed("berth was killed")

    def revive(self) -> None:
        """The next berth run: calls answer again."""
        self.killed, self.kill_at, self.on_kill, self.on_change = False, None, None, None

    def _created(self, spec: ContainerSpec) -> FakeContainer:
        """A container made from spec, not started (Docker refuses a memory limit under 6 MB here)."""
        image = self._image(spec.image)
        if image is None:
            raise ProviderError(f"cannot create {spec.name} on {self.host}: No such image: {spec.image}")
        if self.refuse_create is not None:
            raise ProviderError(f"cannot create {spec.name} on {self.host}: {self.refuse_create}")
        if spec.memory is not None and spec.memory < 6 * 2**20:
            raise ProviderError(f"cannot create {spec.name} on {self.host}: Minimum memory limit allowed is 6MB")
        for mount in spec.volumes:
            if not mount.named and mount.source not in self.paths:
                raise ProviderError(f"cannot create {spec.name} on {self.host}: invalid mount config for type "
                                    f'"bind": bind source path does not exist: {mount.source}')
            if mount.named and mount.source not in self.volumes:
                # As Docker does: a missing named volume is made, unlabelled (berth's own
                # come first, from a create_volume step, labelled with the stack).
                self.log.append(("auto_volume", mount.source))
                self.volumes[mount.source] = {}
        holder = next((c for c in self.containers.values() if c.name == spec.name), None)
        if holder is not None:
            if holder.spec.labels.get(LABEL_STACK) != spec.labels.get(LABEL_STACK):
                raise ProviderError(f"a container named {spec.name} already exists on {self.host} "
                                    "and berth does not manage it")
            del self.containers[holder.id]
        port = spec.host_port
        if port is None and spec.network_mode != "host":
            used = {c.host_port for c in self.containers.values()}
            ports = range(spec.pick_ports[0], spec.pick_ports[1] + 1) if spec.pick_ports else PICKED_PORTS
            port = next(p for p in ports if p not in used)
        container = FakeContainer(id=self._new_id("ctr"), spec=spec, image_id=image.id, state="created",
                                  host_port=port if spec.network_mode != "host" else None)
        self.containers[container.id] = container
        return container

    def _start(self, container: FakeContainer) -> None:
        """Running, unless a running container holds its fixed host port, or its app is in
        fail_start and it never ran (a new container; an old one starts again)."""
        spec = container.spec
        if spec.labels.get(LABEL_APP) in self.fail_start and not container.started:
            raise ProviderError(f"cannot start {spec.name} on {self.host}: start refused (injected)")
        taken = any(c.state == "running" and c.host_port == container.host_port and c.host_port
                    for c in self.containers.values() if c is not container)
        if taken:
            raise ProviderError(f"cannot start {spec.name} on {self.host}: Bind for 0.0.0.0:{container.host_port} "
                                "failed: port is already allocated")
        # Docker would start it, but two model servers on one GPU run out of its memory.
        shared = sorted({g for c in self.containers.values() if c is not container and c.state == "running"
                         for g in c.spec.gpus} & set(spec.gpus))
        if shared:
            raise ProviderError(f"{spec.name} on {self.host}: CUDA out of memory: GPU {', '.join(shared)} is in "
                                "use by another running container")
        first = not container.started
        container.state, container.started = "running", True
        if first and spec.labels.get(LABEL_APP) in self.crash:
            container.state = "exited"  # it ran, then died

    def _state(self, container: FakeContainer) -> dict:
        return {"Status": container.state, "Running": container.state == "running",
                "ExitCode": 0 if container.state != "exited" else 1, "Restarting": False,
                "RestartCount": container.restarts}

    def _image(self, ref: str) -> FakeImage | None:
        if ref in self.images:
            return self.images[ref]
        wanted = normalize_ref(ref)
        return next((i for i in self.images.values()
                     if any(normalize_ref(r) == wanted for r in i.tags + i.digests)), None)

    def _add_image(self, ref: str, labels: dict[str, str]) -> FakeImage:
        image = FakeImage(id="sha256:" + self._new_id("image"), labels=labels)
        self.images[image.id] = image
        self._tag(image, ref)
        return image

    def _tag(self, image: FakeImage, ref: str) -> None:
        """A tag moves to this image (off any other); a digest reference is a digest."""
        kind = "digests" if "@" in ref else "tags"
        for other in self.images.values():
            if other is not image and kind == "tags":
                other.tags = [t for t in other.tags if normalize_ref(t) != normalize_ref(ref)]
        shown = normalize_ref(ref)  # as Docker lists them: busybox:latest, name@digest
        if shown not in getattr(image, kind):
            getattr(image, kind).append(shown)

    def _new_id(self, kind: str) -> str:
        return hashlib.sha256(f"{self.host}/{kind}/{next(self._ids)}".encode()).hexdigest()

    def _secret_path(self, parts: SecretParts) -> str:
        return "/fake/secrets/" + "/".join(parts)

