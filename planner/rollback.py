"""Rollback: which desired configuration an earlier apply recorded, and which images a
plan of it should run (those built then, while their hosts still have them).

The plan itself is the normal one (planner.pipeline.plan with these content hashes), so
a rollback shows its diff first like any apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from state.errors import StateError
from state.model import State

if TYPE_CHECKING:
    from planner.pipeline import Context
    from state.store import StateStore


@dataclass(frozen=True)
class RollbackPoint:
    serial: int  # the version whose configuration is applied again
    record: dict[str, Any]  # that configuration (planner.recorded)
    time: Any  # when, and by whom, it was applied (from the history entry)
    who: str
    state: State  # the state that version held


def rollback_point(store: StateStore, serial: int | None) -> RollbackPoint:
    """The configuration recorded at `serial`, or (None) the one applied before the current one."""
    from state.history import config_at, previous_config, state_at

    entries = store.history()
    found = previous_config(entries) if serial is None else config_at(entries, serial)
    if found is None:
        raise StateError(
            "rollback: no earlier configuration is recorded" if serial is None else
            f"rollback: no apply had recorded a configuration by serial {serial}; see `berth state history`")
    at, digest = found
    record = store.config(digest)
    if record is None:
        raise StateError(f"rollback: the configuration recorded at serial {at} is missing from {store.path}")
    then = next(e for e in entries if e["serial"] == at)
    return RollbackPoint(serial=at, record=record, time=then["time"], who=then.get("who", "?"),
                         state=State.model_validate(state_at(entries, at) or {}))


def rollback_hashes(ctx: Context, state: State | None, recorded: State) -> tuple[dict[str, str], list[str]]:
    """Content hashes for the recorded builds: the image an earlier apply built, when the
    host still has it; else the context as it is now, with a warning (returned)."""
    from planner.pipeline import content_hashes, observe
    from planner.resources import image_labels
    from state.address import Address

    stack = ctx.stack
    current = content_hashes(ctx)
    observed = observe(ctx, state)
    out, warnings = dict(current), []
    for app in stack.apps.values():
        if app.build is None:
            continue
        then = recorded.resources.get(str(Address.image(app.name, app.host)))
        wanted = (then.attributes.get("content_hash") if then else None)
        if not wanted or wanted == current.get(app.name):
            continue
        labels = image_labels(stack.name, wanted)
        obs = observed.get(app.host)
        if obs and any(labels.items() <= image.labels.items() for image in obs.images):
            out[app.name] = wanted
        else:
            warnings.append(f"the image app {app.name} ran then ({wanted[:12]}) is gone from host {app.host}; "
                            "it is built from the context as it is now.")
    return out, warnings
