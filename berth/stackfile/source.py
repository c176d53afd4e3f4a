"""One file being read, in any format (berth.toml, cerebrium.toml, config.yaml), and the problems
found in it: key lines, located Diagnostics, and TOML's and pydantic's errors in users' words."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from berth.stackfile import locate
from berth.stackfile.environments import set_by_overlay
from berth.stackfile.models import shown
from planner.diagnostics import Diagnostic, DiagnosticsError

Loc = tuple[str | int, ...]
KeyLines = Callable[[Sequence[str | int]], int | None]  # a key path -> the line it starts on
M = TypeVar("M", bound=BaseModel)

MAX_DEPTH = 100  # nesting a stack file may hold (as yamlfile's)
MAX_BYTES = 1024 * 1024  # a stack file is a few KB (as yamlfile's)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_TYPE_WORDS = {
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
}


def toml_lines(text: str) -> KeyLines:
    """The key lines of TOML text: a list index has a line of its own only in an array
    of tables ([[apps.web.weights]]); elsewhere the list's key's line stands for it."""
    return lambda path: locate.find_line(text, [str(part) for part in path])


def quoted(key: str) -> str:
    """A key that is not bare, as the platform readers have always written it: in plain
    double quotes, not escaped (berth.toml's key paths use models.shown instead)."""
    return f'"{key}"'


@dataclass
class Source:
    """A file being read and the problems found in it so far. A platform file also
    collects what berth reads but cannot honour (`ignored`, one line each)."""

    file: Path
    shown: str  # the file as diagnostics name it
    text: str = ""
    lines: KeyLines | None = None  # None: scan `text` as TOML
    format: str = ""  # a platform's name ("Cerebrium", "Truss"); "" for berth.toml
    raw: Any = field(default_factory=dict)  # the parsed document
    prefix: Loc = ()  # keys every loc is under (Cerebrium's legacy "cerebrium.")
    quote: Callable[[str], str] = shown  # how a key path writes a key that is not bare
    problems: list[Diagnostic] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # An environment's file laid over this one (berth.stackfile.environments): a key it
    # sets is reported at its own file and line. `raw` is then the merged document, and
    # `base` this file's own.
    overlay: Source | None = None
    base: Any = None

    @property
    def origin(self) -> str:
        """The file as an app's origin names it: "cerebrium.toml (Cerebrium)"."""
        return f"{self.file.name} ({self.format})"

    def line(self, loc: Loc) -> int | None:
        return self._origin(loc)._own_line(loc)

    def _own_line(self, loc: Loc) -> int | None:
        path = list(self.prefix + loc)
        return self.lines(path) if self.lines is not None else toml_lines(self.text)(path)

    def _origin(self, loc: Loc) -> Source:
        """The file that sets the key at loc: this one, or the environment's over it."""
        if self.overlay is not None:
            if set_by_overlay(self.base or {}, self.overlay.raw, self.prefix + loc):
                return self.overlay
        return self

    def key(self, loc: Loc) -> str:
        return dotted(self.prefix + loc, self.quote)

    def table(self, *path: str) -> dict[str, Any]:
        """The table at `path` in the document as written, or {} where it is not a table."""
        value = self.raw
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value if isinstance(value, dict) else {}

    def error(self, loc: Loc, summary: str, detail: str = "") -> None:
        origin = self._origin(loc)
        self.problems.append(Diagnostic(summary=summary, file=origin.shown, key=self.key(loc) or None,
                                        line=origin._own_line(loc), detail=detail))

    def ignore(self, loc: Loc, why: str) -> None:
        """A key berth reads but cannot honour: shown in the plan, one line."""
        line = self.line(loc)
        where = f"{self.file.name}:{line}" if line else self.file.name
        self.ignored.append(f"{where}: {self.key(loc)}: {why}")

    def validated(self, model: type[M], data: Any, prefix: Loc) -> M | None:
        """`data` as `model`, or None with each of its problems recorded under `prefix`."""
        try:
            return model.model_validate(data)
        except ValidationError as err:
            for error in err.errors(include_url=False):
                loc = prefix + tuple(error["loc"])
                if error["type"] == "extra_forbidden":
                    self.unknown_key(loc, _keys_at(model, error["loc"][:-1]))
                else:
                    self.error(loc, summary(error))
            return None

    def built(self, model: type[M], fields: dict[str, Any], key: Callable[[Loc], Loc]) -> M | None:
        """`model(**fields)` (a planner.desired value, which holds what Docker and Linux
        refuse), or None with each problem recorded at the file's key for the field:
        `key` maps a field's loc (("cpus",), ("env", "A")) to the key path that set it."""
        try:
            return model(**fields)
        except ValidationError as err:
            for error in err.errors(include_url=False):
                inner = (error.get("ctx") or {}).get("key")  # the entry of a mapping field at fault
                self.error(key(tuple(error["loc"]) + ((inner,) if isinstance(inner, str) else ())), summary(error))
            return None

    def unknown_key(self, loc: Loc, known: list[str]) -> None:
        key = str(loc[-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            self.error(loc, f'unknown key; did you mean "{close[0]}"?')
        else:
            self.error(loc, "unknown key", detail=f"known keys here: {', '.join(known)}" if known else "")


def fail(summary: str, file: str | None = None, line: int | None = None) -> NoReturn:
    """Stop reading: a problem after which nothing else in the file can be trusted."""
    raise DiagnosticsError([Diagnostic(summary=summary, file=file, line=line)])


def raise_problems(problems: list[Diagnostic]) -> None:
    """All the problems found, in the order of their lines (unplaced ones last)."""
    if problems:
        raise DiagnosticsError(sorted(problems, key=lambda d: d.line or float("inf")))


def dotted(loc: Loc, quote: Callable[[str], str] = shown) -> str:
    """("apps", "web", "env", "A.B") -> apps.web.env."A.B"; list indices as [i]."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else quote(part)
            text += f".{key}" if text else key
    return text


def parse_toml(text: str, shown_as: str) -> dict[str, Any]:
    """The TOML document; a syntax error stops here, since nothing after it can be trusted."""
    if len(text) > MAX_BYTES:  # tomllib takes seconds per megabyte of one string
        fail(f"the file is larger than {MAX_BYTES // 2**20} MiB; a stack file this big is refused "
             "(large values belong in files: secrets, build contexts)", file=shown_as)
    too_deep = f"invalid TOML: nested too deeply (more than {MAX_DEPTH} levels of arrays and inline tables)"
    try:
        document = tomllib.loads(text)
    except RecursionError:  # tomllib recurses per level of arrays and inline tables
        fail(too_deep, file=shown_as, line=locate.too_deep_at(text, MAX_DEPTH))
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        position = _TOML_POSITION.search(message)
        line = int(position[1]) if position else None
        if position:
            message = f"{_TOML_POSITION.sub('', message)} at column {position[2]}"
        elif "end of document" in message:
            line = text.count("\n") + 1
            message = message.replace("(at end of document)", "at the end of the file").strip()
        fail(f"invalid TOML: {message}", file=shown_as, line=line)
    if text.count("[") + text.count("{") > MAX_DEPTH and (line := locate.too_deep_at(text, MAX_DEPTH)):
        fail(too_deep, file=shown_as, line=line)
    return document


def summary(error: Any) -> str:
    """A pydantic error in the words of a TOML file."""
    kind = error["type"]
    if kind == "missing":
        return "missing required key"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {shown(error['input'])}"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = f"expected {message.removeprefix('Input should be ')}, got {shown(error['input'])}"
    return message


def _keys_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys allowed in the table at `path` inside `model` (build's table, say)."""
    for part in path:
        field_info = model.model_fields.get(str(part))
        inner = _model_in(field_info.annotation) if field_info else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if found := _model_in(arg):
            return found
    return None
