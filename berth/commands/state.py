"""`berth state ...` and `berth force-unlock`: read the stored state, clear a lock."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_ERROR, EXIT_OK, common, open_store


def register(commands: Any) -> None:
    state = commands.add_parser("state", help="read the stored state")
    state_commands = state.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)
    state_list = state_commands.add_parser("list", help="one address per line")
    common(state_list)
    state_list.set_defaults(run=cmd_state_list)
    state_show = state_commands.add_parser("show", help="attributes of one resource")
    common(state_show)
    state_show.add_argument("address")
    state_show.add_argument("--json", action="store_true")
    state_show.set_defaults(run=cmd_state_show)

    unlock = commands.add_parser("force-unlock", help="remove a state lock left by a berth that is not running")
    common(unlock)
    unlock.add_argument("lock_id", nargs="?", help="the lock ID from the error message (default: whatever lock is held)")
    unlock.set_defaults(run=cmd_force_unlock)


def cmd_state_list(args: argparse.Namespace, ui: Any) -> int:
    store = open_store(args)
    try:
        state = store.read()
    finally:
        store.close()
    for address in state.sorted_addresses() if state else []:
        print(address)
    return EXIT_OK


def cmd_state_show(args: argparse.Namespace, ui: Any) -> int:
    from berth.ui.plan_view import value_text
    from state.address import Address

    key = str(Address.parse(args.address))
    store = open_store(args)
    try:
        state = store.read()
    finally:
        store.close()
    resource = state.resources.get(key) if state else None
    if resource is None:
        ui.say(f"Error: no resource {key} in state", "bold red", err=True)
        return EXIT_ERROR
    from planner.resources import masked

    if args.json:
        print(resource.model_copy(update={"attributes": masked(resource.attributes)}).model_dump_json(indent=2))
        return EXIT_OK
    fields = {"id": resource.id, "host": resource.host, "status": resource.status} | resource.attributes
    width = max(len(k) for k in fields)
    ui.say(f"# {key}:")
    ui.say(f'{resource.type} "{key}" {{')
    for name, value in fields.items():
        ui.say(f"    {name:<{width}} = {value_text(value, name)}")
    ui.say("}")
    return EXIT_OK


def cmd_force_unlock(args: argparse.Namespace, ui: Any) -> int:
    from state.lock import describe

    store = open_store(args)
    try:
        holder = store.get_lock()
        if holder is None:
            ui.say("The state is not locked.")
            return EXIT_OK
        if args.lock_id and holder.get("id") != args.lock_id:
            ui.say(f"Error: the lock held is {holder.get('id')}, not {args.lock_id}: {describe(holder)}", "bold red", err=True)
            return EXIT_ERROR
        store.delete_lock(holder.get("id"))
        ui.say(f"Removed the lock held by {describe(holder)}.", "green")
        return EXIT_OK
    finally:
        store.close()
