"""`berth logs` options on plain data: --since, merging replicas in time order, --grep
on redacted text."""

from __future__ import annotations

import argparse
import io
import re
from contextlib import redirect_stdout

import pytest

from berth.commands.logs import _merged, _shower, since_epoch, split_stamp


def test_since_takes_durations_and_rfc3339_times():
    assert since_epoch("10m", now=10_000) == 10_000 - 600
    assert since_epoch("1h30m", now=10_000) == 10_000 - 5400
    assert since_epoch("2d", now=200_000) == 200_000 - 172_800
    assert since_epoch("2026-12-01T10:00:00Z") == 1_796_119_200
    assert since_epoch("2026-12-01T10:00:00") == 1_796_119_200  # no zone: UTC
    for bad in ("10", "ten minutes", "5w", "1h30"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a duration like 10m"):
            since_epoch(bad)


def test_replicas_are_merged_in_the_engines_time_order_and_the_watcher_comes_last():
    a = iter(["2026-12-01T10:00:00.000000002Z a first\n2026-12-01T10:00:03Z a third\n"])
    b = iter(["2026-12-01T10:00:00.1Z b second\n", "2026-12-01T10:00:04.5Z b fourth\n"])
    watcher = iter(["watcher said\n"])
    out = io.StringIO()
    with redirect_stdout(out):
        _merged([("[a/0@local] ", a), ("[watcher@local] ", watcher), ("[b/1@local] ", b)],
                _shower(lambda text: text, None, False))
    assert out.getvalue().splitlines() == [
        "[a/0@local] a first", "[b/1@local] b second", "[a/0@local] a third", "[b/1@local] b fourth",
        "[watcher@local] watcher said"]


def test_grep_matches_the_redacted_text_and_timestamps_are_kept_only_when_asked():
    redact = lambda text: text.replace("hunter2", "(secret)")  # noqa: E731
    show = _shower(redact, re.compile("token"), False)
    assert show("", "2026-12-01T10:00:00Z token=hunter2") == "token=(secret)\n"
    assert show("", "2026-12-01T10:00:00Z nothing here") is None
    assert _shower(redact, re.compile("hunter2"), False)("", "token=hunter2") is None, \
        "a pattern can never find a secret's value"
    stamped = _shower(redact, None, True)("[x] ", "2026-12-01T10:00:00.5Z up")
    assert stamped == "[x] 2026-12-01T10:00:00.5Z up\n"
    assert split_stamp("no stamp here") == ("", "no stamp here")
