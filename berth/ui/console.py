"""The two consoles (stdout, stderr): coloured on a terminal, plain otherwise.

Text is always printed with markup off: addresses like `container[0]` must never be
read as rich markup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Consoles:
    out: Any
    err: Any

    def say(self, text: str = "", style: str | None = None, *, err: bool = False) -> None:
        (self.err if err else self.out).print(text, style=style, markup=False)

    @property
    def is_terminal(self) -> bool:
        return bool(self.out.is_terminal)


def make_consoles(no_color: bool) -> Consoles:
    from rich.console import Console

    kwargs: dict[str, Any] = {"highlight": False, "soft_wrap": True, "emoji": False}
    if no_color or "NO_COLOR" in os.environ:
        kwargs["color_system"] = None
    return Consoles(out=Console(**kwargs), err=Console(stderr=True, **kwargs))
