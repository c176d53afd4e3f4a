"""State as text: history, drift found by refresh, and the status table."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from berth.ui.console import Consoles


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _changes(item: Any) -> str:
    """What a version or a run changed, three addresses at most."""
    what = [f"+{a}" for a in item.added] + [f"-{r}" for r in item.removed] + [f"~{c}" for c in item.changed]
    shown = ", ".join(what[:3]) + (f", and {len(what) - 3} more" if len(what) > 3 else "")
    return shown or "(no resource changed)"


def _history_table(headers: tuple[str, ...], rows: list[tuple[str, ...]], ui: Consoles) -> None:
    """Columns padded to their widest cell; the last one (what changed) runs free."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:-1])]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "  " + cells[-1]

    ui.say(line(headers), "bold")
    for row in rows:
        ui.say(line(row))


def render_runs(found: list[Any], ui: Consoles) -> None:
    """One row per run (an apply and the versions its steps wrote)."""
    if not found:
        ui.say("No state history yet.")
        return
    _history_table(("RUN", "SERIALS", "TIME (UTC)", "WHO", "NOTE", "CONFIG", "CHANGES"), [
        (str(r.number), str(r.first) if r.first == r.last else f"{r.first}-{r.last}", when(r.ended), r.who, r.note,
         f"config {r.config[:12]}" if r.config else "", _changes(r)) for r in found], ui)
    ui.say("(`berth rollback --run N` re-applies a run's configuration; `state history --serials` lists every version)", "dim")


def render_history(found: list[Any], ui: Consoles) -> None:
    """One row per stored version (`state history --serials`)."""
    if not found:
        ui.say("No state history yet.")
        return
    _history_table(("SERIAL", "TIME (UTC)", "WHO", "NOTE", "CONFIG", "CHANGES"), [
        (str(v.serial), when(v.time), v.who, v.note, f"config {v.config[:12]}" if v.config else "", _changes(v))
        for v in found], ui)


def render_findings(findings: list[Any], ui: Consoles) -> None:
    drift = [f for f in findings if f.writes]
    notes = [f for f in findings if not f.writes]
    if drift:
        ui.say("Drift: the hosts no longer have what state records:\n", "bold")
        for f in drift:
            ui.say(f"  ~ {f.address}: {f.message}", "yellow")
        ui.say()
    else:
        ui.say("No drift: the hosts have everything the state records.", "bold green")
    if notes:
        ui.say("Also seen (state is not changed for these; `berth plan` shows what apply would do):\n")
        for f in notes:
            ui.say(f"  ! {f.address}: {f.message}")
        ui.say()


STATE_STYLE = {"running": "green", "restarting": "yellow", "created": "yellow", "paused": "yellow"}


def render_status(rows: list[Any], ui: Consoles) -> None:
    if not rows:
        ui.say("Nothing deployed: the state holds no containers.")
        return
    from rich.text import Text

    headers = ("APP", "REPLICA", "HOST", "CONTAINER", "STATE", "READINESS", "LIVENESS", "IMAGE", "SINCE (UTC)", "URL")
    table = []
    for row in rows:
        replica = row.address.split(".", 2)[2].split("@")[0] if row.address.startswith("app.") and "@" in row.address else "-"
        restarts = f" ({row.restarts} restarts)" if row.restarts else ""
        ready_style = "green" if row.readiness == "ready" else ("dim" if row.readiness == "-" else "red")
        live_style = "green" if row.liveness == "live" else ("dim" if row.liveness == "-" else "red")
        table.append([
            (row.app, "bold"), (replica, None), (row.host or "-", None), (row.container or "-", None),
            (f"failed ({row.state}){restarts}" if row.tainted else row.state + restarts,
             "red" if row.tainted else STATE_STYLE.get(row.state, "red")), (row.readiness, ready_style),
            (row.liveness, live_style), (row.image or "-", None), (row.since or "-", None),
            (row.url or "-", None),
        ])
    widths = [max(len(h), *(len(r[i][0]) for r in table)) for i, h in enumerate(headers)]
    ui.say("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "bold")
    for cells in table:
        line = Text()
        for i, (text, style) in enumerate(cells):
            line.append(text.ljust(widths[i]) if i < len(cells) - 1 else text, style=style)
            if i < len(cells) - 1:
                line.append("  ")
        ui.out.print(line)
    _render_watcher_restarts(rows, ui)
    healthy = sum(row.healthy for row in rows)
    ui.say(f"\n{healthy} of {len(rows)} healthy.", "bold green" if healthy == len(rows) else "bold red")


def _render_watcher_restarts(rows: list[Any], ui: Consoles) -> None:
    """Replicas the liveness watcher restarted, and why (its last restart of each)."""
    restarted = [row for row in rows if row.watcher_restarts]
    if not restarted:
        return
    ui.say("\nRestarted by the liveness watcher:", "bold")
    for row in restarted:
        last = row.last_watcher_restart or {}
        times = "once" if row.watcher_restarts == 1 else f"{row.watcher_restarts} times"
        ui.say(f"  {row.address}: {times}, last at {last.get('time', '?')}: {last.get('reason', '')}", "yellow")
