"""One docker save streamed to several hosts (providers.image_spool), on plain bytes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from providers.image_spool import SavedImages

DATA = [bytes([i]) * 1000 for i in range(50)]


def slow(chunks, pause=0.005):
    for chunk in chunks:
        time.sleep(pause)
        yield chunk


def test_readers_that_join_while_it_is_written_or_after_all_get_every_byte_from_one_save():
    saves, calls = SavedImages(), []

    def save():
        calls.append(1)
        return slow(DATA)

    got: list[bytes] = []
    spools = []

    def read(delay: float) -> None:
        time.sleep(delay)
        spool = saves.open("sha256:x", save)
        spools.append(spool)
        got.append(b"".join(spool.stream()))
        saves.release("sha256:x", spool)

    threads = [threading.Thread(target=read, args=(d,)) for d in (0, 0.01, 0.05)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == [b"".join(DATA)] * 3 and calls == [1], "three readers, one save"
    assert not os.path.exists(spools[0].path), "the last reader's release drops the spool"


def test_a_save_that_fails_fails_every_reader_and_the_next_open_saves_again():
    saves = SavedImages()

    def broken():
        yield b"half"
        raise OSError("engine went away")

    spool = saves.open("sha256:y", broken)
    with pytest.raises(OSError, match="engine went away"):
        b"".join(spool.stream())
    with pytest.raises(OSError):
        spool.wait_done()
    saves.release("sha256:y", spool)
    again = saves.open("sha256:y", lambda: iter([b"whole"]))
    assert b"".join(again.stream()) == b"whole"
