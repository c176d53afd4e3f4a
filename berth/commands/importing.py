"""`berth import ADDRESS CONTAINER`: adopt a container berth did not create."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_OK, common, open_session


def register(commands: Any) -> None:
    imp = commands.add_parser("import", help="adopt an existing container (by name or ID) into state")
    common(imp)
    imp.add_argument("address", metavar="ADDRESS", help="app.NAME.container[I]@HOST, an app in the stack file")
    imp.add_argument("container", metavar="CONTAINER", help="the container's name or ID on that host")
    imp.set_defaults(run=cmd_import)


def cmd_import(args: argparse.Namespace, ui: Any) -> int:
    from planner.importing import attributes_from_inspect
    from planner.resources import container_attributes, image_attributes, image_ref
    from state import lock
    from state.address import Address, AddressError
    from state.errors import StateError
    from state.model import ResourceState, State

    address = Address.parse(args.address)
    key = str(address)
    if address.kind != "container":
        raise AddressError(f"import adopts containers: {key} is an {address.kind}")
    session = open_session(args)
    try:
        app = session.stack.apps.get(address.app)
        if app is None:
            raise StateError(f"import: app {address.app} is not in {session.stack.file}; add it there first, "
                             "so berth knows what the container should be")
        if app.host != address.host or address.index >= app.replicas:
            raise StateError(f"import: the stack file has no {key} (app {app.name} runs {app.replicas} "
                             f"replica(s) on host {app.host}: app.{app.name}.container[0..{app.replicas - 1}]@{app.host})")
        hashes = session.content_hashes()
        desired = container_attributes(session.stack.name, app, address.index,
                                       image_ref(image_attributes(session.stack.name, app, hashes.get(app.name))))
        with lock.acquire(session.store, "import") as held:
            if held.taken_over:
                ui.say(f"Warning: took over a stale lock: its holder is gone ({lock.describe(held.taken_over)})", "yellow", err=True)
            state = session.store.read() or State(stack=session.stack.name)
            if key in state.resources:
                raise StateError(f"import: {key} is already in state (container {state.resources[key].id[:12]}); "
                                 f"`berth state rm {key}` first to adopt another")
            info = session.providers[address.host].inspect_container(args.container)
            if info is None:
                raise StateError(f"import: no container {args.container} on host {address.host}")
            holder = next((k for k, r in state.resources.items() if r.id == info["Id"]), None)
            if holder:
                raise StateError(f"import: container {args.container} is already in state as {holder}")
            running = (info.get("State") or {}).get("Running", False)
            resource = ResourceState(address=key, type="container", host=address.host, id=info["Id"],
                                     status="ready" if running else "created",
                                     attributes=attributes_from_inspect(info, desired))
            new = state.model_copy(update={
                "resources": state.resources | {key: resource},
                "forgotten": [i for i in state.forgotten if i != info["Id"]],
            })
            stored = session.store.write(new, note=f"import {key}")
        ui.say(f"Imported {key}: container {resource.attributes['name']} ({info['Id'][:12]}). "
               f"State written: serial {stored.serial}.", "green")
        ui.say("Run `berth plan` to see how it differs from the stack file.")
        return EXIT_OK
    finally:
        session.close()
