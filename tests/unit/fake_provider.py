"""FakeHost: an in-memory Docker host that satisfies providers.base.Provider structurally.

It keeps what a host keeps (containers with labels, state, published ports and the spec
they were run from; images with tags, digests and labels; secret files) and answers as
the Docker engine does where the planner relies on it:
- run_container (create_container, then start_container) needs the image on the
  host, refuses a memory limit under Docker's 6 MB at create, takes a leftover container of the same
  stack off its name (another stack's is refused), and a fixed host port that a running
  container already holds fails the start, leaving the container created (as Docker
  does); with host_port None a free port is picked and inspect_container shows it;
- build_image with the labels of an image the host has only tags it; ensure_image pulls
  what the host lacks (refs in `unpullable` fail); remove_image untags and drops an
  image with its last tag; removing what is absent is no error;
- probe passes once a running container publishes the port, unless its app is in
  `never_ready` (then it answers HTTP 503 until the caller gives up).

Tests drive it from outside: `never_ready`, `fail_start` (an app's new containers
are created but fail to start), `fail_at` (the Nth change to the host raises
ProviderError before it happens), and changes behind berth's back (remove_behind_berth,
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
from typing import Any, Iterator

from providers.types import (
    LABEL_ADDRESS,
    LABEL_APP,
    LABEL_STACK,
    ContainerSpec,
    Observation,
    ObservedContainer,
    ObservedImage,
    Progress,
    ProviderError,
    SecretParts,
    normalize_ref,
)

PICKED_PORTS = range(32768, 61000)


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
        self.never_ready: set[str] = set()  # app names whose probe never passes
        self.unpullable: set[str] = set()  # refs (normalised) a pull of fails
        self.fail_start: set[str] = set()  # app names whose new containers are created but fail to start
        self.fail_at: int | None = None  # the Nth change (1-based) raises ProviderError
        self.refuse_create: str | None = None  # the engine refuses every create so (a config it rejects)
        self.gpu_list: tuple = ()  # providers.gpus.Gpu values, as nvidia-smi would list them
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

    def observe(self, stack: str, secrets: bool = True) -> Observation:
        with self._lock:
            self.log.append(("observe", stack))
            return Observation(
                host=self.host,
                containers=tuple(c.observed() for c in self.stack_containers(stack)),
                images=tuple(i.observed() for i in self.images.values()),
                secrets=tuple(sorted((app, name) for s, app, name in self.secret_files if s == stack)) if secrets else (),
            )

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

    def container_state(self, container_id: str) -> dict:
        with self._lock:
            container = self.containers.get(container_id)
            if container is None:
                return {"Status": "removed", "ExitCode": None, "RestartCount": 0}
            return self._state(container)

    def logs(self, container_id: str, tail: int) -> str:
        return ""

    def stream_logs(self, container_id: str, tail: int | None, follow: bool) -> Iterator[str]:
        return iter(())

    def probe(self, port: int, path: str | None, timeout: float) -> tuple[bool, str]:
        with self._lock:
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

    def docker_version(self) -> str:
        return "fake"

    def close(self) -> None:
        self.closed = True

    # -- inside ----------------------------------------------------------------------------

    def _change(self, operation: str, subject: str) -> None:
        """Log one change to the host; the fail_at-th raises before it is made."""
        self.changes_made += 1
        if self.fail_at == self.changes_made:
            self.log.append(("failed", f"{operation} {subject}"))
            raise ProviderError(f"host {self.host}: {operation} {subject} failed (injected)")
        self.log.append((operation, subject))

    def _created(self, spec: ContainerSpec) -> FakeContainer:
        """A container made from spec, not started (Docker refuses a memory limit under 6 MB here)."""
        image = self._image(spec.image)
        if image is None:
            raise ProviderError(f"cannot create {spec.name} on {self.host}: No such image: {spec.image}")
        if self.refuse_create is not None:
            raise ProviderError(f"cannot create {spec.name} on {self.host}: {self.refuse_create}")
        if spec.memory is not None and spec.memory < 6 * 2**20:
            raise ProviderError(f"cannot create {spec.name} on {self.host}: Minimum memory limit allowed is 6MB")
        holder = next((c for c in self.containers.values() if c.name == spec.name), None)
        if holder is not None:
            if holder.spec.labels.get(LABEL_STACK) != spec.labels.get(LABEL_STACK):
                raise ProviderError(f"a container named {spec.name} already exists on {self.host} "
                                    "and berth does not manage it")
            del self.containers[holder.id]
        port = spec.host_port
        if port is None and spec.network_mode != "host":
            used = {c.host_port for c in self.containers.values()}
            port = next(p for p in PICKED_PORTS if p not in used)
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
        container.state, container.started = "running", True

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

