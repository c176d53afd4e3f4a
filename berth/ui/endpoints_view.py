"""Endpoints as text: `berth output`, and the lines apply ends with."""

from __future__ import annotations

from typing import Any


def render_endpoints(found: list[Any], ui: Any, *, only: set[str] | None = None, title: str | None = None) -> None:
    """One block per app: predict and gateway URLs first (what a client calls), then each
    replica's own address. only: the apps to show (apply shows those it touched)."""
    shown = [app for app in found if only is None or app.app in only]
    if not any(app.replicas or app.gateway for app in shown):
        if only is None:
            ui.say("No app serves anything yet: `berth apply` starts them.")
        return
    if title:
        ui.say()
        ui.say(title, "bold")
    for app in shown:
        rows = [("predict", url) for url in app.predict] + [("gateway", url) for url in app.gateway]
        rows += [(replica.address.split(".", 2)[2], replica.url) for replica in app.replicas]
        if not rows:
            ui.say(f"{app.app}: not running")
            continue
        ui.say(f"{app.app}:", "bold")
        width = max(len(label) for label, _ in rows)
        for label, url in rows:
            ui.say(f"  {label:<{width}}  {url}")
