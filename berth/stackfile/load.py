"""The stackfile entry point: find_stack_file (which file `-f PATH` names) and load_stack (that
file as a planner.desired.Stack), whichever of berth.toml, cerebrium.toml or config.yaml it is."""

from __future__ import annotations

from berth.stackfile import berth_toml
from berth.stackfile.files import file_format, find_stack_file
from planner.desired import Stack

__all__ = ["find_stack_file", "load_stack"]


def load_stack(path: str | None) -> Stack:
    """The Stack that the stack file at `path` (as for find_stack_file) asks for. A
    cerebrium.toml or Truss config.yaml on its own is a stack of one app. Bad input is
    raised as one DiagnosticsError holding every problem found."""
    file = find_stack_file(path)
    if file_format(file) != "berth":
        from berth.stackfile import platforms  # the platforms' formats: only stacks using them pay

        return platforms.stack_of_one(file)
    return berth_toml.load(file)
