"""`berth state ...` and `berth force-unlock`: read the stored state, clear a lock."""

from __future__ import annotations

import argparse
from typing import Any

from berth.commands import EXIT_ERROR, EXIT_OK, common, locked, open_store


def register(commands: Any) -> None:
    state = commands.add_parser("state", help="read, move, forget, pull and push the stored state")
    state_commands = state.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)
    state_list = state_commands.add_parser("list", help="one address per line")
    common(state_list)
    state_list.set_defaults(run=cmd_state_list)
    state_show = state_commands.add_parser("show", help="attributes of one resource")
    common(state_show)
    state_show.add_argument("address")
    state_show.add_argument("--json", action="store_true")
    state_show.set_defaults(run=cmd_state_show)
    register_more(state_commands)

    unlock = commands.add_parser("force-unlock", help="remove a state lock left by a berth that is not running")
    common(unlock)
    unlock.add_argument("lock_id", nargs="?", help="the lock ID from the error message")
    unlock.add_argument("--force", action="store_true", help="remove it even while its holder runs on this machine")
    unlock.set_defaults(run=cmd_force_unlock)


def cmd_state_list(args: argparse.Namespace, ui: Any) -> int:
    store = open_store(args)
    try:
        state = store.read()
    finally:
        store.close()
    # which stack's state, on stderr: stdout stays one address per line for scripts
    env = f", environment {args.environment}" if getattr(args, "environment", None) else ""
    ui.say(f"# state of stack {store.stack} ({store.path}{env})" if store.stack else f"# state in {store.path}", "dim", err=True)
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
    """As Terraform's: the lock ID is required, and a holder still running on this
    machine keeps its lock unless --force. A corrupt record has no holder: it is cleared."""
    from state.errors import CorruptLockError
    from state.lock import describe, held_here_by_a_live_process

    store = open_store(args)
    try:
        try:
            holder = store.get_lock()
        except CorruptLockError:
            text = store.lock_text() or ""
            store.delete_lock()
            ui.say(f"Removed a corrupt lock record from {store.path}: {text[:200]!r}"
                   f"{' ...' if len(text) > 200 else ''}", "green")
            return EXIT_OK
        if holder is None:
            ui.say("The state is not locked.")
            return EXIT_OK
        if not args.lock_id:
            ui.say(f"Error: force-unlock needs the lock ID: the state is locked by {describe(holder)}. "
                   f"If no berth is running there, run `berth force-unlock {holder.get('id')}`.", "bold red", err=True)
            return EXIT_ERROR
        if holder.get("id") != args.lock_id:
            ui.say(f"Error: the lock held is {holder.get('id')}, not {args.lock_id}: {describe(holder)}", "bold red", err=True)
            return EXIT_ERROR
        if held_here_by_a_live_process(holder) and not args.force:
            ui.say(f"Error: the lock holder is still running on this machine ({describe(holder)}); removing its "
                   "lock would let a second berth change the state under it. Let it finish or stop it, or pass "
                   "--force to remove the lock anyway.", "bold red", err=True)
            return EXIT_ERROR
        store.delete_lock(holder.get("id"))
        ui.say(f"Removed the lock held by {describe(holder)}.", "green")
        return EXIT_OK
    finally:
        store.close()


def register_more(state_commands: Any) -> None:
    pull = state_commands.add_parser("pull", help="print the whole state as JSON")
    common(pull)
    pull.add_argument("--serial", type=int, metavar="N", help="the version with serial N from `berth state history`")
    pull.set_defaults(run=cmd_state_pull)
    push = state_commands.add_parser("push", help="replace the state with a JSON file (from state pull)")
    common(push)
    push.add_argument("state_file", metavar="FILE")
    push.add_argument("--force", action="store_true", help="push even a lower serial or another lineage")
    push.set_defaults(run=cmd_state_push)
    rm = state_commands.add_parser("rm", help="forget resources without touching them")
    common(rm)
    rm.add_argument("addresses", nargs="+", metavar="ADDRESS", help="an address, or app.NAME for all of an app's")
    rm.set_defaults(run=cmd_state_rm)
    mv = state_commands.add_parser("mv", help="rename a resource in state (an app renamed in the file keeps its containers)")
    common(mv)
    mv.add_argument("source", metavar="OLD", help="an address, or app.NAME to move all of an app's resources")
    mv.add_argument("destination", metavar="NEW")
    mv.set_defaults(run=cmd_state_mv)
    history = state_commands.add_parser("history", help="one row per apply: its serials, time, who, what changed")
    common(history)
    history.add_argument("--json", action="store_true")
    history.add_argument("-n", "--limit", type=int, metavar="N", help="only the last N runs (with --serials, versions)")
    history.add_argument("--serials", action="store_true", help="one row per stored version instead of per run")
    history.set_defaults(run=cmd_state_history)


def _mutate(args: argparse.Namespace, ui: Any, operation: str, change: Any, recovering: bool = False) -> int:
    """Run change(state) -> (new state, note) under the lock and write it: one new serial.
    recovering: a current state that is gone or corrupt reads as None (push --force)."""
    store = open_store(args)
    try:
        with locked(store, operation, ui):
            new, note = change(store.read(recovering=recovering))
            stored = store.write(new, note=note, recovering=recovering)
            ui.say(f"State written: serial {stored.serial}.", "dim")
            return EXIT_OK
    finally:
        store.close()


def cmd_state_pull(args: argparse.Namespace, ui: Any) -> int:
    from state.errors import StateError
    from state.history import state_at
    from state.model import State

    store = open_store(args)
    try:
        if args.serial is None:
            state = store.read()
        else:
            found = state_at(store.history(), args.serial)
            if found is None:
                raise StateError(f"no version with serial {args.serial} in the history of {store.path}; "
                                 "see `berth state history`")
            state = State.model_validate(found)
    finally:
        store.close()
    if state is not None:
        print(state.model_dump_json(indent=2))
    return EXIT_OK


def cmd_state_push(args: argparse.Namespace, ui: Any) -> int:
    from pathlib import Path

    from pydantic import ValidationError

    from state.errors import StateError
    from state.model import State

    try:
        pushed = State.model_validate_json(Path(args.state_file).read_text())
    except OSError as err:
        raise StateError(f"cannot read {args.state_file}: {err.strerror or err}") from None
    except ValidationError as err:
        raise StateError(f"{args.state_file} is not a berth state ({err.errors()[0]['msg']}); "
                         "push what `berth state pull` printed") from None

    def change(current: State | None) -> tuple[State, str]:
        if current is not None and not args.force:
            if pushed.lineage != current.lineage:
                raise StateError(
                    f"state push refused: {args.state_file} has lineage {pushed.lineage}, the stored state "
                    f"has lineage {current.lineage}: it is another state. Use --force to replace it anyway.")
            if pushed.serial < current.serial:
                raise StateError(
                    f"state push refused: {args.state_file} has serial {pushed.serial}, lower than the stored "
                    f"serial {current.serial}: it is older than the state. Use --force to push it anyway.")
        ui.say(f"Pushed {args.state_file} ({len(pushed.resources)} resources, lineage {pushed.lineage}).")
        return pushed, f"state push {Path(args.state_file).name}" + (" --force" if args.force else "")

    return _mutate(args, ui, "state push", change, recovering=args.force)


def cmd_state_rm(args: argparse.Namespace, ui: Any) -> int:
    from state.address import Address, check_target
    from state.errors import StateError
    from state.model import State

    for text in args.addresses:
        check_target(text)

    def change(current: State | None) -> tuple[State, str]:
        resources = dict(current.resources) if current else {}
        gone = [k for k in (current.sorted_addresses() if current else [])
                if any(Address.parse(k).matches(t) for t in args.addresses)]
        if not gone:
            raise StateError(f"no resource in state matches {', '.join(args.addresses)}")
        ids = [resources[k].id for k in gone if resources[k].id]
        for key in gone:
            del resources[key]
            ui.say(f"Removed {key}")
        ui.say(f"Forgot {len(gone)} resource(s); they were left as they are on their hosts.", "green")
        forgotten = list(dict.fromkeys([*current.forgotten, *ids]))
        return current.model_copy(update={"resources": resources, "forgotten": forgotten}), \
            "state rm " + " ".join(args.addresses)

    return _mutate(args, ui, "state rm", change)


def cmd_state_mv(args: argparse.Namespace, ui: Any) -> int:
    from state.errors import StateError
    from state.model import State

    from state.address import Address, moves

    def change(current: State | None) -> tuple[State, str]:
        keys = list(current.resources) if current else []
        moved = moves(keys, args.source, args.destination)
        if not moved:
            raise StateError(f"no resource in state matches {args.source}")
        taken = [new for new in moved.values() if new in current.resources and new not in moved]
        if taken:
            raise StateError(f"state mv refused: {', '.join(taken)} is already in state; `berth state rm` it first")
        resources = {k: v for k, v in current.resources.items() if k not in moved}
        for old, new in moved.items():
            resources[new] = current.resources[old].model_copy(update={"address": Address.parse(new)})
            ui.say(f"Moved {old} to {new}")
        return current.model_copy(update={"resources": resources}), f"state mv {args.source} {args.destination}"

    return _mutate(args, ui, "state mv", change)


def rfc3339(timestamp: float) -> str | None:
    """A stored time as JSON documents carry times: RFC 3339, UTC, with its zone."""
    from datetime import datetime, timezone

    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def cmd_state_history(args: argparse.Namespace, ui: Any) -> int:
    import json

    from berth.ui.state_view import render_history, render_runs
    from state.history import runs, versions

    store = open_store(args)
    try:
        entries = store.history()
    finally:
        store.close()
    found, by_run = versions(entries), runs(entries)
    if args.limit:
        found, by_run = found[-args.limit:], by_run[-args.limit:]
    if args.json:
        print(json.dumps({"format_version": 1, "stack": store.stack, "runs": [
            {"run": r.number, "serials": [r.first, r.last], "started": rfc3339(r.started), "time": rfc3339(r.ended),
             "who": r.who, "note": r.note, "config": r.config, "added": list(r.added), "removed": list(r.removed),
             "changed": list(r.changed)} for r in by_run], "versions": [
            v.__dict__ | {"time": rfc3339(v.time), "added": list(v.added), "removed": list(v.removed),
                          "changed": list(v.changed)} for v in found]}, indent=2))
    elif args.serials:
        render_history(found, ui)
    else:
        render_runs(by_run, ui)
    return EXIT_OK
