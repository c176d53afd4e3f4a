"""The two consoles (stdout, stderr): rich on a terminal, plain writes otherwise.

Text is always printed with markup off: addresses like `container[0]` must never be
read as rich markup. When a stream is not a terminal (pipes, CI logs, --json users)
rich is not even imported: plain output needs none of it, and it costs 25 ms.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO


class PlainConsole:
    """The part of rich's Console berth uses, for streams that are not terminals."""

    is_terminal = False
    color_system = None

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def print(self, text: str = "", style: str | None = None, markup: bool = False, end: str = "\n") -> None:
        self.stream.write(f"{text}{end}")
        self.stream.flush()


@dataclass
class Consoles:
    out: Any
    err: Any

    def say(self, text: str = "", style: str | None = None, *, err: bool = False) -> None:
        (self.err if err else self.out).print(text, style=style, markup=False)

    @property
    def is_terminal(self) -> bool:
        return bool(self.out.is_terminal)


def _console(stream: TextIO, plain: bool) -> Any:
    forced = bool(os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE"))
    if not (forced or stream.isatty()):
        return PlainConsole(stream)
    from rich.console import Console

    kwargs: dict[str, Any] = {"highlight": False, "soft_wrap": True, "emoji": False, "file": stream}
    if plain:
        kwargs["color_system"] = None
    return Console(**kwargs)


def make_consoles(no_color: bool) -> Consoles:
    plain = no_color or "NO_COLOR" in os.environ
    return Consoles(out=_console(sys.stdout, plain), err=_console(sys.stderr, plain))
