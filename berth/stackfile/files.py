"""Which file is the stack file: the names `-f DIR` looks for, the one `-f PATH` names, its
format (berth, cerebrium, truss), and the path diagnostics show for it."""

from __future__ import annotations

import os
from pathlib import Path

from berth.stackfile.source import fail

STACK_FILE = "berth.toml"
# The files `-f DIR` looks for: berth's own stack file and the platforms' own formats.
CEREBRIUM_FILE = "cerebrium.toml"
TRUSS_FILE = "config.yaml"
STACK_FILES = (STACK_FILE, CEREBRIUM_FILE, TRUSS_FILE)


def find_stack_file(path: str | None) -> Path:
    """The stack file that `-f PATH` names: PATH itself, or, when it is a directory (None
    means the current one), the one of berth.toml, cerebrium.toml and config.yaml it
    holds; more than one is an error naming them. Returned absolute."""
    if path is None:
        return _file_in_directory(Path.cwd(), "the current directory", f" ({Path.cwd()})")
    given = Path(path).expanduser()
    if given.is_dir():
        given = _file_in_directory(given, f"directory {path}", "")
    elif not given.is_file():
        fail(f"stack file {path} not found")
    return Path(os.path.abspath(given))  # absolute and without "..", but symlinks kept


def _file_in_directory(directory: Path, named: str, where: str) -> Path:
    found = [name for name in STACK_FILES if (directory / name).is_file()]
    if not found:
        fail(f"no {STACK_FILE} in {named}{where} (nor {CEREBRIUM_FILE} or {TRUSS_FILE}); "
             "run berth beside one or pass -f PATH")
    if len(found) > 1:
        fail(f"{named} holds {' and '.join(found)}: pass -f with the one you mean")
    return Path(os.path.abspath(directory / found[0]))


def file_format(file: Path) -> str:
    """"berth", "cerebrium" or "truss", from the file's name: cerebrium.toml is
    Cerebrium's, any .yaml or .yml file Truss's, any other berth's own."""
    if file.name == CEREBRIUM_FILE:
        return "cerebrium"
    if file.suffix in (".yaml", ".yml"):
        return "truss"
    return "berth"


def shown_path(file: Path) -> str:
    """The file as diagnostics name it: relative to the working directory when the file
    is under it, else absolute."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)
