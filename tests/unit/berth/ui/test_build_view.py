"""The apply view of a build: each BuildKit step and its own output lines as they come
(printed where output is not a terminal; on a terminal, the running step's current
build step and last lines in the live panel with its elapsed time)."""

from __future__ import annotations

import io

from rich.console import Console

from berth.ui.apply_view import ApplyView
from berth.ui.console import Consoles
from planner.events import Event
from planner.graph import Step, StepKind
from state.address import Address

STEP = Step(StepKind.BUILD, Address.parse("app.web.image@local"))


def _consoles(terminal: bool) -> tuple[Consoles, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, color_system=None, width=200)
    return Consoles(out=console, err=Console(file=io.StringIO())), out


def _events(view: ApplyView) -> None:
    view(Event("started", STEP))
    view(Event("progress", STEP, message="[2/3] RUN pip install -r r.txt"))
    for line in ("Collecting six", "  Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)", "Installing collected packages: six",
                 "Successfully installed six-1.17.0"):
        view(Event("progress", STEP, message=line, detail="output"))


def test_off_a_terminal_every_output_line_is_printed_under_its_step() -> None:
    ui, out = _consoles(terminal=False)
    view = ApplyView(ui)
    _events(view)
    lines = out.getvalue().splitlines()
    assert lines[1] == "app.web.image@local: [2/3] RUN pip install -r r.txt"
    assert lines[3] == "app.web.image@local: |   Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)"
    assert len(lines) == 6


def test_on_a_terminal_the_panel_shows_the_current_step_and_its_last_three_lines() -> None:
    ui, out = _consoles(terminal=True)
    view = ApplyView(ui)
    view._live = object()  # as __enter__ sets it on a terminal (not started: the panel is rendered here)
    _events(view)
    printed = out.getvalue()
    assert "Downloading" not in printed  # output lines live in the panel, not the scrollback
    assert "[2/3] RUN pip install" in printed  # the step itself is printed
    panel = io.StringIO()
    Console(file=panel, force_terminal=True, color_system=None, width=200).print(view._panel())
    text = panel.getvalue()
    assert "[2/3] RUN pip install -r r.txt" in text and "building image" in text
    assert "Collecting six" not in text  # only the last three lines
    for line in ("Downloading six-1.17.0", "Installing collected packages: six", "Successfully installed six-1.17.0"):
        assert line in text
