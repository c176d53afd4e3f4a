"""DiskStore.write parses the current state only when it is not the text this store last
wrote: an apply writes once per finished step, and parsing the whole state at each write
made a cold apply of N apps cost O(N^2) in validation. What another writer left is still
parsed, so serials still never go backwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from state.errors import StateError
from state.model import State
from state.store import DiskStore


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = DiskStore._parse

    def counting(self, text):
        seen.append(text)
        return real(self, text)

    monkeypatch.setattr(DiskStore, "_parse", counting)
    return seen


def test_writes_in_a_row_parse_nothing_they_wrote(tmp_path: Path, parses: list[str]):
    store = DiskStore(tmp_path / "s", "demo")
    state = State(stack="demo")
    for _ in range(5):
        state = store.write(state, note="apply")
    assert state.serial == 5
    assert parses == []
    assert store.read().serial == 5


def test_a_write_after_another_writer_parses_what_it_left(tmp_path: Path, parses: list[str]):
    mine, theirs = DiskStore(tmp_path / "s", "demo"), DiskStore(tmp_path / "s", "demo")
    state = mine.write(State(stack="demo"), note="apply")
    other = theirs.write(theirs.read().model_copy(update={"serial": 7}), note="state push")
    assert other.serial == 7
    parses.clear()
    assert mine.write(state, note="apply").serial == 8  # from theirs, not from its own 1
    assert len(parses) == 1


def test_a_corrupt_state_left_by_another_writer_is_still_refused(tmp_path: Path):
    mine = DiskStore(tmp_path / "s", "demo")
    state = mine.write(State(stack="demo"), note="apply")
    mine._open(create=False).set("state", "{not json")
    with pytest.raises(StateError, match="corrupt"):
        mine.write(state, note="apply")
