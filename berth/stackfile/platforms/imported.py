"""What a platform reader hands back (Imported: an app's fields, its name, its directory), and
the small rules the Cerebrium and Truss readers share: reading the file, naming the app."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.stackfile.models import shown
from berth.stackfile.source import Source, fail
from planner.desired import name_problem


@dataclass
class Imported:
    """A platform file read into an app's fields (planner.desired.AppConfig keywords,
    without `name`), the name it gives itself, and where its files are."""

    fields: dict[str, Any]
    name: str | None  # Cerebrium deployment.name / Truss model_name, as written
    directory: Path  # the app directory: the file's own directory
    app: str = ""  # the app's name in the stack (and of its build directory)
    # The key path each AppConfig field was read from (("hardware", "cpu") for cpus), for
    # problems found when the app is made; a field not here is the file's as a whole.
    keys: dict[str, tuple[str | int, ...]] = field(default_factory=dict)

    def key_of(self, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
        """The key path of an AppConfig field's loc (("env", "A") -> environment_variables.A)."""
        if not loc or str(loc[0]) not in self.keys:
            return ()
        return (*self.keys[str(loc[0])], *loc[1:])


def read_text(file: Path, shown_as: str) -> str:
    """The platform file's text; one that cannot be read stops here."""
    try:
        return file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read: {getattr(err, 'strerror', None) or err}", file=shown_as)


def sanitised_name(text: str) -> str:
    """A stack or app name (lowercase letters, digits, - and _) made from a platform's name."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")


def app_name(name: str | None, directory: Path) -> str:
    """The name a platform file's app (and single-file stack) goes by: the name the file
    gives, else its directory's, made into a valid name ("" when neither makes one)."""
    return sanitised_name(name or "") or sanitised_name(directory.name)


def is_set(value: Any) -> bool:
    """Whether a written value asks for anything (empty tables, lists and false do not)."""
    return value not in (None, "", [], {}, False)


def check_app_name(imported: Imported, source: Source) -> None:
    """The app's name is one berth can make container, image and file names of (its
    build directory is .berth/build/APP): refused before anything is staged."""
    problem = name_problem(imported.app) if imported.app else None
    if problem:
        source.error(imported.keys.get("name", ()), f"the app would be named {shown(imported.app)}, whose {problem}; "
                     "give it a shorter name")
