"""Diagnostics: errors and warnings as values, with where they come from.

Every layer below the CLI reports problems as Diagnostic values (file, key path, line)
collected into a DiagnosticsError; only berth/ renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Diagnostic:
    summary: str
    severity: Literal["error", "warning"] = "error"
    file: str | None = None
    key: str | None = None  # dotted key path, "apps.web.port"
    line: int | None = None
    detail: str = ""

    @property
    def location(self) -> str:
        """`berth.toml:12: apps.web.port` — as much of it as is known."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.key:
            where = f"{where}: {self.key}" if where else self.key
        return where

    def __str__(self) -> str:
        text = f"{self.location}: {self.summary}" if self.location else self.summary
        return f"{text}\n  {self.detail}" if self.detail else text


@dataclass
class DiagnosticsError(Exception):
    """One or more errors found before anything was touched."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)
