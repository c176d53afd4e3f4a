"""Where a key sits in TOML text, for diagnostics: tomllib gives values but no positions, so
a small scanner finds the line a key path starts on.

A small line scanner, not a TOML parser: it knows [table] and [[array]] headers, dotted
and quoted keys (apps.web.port = 1, env."A.B" = 1), one-line inline tables
(build = { context = "." }), and skips over multi-line arrays and strings so that their
contents are not mistaken for keys. A path it cannot place falls back to the nearest
enclosing table or key it saw, else None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

KeyPath = tuple[str, ...]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_PART = re.compile(rf"{_BARE}|{_BASIC}|{_LITERAL}")
_KEY = rf"(?:{_PART.pattern})(?:\s*\.\s*(?:{_PART.pattern}))*"
_HEADER = re.compile(rf"\s*\[\[?\s*({_KEY})\s*\]\]?")
_ASSIGN = re.compile(rf"\s*({_KEY})\s*=")


def find_line(text: str, path: Sequence[str]) -> int | None:
    """The 1-based line of `path` in `text`, else of its nearest enclosing key that
    appears, else None."""
    explicit, implicit = key_lines(text)
    for length in range(len(path), 0, -1):
        prefix = tuple(path[:length])
        line = explicit.get(prefix) or implicit.get(prefix)
        if line:
            return line
    return None


def too_deep_at(text: str, limit: int) -> int | None:
    """The first line where arrays and inline tables nest more than `limit` deep, else None."""
    scanner = _Scanner()
    for number, line in enumerate(text.splitlines(), start=1):
        scanner.feed(line, number)
        if scanner.deepest > limit:
            return number
    return None


def key_lines(text: str) -> tuple[dict[KeyPath, int], dict[KeyPath, int]]:
    """(explicit, implicit): the first line defining each key path, and for each path
    only implied by a longer one ([apps.web] implies apps) the first line implying it."""
    scanner = _Scanner()
    for number, line in enumerate(text.splitlines(), start=1):
        scanner.feed(line, number)
    return scanner.explicit, scanner.implicit


def _parts(key: str) -> KeyPath:
    return tuple(_unquote(part) for part in _PART.findall(key))


def _unquote(part: str) -> str:
    if part.startswith("'"):
        return part[1:-1]
    if part.startswith('"'):
        try:
            return json.loads(part)  # TOML's basic-string escapes are JSON's, near enough
        except ValueError:
            return part[1:-1]
    return part


@dataclass
class _Scanner:
    explicit: dict[KeyPath, int] = field(default_factory=dict)
    implicit: dict[KeyPath, int] = field(default_factory=dict)
    table: KeyPath = ()
    # one entry per open bracket: the key path of an inline table, None for an array
    # (tables inside arrays have no key path of their own)
    open: list[KeyPath | None] = field(default_factory=list)
    string: str | None = None  # the delimiter of an open multi-line string
    pending: KeyPath | None = None  # the key whose value comes next
    deepest: int = 0  # the most brackets open at once so far
    arrays: dict[KeyPath, int] = field(default_factory=dict)  # [[PATH]] tables seen so far, per path
    plain: KeyPath = ()  # the table's path without an array-of-tables index

    def feed(self, line: str, number: int) -> None:
        start = 0
        if not self.open and not self.string:
            header = _HEADER.match(line)
            if header:
                self.table = self.plain = _parts(header[1])
                self._record(self.table, number)
                if header[0].lstrip().startswith("[["):  # an array of tables: its Nth is PATH + ("N",)
                    index = self.arrays.get(self.table, 0)
                    self.arrays[self.table] = index + 1
                    self.table = (*self.table, str(index))
                    self._record(self.table, number)
                return
            start = self._key(line, 0, self.table, number)
        self._value(line, start, number)

    def _record(self, path: KeyPath, number: int) -> None:
        self.explicit.setdefault(path, number)
        for length in range(1, len(path)):
            self.implicit.setdefault(path[:length], number)

    def _key(self, line: str, at: int, prefix: KeyPath, number: int) -> int:
        """Read `key =` at `at` if there is one; return where its value starts."""
        match = _ASSIGN.match(line, at)
        if not match:
            self.pending = None
            return at
        self.pending = prefix + _parts(match[1])
        self._record(self.pending, number)
        if prefix == self.table and self.plain != self.table:  # also without the index, as before
            self._record(self.plain + _parts(match[1]), number)
        return match.end()

    def _value(self, line: str, at: int, number: int) -> None:
        """Walk a value's text, keeping track of brackets and strings across lines and
        recording the keys of inline tables."""
        i = at
        while i < len(line):
            if self.string:
                end = line.find(self.string, i)
                if end < 0:
                    return
                i, self.string = end + 3, None
                continue
            char = line[i]
            if line.startswith('"""', i) or line.startswith("'''", i):
                self.string = line[i : i + 3]
                i += 3
            elif char == '"':
                i = _after_basic_string(line, i)
            elif char == "'":
                end = line.find("'", i + 1)
                i = len(line) if end < 0 else end + 1
            elif char == "#":
                return
            elif char == "{":
                self.open.append(self.pending)
                self.deepest = max(self.deepest, len(self.open))
                i = self._key(line, i + 1, self.pending, number) if self.pending else i + 1
            elif char == ",":
                inline = self.open[-1] if self.open else None
                i = self._key(line, i + 1, inline, number) if inline else i + 1
            else:
                if char == "[":
                    self.open.append(None)
                    self.deepest = max(self.deepest, len(self.open))
                    self.pending = None
                elif char in "]}" and self.open:
                    self.open.pop()
                i += 1


_BASIC_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"?')  # a basic string's rest, through its closing quote


def _after_basic_string(line: str, start: int) -> int:
    """Where the basic string opened at `start` ends (one regex match: values may be megabytes)."""
    match = _BASIC_REST.match(line, start + 1)
    return match.end() if match else len(line)
