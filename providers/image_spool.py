"""One `docker save` of an image, read once from the builder's engine and streamed to any
number of hosts: the first delivery to need it starts the save into a spool file, and
every delivery (that one included) reads the spool as it grows, so three hosts cost one
read of each layer and their sends run side by side (issue 22's delivery goal).

A delivery that must leave out layers the host has (filtered_image_tar) needs the whole
archive (its manifest is at the end): it waits for the spool to be complete. The spools
live in a private directory removed when the process ends; an image's spool is dropped
when its last reader finished, so a later delivery saves again rather than keep gigabytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from typing import Any, Callable, Iterator

CHUNK = 1 << 20


class Spool:
    """A file one writer fills from `chunks` while readers stream it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self.readers = 0
        self._cond = threading.Condition()

    def fill(self, chunks: Iterator[bytes]) -> None:
        try:
            with open(self.path, "ab") as out:  # made empty by SavedImages.open, before any reader
                for chunk in chunks:
                    out.write(chunk)
                    out.flush()
                    with self._cond:
                        self.size += len(chunk)
                        self._cond.notify_all()
        except BaseException as err:  # noqa: BLE001 - every reader hears it
            with self._cond:
                self.error = err
                self._cond.notify_all()
            return
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def wait_done(self) -> None:
        with self._cond:
            while not self.done and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def stream(self) -> Iterator[bytes]:
        """The archive's bytes from its start, as they are written."""
        position = 0
        with open(self.path, "rb") as source:
            while True:
                with self._cond:
                    while self.size <= position and not self.done and self.error is None:
                        self._cond.wait()
                    if self.error is not None:
                        raise self.error
                    available, finished = self.size - position, self.done
                if available == 0 and finished:
                    return
                data = source.read(min(CHUNK, available))
                position += len(data)
                yield data


class SavedImages:
    """The spools of one builder engine, by image ID."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._spools: dict[str, Spool] = {}

    def open(self, image_id: str, save: Callable[[], Iterator[bytes]]) -> Spool:
        """The image's spool, its save started by the first to ask; the caller is a reader
        until it calls release."""
        with self._lock:
            spool = self._spools.get(image_id)
            if spool is None or spool.error is not None:
                if self._dir is None:
                    self._dir = tempfile.mkdtemp(prefix="berth-images-")
                    weakref.finalize(self, shutil.rmtree, self._dir, True)
                spool = Spool(os.path.join(self._dir, image_id.replace(":", "-") + ".tar"))
                open(spool.path, "wb").close()  # there for every reader before the save's first byte
                self._spools[image_id] = spool
                threading.Thread(target=spool.fill, args=(save(),), name="berth-image-save", daemon=True).start()
            spool.readers += 1
            return spool

    def release(self, image_id: str, spool: Spool) -> None:
        with self._lock:
            spool.readers -= 1
            if spool.readers == 0 and (spool.done or spool.error is not None) and self._spools.get(image_id) is spool:
                del self._spools[image_id]
                try:
                    os.unlink(spool.path)
                except OSError:
                    pass


_BY_ENGINE: weakref.WeakKeyDictionary[Any, SavedImages] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def saved_images(engine: Any) -> SavedImages:
    """The spools shared by every delivery from `engine` (the builder)."""
    with _GUARD:
        found = _BY_ENGINE.get(engine)
        if found is None:
            found = _BY_ENGINE[engine] = SavedImages()
        return found
