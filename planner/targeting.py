"""Narrowing and forcing a plan: `--target` keeps only some addresses and what they
depend on; `--replace` turns a container's no-op or update into a replacement.

Both are pure functions from a Plan to a Plan, applied after diff, so what a saved plan
holds is exactly what apply runs.
"""

from __future__ import annotations

from planner.plan import Action, Change, Plan
from state.address import Address, AddressError, check_target

TARGET_WARNING = (
    "Resource targeting is in effect: only {targets} and what they depend on are planned, so "
    "this plan may not be all the configuration asks for. Use --target for exceptional "
    "situations (recovering from a mistake, working around a limitation), not routinely."
)


def select(plan: Plan, targets: list[str]) -> Plan:
    """The plan restricted to changes whose address a target matches, plus what they
    need: a container's image, its weights, the named volumes it mounts (else Docker would
    make them, unlabelled) and the apps it depends on (transitively); for a destroy,
    the apps that depend on it instead (they go first). Everything else is left out,
    not even recorded, so state keeps its old record of it."""
    for target in targets:
        check_target(target)
    changes = [c for c in plan.changes]
    chosen = {c.address for c in changes if any(c.address.matches(t) for t in targets)}
    warnings = list(plan.warnings)
    for target in targets:
        if not any(c.address.matches(target) for c in changes):
            warnings.append(f"target {target} matches no resource in the configuration or state")
    by_app: dict[str, list[Change]] = {}
    for change in changes:
        by_app.setdefault(change.address.app, []).append(change)

    def depends_on(change: Change) -> list[str]:
        side = change.before if plan.destroy or change.after is None else change.after
        return list((side or {}).get("depends_on") or [])

    pending = list(chosen)
    while pending:
        address = pending.pop()
        needed: list[Address] = []
        if address.kind == "container":
            needed.append(Address.image(address.app, address.host))
            change = next(c for c in changes if c.address == address)
            if not plan.destroy:  # the weights it mounts are in the host's cache first
                needed += [c.address for c in by_app.get(address.app, [])
                           if c.address.kind == "weights" and c.address.host == address.host]
            if plan.destroy:
                needed += [c.address for c in changes if address.app in depends_on(c)]
            else:
                needed += [c.address for app in depends_on(change) for c in by_app.get(app, [])]
                needed += [Address.named_volume(entry.split(":", 1)[0], address.host)
                           for entry in (change.after or {}).get("volumes") or () if not entry.startswith("/")]
        for key in needed:
            if key not in chosen and any(c.address == key for c in changes):
                chosen.add(key)
                pending.append(key)
    warnings.insert(0, TARGET_WARNING.format(targets=", ".join(targets)))
    return plan.model_copy(update={
        "changes": [c for c in changes if c.address in chosen],
        "warnings": warnings,
    })


def force_replace(plan: Plan, addresses: list[str]) -> Plan:
    """Replace each named container even though nothing about it changed."""
    changes = list(plan.changes)
    for text in addresses:
        address = Address.parse(text)
        if address.kind != "container":
            raise AddressError(
                f"--replace {text}: only containers can be replaced; an image is rebuilt when its "
                "build context changes")
        index = next((i for i, c in enumerate(changes) if c.address == address and c.after is not None), None)
        if index is None:
            raise AddressError(f"--replace {text}: no such container in the configuration")
        change = changes[index]
        if change.action in (Action.NOOP, Action.UPDATE) and change.ids:
            changes[index] = change.model_copy(update={
                "action": Action.REPLACE,
                "reasons": [*change.reasons, "replacement requested with --replace"],
            })
    return plan.model_copy(update={"changes": changes})
