"""Image delivery to a host whose images are built elsewhere: built once on the
builder's engine (berth's own machine), then sent, only the layers the host lacks.

docker save on the builder (once per image, however many hosts: providers.image_spool),
docker load on each host, streamed; the archive filter and Docker's chain IDs are pure
functions, tested on plain data.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from providers.image_spool import saved_images
from providers.types import BuildOptions, Progress, ProviderError, summary

if TYPE_CHECKING:
    from providers.docker_engine import DockerEngine

CHUNK = 1 << 20
PROGRESS_EVERY = 1.0  # seconds between "sent N MB" progress lines


class ImageDelivery:
    """Builds for `engine` run on `builder()`'s engine and are sent to it (receive);
    a pull the host cannot make is answered from the builder's copy. Counts bytes
    sent (stats). Thread-safe: one image is sent once however many steps ask."""

    def __init__(self, engine: DockerEngine, builder: Callable[[], DockerEngine]) -> None:
        self._engine = engine
        self._builder = builder
        self._layers: set[str] | None = None
        self._locks_guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self.bytes_sent = 0

    def build(self, context: str, dockerfile: str, args: dict[str, str], tag: str,
              labels: dict[str, str], progress: Progress, options: BuildOptions | None = None) -> str:
        """Built on the builder's engine, once for every host: the context never travels
        (nor need the hosts have its base image); receive sends the result. (A build
        with options.on_host never comes here: DockerEngine builds it on the host.)"""
        return self._builder().build_image(context, dockerfile, args, tag, labels, progress, options)

    def after_failed_pull(self, ref: str, err: ProviderError, progress: Progress) -> str:
        """Where a pull failed on the host (no registry) and the builder has the image,
        it is sent from there; else the pull's error stands."""
        try:
            self._builder().api.inspect_image(ref)
        except Exception:  # noqa: BLE001 - not here either: the pull's error says why
            raise err from None
        progress(f"pull failed on {self._engine.host}; sending the local copy")
        return self.receive(ref, ref, progress)

    def receive(self, ref: str, tag: str, progress: Progress) -> str:
        """Make the builder's image `ref` present on the host, tagged `tag`: nothing is
        sent when the host has the image (by ID), and of a missing image only the layers
        the host lacks. Streams (docker save → docker load); returns the image ID.

        The send is retried as a whole when the connection drops (the transport's call):
        docker load refuses a half-sent archive, so the retry sends the saved archive
        again from its start; nothing is ever resumed."""
        engine = self._engine
        source = self._builder()
        image = source.api.inspect_image(ref)
        image_id = image["Id"]
        with self._lock_for("receive:" + image_id):
            if not engine.transport.call("inspect an image", self._has_image, image_id):
                engine.transport.call(f"send image {tag}", self._send, source, image, progress)
            else:
                progress(f"{engine.host} already has image {image_id[7:19]}: nothing sent")
            engine.tag_image(image_id, tag)
        return image_id

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _has_image(self, image_id: str) -> bool:
        import docker.errors

        try:
            self._engine.api.inspect_image(image_id)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _layer_chains(self) -> set[str]:
        """Chain IDs of every layer stack the host's images have (docker load skips those)."""
        if self._layers is None:
            api = self._engine.api
            chains: set[str] = set()
            for listed in api.images():
                layers = api.inspect_image(listed["Id"]).get("RootFS", {}).get("Layers") or []
                chains.update(chain_ids(layers))
            self._layers = chains
        return self._layers

    def _send(self, source: DockerEngine, image: dict, progress: Progress) -> None:
        present = self._layer_chains()
        wanted = chain_ids(image.get("RootFS", {}).get("Layers") or [])
        skip = [c for c in wanted if c in present]
        sent = [0]
        last = [time.monotonic()]

        def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for chunk in chunks:
                sent[0] += len(chunk)
                if time.monotonic() - last[0] >= PROGRESS_EVERY:
                    last[0] = time.monotonic()
                    progress(f"sent {_mb(sent[0])} to {self._engine.host}")
                yield chunk

        # One docker save per image however many hosts it goes to, spooled to disk (never
        # memory) and streamed to each as it is written (providers.image_spool).
        saves = saved_images(source)
        spool = saves.open(image["Id"], lambda: iter(source.api.get_image(image["Id"])))
        try:
            if skip:
                # Which tar members are which layers is known only from the archive's
                # manifest, at its end: the whole spool first, then the rest is sent.
                spool.wait_done()
                with open(spool.path, "rb") as whole:
                    try:
                        self._load(counted(filtered_image_tar(whole, present)))
                    except ProviderError as err:
                        # Leaving out present layers relies on docker load skipping layers it
                        # has (true of the classic image store berth is tested on); an engine
                        # that wants the whole archive (the containerd image store may) gets it.
                        progress(f"{self._engine.host} refused the archive without its present layers ({err}); "
                                 "sending it whole")
                        self._load(counted(spool.stream()))
            else:
                self._load(counted(spool.stream()))
        finally:
            saves.release(image["Id"], spool)
        self.bytes_sent += sent[0]
        self._layers = (self._layers or set()) | set(wanted)
        progress(f"sent {_mb(sent[0])} to {self._engine.host}"
                 + (f" ({len(skip)} of {len(wanted)} layers already there)" if skip else ""))

    def _load(self, body: Iterator[bytes]) -> None:
        import docker.errors

        try:
            for status in self._engine.api.load_image(body):
                if "error" in status:
                    raise ProviderError(f"docker load on {self._engine.host} failed: {status['error']}")
        except docker.errors.APIError as err:
            raise ProviderError(f"docker load on {self._engine.host} failed: {summary(err)}") from None


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Docker's chain ID of each layer prefix: chain[0] = diff[0],
    chain[i] = sha256(chain[i-1] + " " + diff[i])."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def filtered_image_tar(spool: Any, present_chains: set[str]) -> Iterator[bytes]:
    """The `docker save` archive in `spool` without the layer files whose chain ID the
    receiving engine has: docker load registers a layer only when its chain is missing,
    and never opens the file otherwise. Members are copied byte for byte."""
    spool.seek(0)
    with tarfile.open(fileobj=spool, mode="r:") as archive:
        members = archive.getmembers()
        manifest = json.load(archive.extractfile("manifest.json"))
        skip: set[str] = set()
        for entry in manifest:
            config = json.load(archive.extractfile(entry["Config"]))
            for chain, layer in zip(chain_ids(config["rootfs"]["diff_ids"]), entry["Layers"]):
                if chain in present_chains:
                    skip.add(layer)
        # A layer file another member links to must stay.
        skip -= {os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))
                 for m in members if m.issym()} | {m.linkname for m in members if m.islnk()}
    end = 0
    for member in members:
        start = member.offset
        end = member.offset_data + (-(-member.size // 512) * 512 if member.isreg() else 0)
        if member.name in skip:
            continue
        spool.seek(start)
        left = end - start
        while left:
            data = spool.read(min(CHUNK, left))
            if not data:
                raise ProviderError("the saved image archive ended early")
            left -= len(data)
            yield data
    yield b"\0" * 1024  # the end-of-archive marker


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
