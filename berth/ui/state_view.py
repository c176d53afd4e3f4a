"""State as text: history, drift found by refresh, and the status table."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from berth.ui.console import Consoles


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def render_history(found: list[Any], ui: Consoles) -> None:
    if not found:
        ui.say("No state history yet.")
        return
    rows = []
    for v in found:
        what = [f"+{a}" for a in v.added] + [f"-{r}" for r in v.removed] + [f"~{c}" for c in v.changed]
        shown = ", ".join(what[:3]) + (f", and {len(what) - 3} more" if len(what) > 3 else "")
        config = f"config {v.config[:12]}" if v.config else ""
        rows.append((str(v.serial), when(v.time), v.who, v.note, config, shown or "(no resource changed)"))
    headers = ("SERIAL", "TIME (UTC)", "WHO", "NOTE", "CONFIG", "CHANGES")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "  " + cells[-1]

    ui.say(line(headers), "bold")
    for row in rows:
        ui.say(line(row))


def render_findings(findings: list[Any], ui: Consoles) -> None:
    if not findings:
        ui.say("No drift: the hosts match the state.", "bold green")
        return
    ui.say("Drift found on the hosts:\n", "bold")
    for f in findings:
        ui.say(f"  {'~' if f.writes else '!'} {f.address}: {f.message}", "yellow" if f.writes else None)
    ui.say()


STATE_STYLE = {"running": "green", "restarting": "yellow", "created": "yellow", "paused": "yellow"}


def render_status(rows: list[Any], ui: Consoles) -> None:
    if not rows:
        ui.say("Nothing deployed: the state holds no containers.")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("APP", "REPLICA", "HOST", "CONTAINER", "STATE", "READINESS", "LIVENESS", "IMAGE", "SINCE (UTC)"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        replica = row.address.split(".", 2)[2].split("@")[0] if "@" in row.address else "-"
        state_style = STATE_STYLE.get(row.state, "red")
        ready_style = "green" if row.readiness == "ready" else ("dim" if row.readiness == "-" else "red")
        live_style = "green" if row.liveness == "live" else ("dim" if row.liveness == "-" else "red")
        restarts = f" ({row.restarts} restarts)" if row.restarts else ""
        table.add_row(
            Text(row.app, style="bold"), Text(replica), Text(row.host or "-"), Text(row.container or "-"),
            Text(row.state + restarts, style=state_style), Text(row.readiness, style=ready_style),
            Text(row.liveness, style=live_style), Text(row.image or "-"), Text(row.since or "-"),
        )
    ui.out.print(table)
    healthy = sum(row.healthy for row in rows)
    ui.say(f"\n{healthy} of {len(rows)} healthy.", "bold green" if healthy == len(rows) else "bold red")
