"""The stackfile entry point: find_stack_file (which file `-f PATH` names) and load_stack (that
file as a planner.desired.Stack), whichever of berth.toml, cerebrium.toml or config.yaml it is."""

from __future__ import annotations

from pydantic import ValidationError

from berth.stackfile import berth_toml
from berth.stackfile.files import file_format, find_stack_file, shown_path
from berth.stackfile.source import summary
from planner.desired import Stack
from planner.diagnostics import Diagnostic, DiagnosticsError

__all__ = ["find_stack_file", "load_stack"]


def load_stack(path: str | None, environment: str | None = None) -> Stack:
    """The Stack that the stack file at `path` (as for find_stack_file) asks for, in
    `environment` when one is named (berth.ENV.toml over it). A cerebrium.toml or Truss
    config.yaml on its own is a stack of one app. Bad input is raised as one
    DiagnosticsError holding every problem found."""
    file = find_stack_file(path)
    try:
        if file_format(file) != "berth":
            if environment is not None:
                raise DiagnosticsError([Diagnostic(
                    f"environments (-e {environment}) lay berth.{environment}.toml over a berth.toml; "
                    f"{file.name} is not one: name it from a berth.toml app (from = \"{file.name}\")",
                    file=shown_path(file))])
            from berth.stackfile import platforms  # the platforms' formats: only stacks using them pay

            return platforms.stack_of_one(file)
        return berth_toml.load(file, environment)
    except ValidationError as err:
        # The readers report what planner.desired refuses at its key; this is the net for
        # a rule a reader has not placed: still the file and the rule, never a traceback.
        raise DiagnosticsError([Diagnostic(summary(error), file=shown_path(file))
                                for error in err.errors(include_url=False)]) from None
