"""What a platform reader hands back (Imported: an app's fields, its name, its directory), and
the small rules the Cerebrium and Truss readers share: reading the file, naming the app."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.stackfile.source import fail


@dataclass
class Imported:
    """A platform file read into an app's fields (planner.desired.AppConfig keywords,
    without `name`), the name it gives itself, and where its files are."""

    fields: dict[str, Any]
    name: str | None  # Cerebrium deployment.name / Truss model_name, as written
    directory: Path  # the app directory: the file's own directory
    app: str = ""  # the app's name in the stack (and of its build directory)


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
