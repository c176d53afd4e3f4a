"""`berth import ADDRESS CONTAINER`: adopt a container berth did not create."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_OK, common, locked, open_workspace


def register(commands: Any) -> None:
    imp = commands.add_parser("import", help="adopt an existing container (by name or ID) into state")
    common(imp)
    imp.add_argument("address", metavar="ADDRESS", help="app.NAME.container[I]@HOST, an app in the stack file")
    imp.add_argument("container", metavar="CONTAINER", help="the container's name or ID on that host")
    imp.set_defaults(run=cmd_import)


def cmd_import(args: argparse.Namespace, ui: Any) -> int:
    from planner.importing import adopt, container_address, desired_attributes

    address = container_address(args.address)
    key = str(address)
    workspace = open_workspace(args)
    try:
        desired = desired_attributes(workspace.context, address)
        with locked(workspace.store, "import", ui):
            resource, stored = adopt(workspace.store, workspace.stack.name, address,
                                     workspace.providers[address.host], args.container, desired)
        ui.say(f"Imported {key}: container {resource.attributes['name']} ({resource.id[:12]}). "
               f"State written: serial {stored.serial}.", "green")
        ui.say("Run `berth plan` to see how it differs from the stack file.")
        return EXIT_OK
    finally:
        workspace.close()
