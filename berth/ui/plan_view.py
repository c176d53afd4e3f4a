"""A plan as text, the way Terraform shows one, and as a JSON document."""

from __future__ import annotations

import json
from typing import Any

from berth.ui.console import Consoles
from planner.plan import Action, Change, Plan
from planner.resources import SENSITIVE, SENSITIVE_KEYS, masked

STYLE = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.DELETE: "red",
    Action.REPLACE: "red",
    Action.CREATE_THEN_DELETE: "green",
}
HEADLINE = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.DELETE: "will be destroyed",
    Action.REPLACE: "must be replaced",
    Action.CREATE_THEN_DELETE: "must be replaced",
}
ATTRIBUTE_SYMBOL = {Action.CREATE: "+", Action.DELETE: "-"}
# Attributes apply learns from the host (the free port berth picks for a replica, the
# gateway's upstreams that follow it): a plan cannot know their new values.
LEARNED_KEYS = frozenset({"published_port", "upstreams"})
KNOWN_AFTER_APPLY = "(known after apply)"


def value_text(value: Any, key: str = "") -> str:
    """A value as plans show it; a sensitive attribute (by its key) never shows."""
    if key in SENSITIVE_KEYS and value not in (None, {}):
        return SENSITIVE
    if key == "weights" and isinstance(value, list):  # a mount whose cache key its fetch resolves
        value = [m | {"key": KNOWN_AFTER_APPLY} if isinstance(m, dict) and m.get("key") is None else m for m in value]
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else json.dumps(value)


def kept(plan: Plan) -> list[str]:
    """What the plan keeps on purpose and says so: named volumes no app mounts, or that
    a destroy leaves (`destroy --volumes` removes them)."""
    return [reason for c in plan.changes if c.type == "volume" and c.action is Action.NOOP for reason in c.reasons]


def render_plan(plan: Plan, ui: Consoles, *, verbose: bool = False) -> None:
    """The plan as text. A platform app's block (what berth made of its file) is shown
    when the plan changes that app, or always with verbose (`plan -v`)."""
    changing = {c.address.app for c in plan.actions}
    for name, entry in plan.apps.items():
        if verbose or name in changing:
            _render_source(name, entry, ui)
    for warning in plan.warnings:
        ui.say(f"Warning: {warning}", "yellow")
    for line in kept(plan):
        ui.say(f"Note: {line}", "yellow")
    if not plan.has_changes:
        # Terraform's words for an empty destroy: "the hosts match" would read as if the stack were kept
        ui.say("No changes. No objects need to be destroyed." if plan.destroy
               else "No changes. The hosts match the configuration.", "bold green")
        return
    ui.say("berth will perform the following actions:\n")
    for change in plan.actions:
        _render_change(change, ui)
    s = plan.summary()
    ui.say(f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy.", "bold")


def _render_change(change: Change, ui: Consoles) -> None:
    style = STYLE[change.action]
    why = f" ({'; '.join(change.reasons)})" if change.reasons else ""
    ui.say(f"  # {change.address} {HEADLINE[change.action]}{why}", "bold")
    ui.say(f"{change.action.value:>3} {change.type} \"{change.address}\" {{", style)
    before, after = change.before or {}, change.after or {}
    keys = [k for k in dict.fromkeys([*after, *before]) if k not in ("ids",)]
    shown = 0
    width = max((len(k) for k in keys), default=0)
    for key in keys:
        old, new = before.get(key), after.get(key)
        if change.action in (Action.CREATE, Action.DELETE):
            value = new if change.action is Action.CREATE else old
            if value is None and change.action is Action.CREATE and change.type == "weights" and key == "key":
                ui.say(f"      + {key:<{width}} = {KNOWN_AFTER_APPLY}", style)
                shown += 1
                continue
            if value in (None, [], {}):
                continue
            ui.say(f"      {ATTRIBUTE_SYMBOL[change.action.value and change.action]} {key:<{width}} = {value_text(value, key)}", style)
            shown += 1
        elif old != new and change.before is not None:
            forces = "  # forces replacement" if key in change.forces_replacement else ""
            learned = key in LEARNED_KEYS or (key == "key" and change.type == "weights")
            shown_new = KNOWN_AFTER_APPLY if new is None and learned else value_text(new, key)
            ui.say(f"      ~ {key:<{width}} = {value_text(old, key)} -> {shown_new}{forces}", "yellow")
            shown += 1
    hidden = len(keys) - shown
    if hidden and change.action not in (Action.CREATE, Action.DELETE):
        ui.say(f"        # ({hidden} unchanged attributes hidden)", "dim")
    ui.say("    }\n")


def _render_source(name: str, entry: dict[str, Any], ui: Consoles) -> None:
    """What berth made of an app from a platform's format: the values it will run."""
    ui.say(f"App {name}, from {entry['origin']}:", "bold")
    rows: list[tuple[str, str]] = []
    build = entry["build"]
    seen = f" (host has {entry['image_id'][:19]})" if entry["image_id"] else ""
    if build:
        rows.append(("image", f"built by berth on {build['base']}{seen}" if build["base"]
                     else f"built from {build['dockerfile']}"))
        rows.append(("dockerfile", build["dockerfile"]))
    else:
        rows.append(("image", f"{entry['image']}{seen}"))
    rows.append(("command", value_text(entry["command"]) if entry["command"] else "the image's own"))
    if entry["host_port"] is None:
        rows.append(("port", f"{entry['port']} (published on a free port berth picks; served by the gateway)"))
    else:
        rows.append(("port", f"{entry['port']} (published on {entry['host_port']}"
                     + (f"..{entry['host_port'] + entry['replicas'] - 1})" if entry["replicas"] > 1 else ")")))
    rows.append(("replicas", str(entry["replicas"])))
    rows.append(("readiness", f"GET {entry['readiness']}" if entry["readiness"] else "TCP connect"))
    rows.append(("liveness", f"GET {entry['liveness']}" if entry["liveness"] else "none"))
    timing = entry["probe_timing"]
    rows.append(("probe timing", f"ready within {entry['readiness_timeout']:g}s"
                 + "".join(f", {key} {value:g}s" for key, value in timing.items())))
    if entry["gpus"]:
        rows.append(("gpus", f"{entry['gpus']} x {entry['gpu_type'] or 'any'}"))
    for key in ("cpus", "memory", "predict", "predict_concurrency"):
        if entry[key] is not None:
            rows.append((key, str(entry[key])))
    if entry["secrets"]:
        rows.append(("secrets", ", ".join(f"/secrets/{s}" for s in entry["secrets"])))
    if entry["env"]:
        rows.append(("env", value_text(entry["env"])))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        ui.say(f"    {key:<{width}} = {value}")
    ui.say()


def replace_order(change: Change) -> str | None:
    """How a replace runs (planner.steps.start_first decides it at apply): start-first when
    the new one can run beside the old one (no fixed port, no shared GPU), else stop-first."""
    if not change.action.is_replace:
        return None
    if change.action is Action.CREATE_THEN_DELETE:
        return "start-first"
    if change.type == "container":
        from planner.steps import start_first

        return "start-first" if start_first(change.after or {}, change.before or {}, None) else "stop-first"
    return "stop-first"


def plan_document(plan: Plan) -> dict[str, Any]:
    """The --json form. Its schema is documented in the README; keep them in step."""
    return {
        "format_version": plan.format,
        "stack": plan.stack,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "destroy": plan.destroy,
        "changes": [
            {
                "address": str(c.address),
                "type": c.type,
                "action": c.action.word,
                "before": masked(c.before),
                "after": masked(c.after),
                "reasons": c.reasons,
                "forces_replacement": c.forces_replacement,
                "replace_order": replace_order(c),
            }
            for c in plan.actions
        ],
        "summary": plan.summary(),
        "warnings": plan.warnings,
        "kept": kept(plan),
        "apps": plan.apps,
    }
