"""The apply's live progress for a replica waiting on its readiness probe: what the probe
sees, the time elapsed and left; plain output prints a line when that changes only."""

from __future__ import annotations

import io

from berth.ui.apply_view import ApplyView, loading_line
from berth.ui.console import Consoles, PlainConsole
from planner.events import Event
from planner.graph import Step

WAIT = Step("wait", "app.llm.container[0]@local")


def plain() -> tuple[Consoles, io.StringIO]:
    out = io.StringIO()
    return Consoles(out=PlainConsole(out), err=PlainConsole(io.StringIO())), out


def test_the_loading_line_names_the_replica_the_outcome_and_the_time_left() -> None:
    assert loading_line(WAIT, "answering 503", 12.2, 587.8) == "llm[0] loading: answering 503 (12s, 588s left)"
    remote = Step("wait", "app.llm.container[1]@gpu-a")
    assert loading_line(remote, "connection refused", 1.25, 30) == \
        "llm[1]@gpu-a loading: connection refused (1.2s, 30s left)"


def test_plain_output_prints_changes_of_the_probes_outcome_not_every_poll() -> None:
    ui, out = plain()
    with ApplyView(ui) as view:
        view(Event("started", WAIT))
        view(Event("waiting", WAIT, 0.0, message="waiting for readiness (GET /health on port 8080)"))
        for i in range(5):
            view(Event("waiting", WAIT, 0.1 * (i + 1), message="connection refused", left=600 - 0.1 * (i + 1)))
        for i in range(20):
            view(Event("waiting", WAIT, 1.0 + i, message="answering 503", left=599.0 - i))
        view(Event("finished", WAIT, 21.0, message="probe passed after 21.00s"))
    lines = out.getvalue().splitlines()
    loading = [line for line in lines if "loading:" in line]
    assert loading == ["llm[0] loading: connection refused (0.1s, 600s left)",
                       "llm[0] loading: answering 503 (1.0s, 599s left)"], lines
    assert lines[-1].startswith("app.llm.container[0]@local: Ready after 21s")


def test_the_live_panel_shows_the_loading_line() -> None:
    ui, _ = plain()
    view = ApplyView(ui)
    view(Event("started", WAIT))
    view(Event("waiting", WAIT, 12.0, message="answering 503", left=588.0))
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=120, no_color=True).print(view._panel())
    assert "llm[0] loading: answering 503 (12s, 588s left)" in buffer.getvalue()
