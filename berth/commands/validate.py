"""`berth validate`: the stack file(s) alone, as `terraform validate` checks a
configuration: every file, key, value and cross-reference berth can judge without a
host or a secret's value. No host is contacted, no secret is read, no state is opened,
so CI can run it with none of them. Exit 0 when valid, 1 when not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from berth.commands import EXIT_ERROR, EXIT_OK

FORMAT_VERSION = 1


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check the stack file alone: no host contacted, no secret read")
    validate.add_argument("-f", "--file", metavar="PATH",
                          help="stack file, or a directory holding berth.toml (default: ./berth.toml)")
    validate.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    validate.add_argument("--no-color", action="store_true", help="plain output, no colour")
    validate.set_defaults(run=cmd_validate)


def cmd_validate(args: argparse.Namespace, ui: Any) -> int:
    from berth.stackfile.load import load_stack
    from planner.diagnostics import DiagnosticsError

    try:
        stack = load_stack(args.file, getattr(args, "environment", None))
    except DiagnosticsError as err:
        if not args.json:
            raise  # rendered as every other command renders them: file:line: key: message
        print(json.dumps({"format_version": FORMAT_VERSION, "valid": False,
                          "errors": [_diagnostic(d) for d in err.diagnostics]}, indent=2))
        return EXIT_ERROR
    notes = [f"app {app.name}: ignored {entry}" for app in stack.apps.values() for entry in app.ignored]
    if args.json:
        print(json.dumps({"format_version": FORMAT_VERSION, "valid": True, "stack": stack.name, "file": stack.file,
                          "apps": list(stack.apps), "hosts": sorted({app.host for app in stack.apps.values()}),
                          "secrets": sorted(stack.secrets), "notes": notes, "errors": []}, indent=2))
        return EXIT_OK
    for note in notes:
        ui.say(f"Note: {note}", "yellow")
    apps = len(stack.apps)
    ui.say(f"Success! {stack.file} is valid: stack {stack.name}, {apps} app{'s' if apps != 1 else ''}.", "green")
    return EXIT_OK


def _diagnostic(d: Any) -> dict[str, Any]:
    return {"message": d.summary, "file": d.file, "key": d.key, "line": d.line, "detail": d.detail or None,
            "severity": d.severity}
