"""Live progress of an apply: a line per step start and end, Terraform-style. On a
terminal, a live panel below those lines shows every running step with a spinner and its
elapsed time; a replica waiting for readiness shows what its probe sees, with the time
left ("llm[0] loading: answering 503 (12s, 588s left)"). Elsewhere (CI logs, pipes) that
line is printed when the probe's outcome changes (not at every poll), and a "Still …"
line with the elapsed time every 10 s for steps that keep running."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from berth.ui.console import Consoles
from planner.events import Event
from planner.graph import Step

STILL_EVERY = 10.0
BUILD_LINES = 3  # a build's last output lines the terminal panel shows

VERBS = {  # kind: (while running, when done)
    "build": ("Building image", "Build complete"),
    "deliver": ("Sending image", "Image on host"),
    "pull": ("Pulling image", "Pull complete"),
    "tag": ("Tagging image", "Tagging complete"),
    "prune-image": ("Removing previous image", "Removal complete"),
    "remove-image": ("Removing image", "Removal complete"),
    "remove": ("Destroying", "Destruction complete"),
    "create": ("Creating", "Creation complete"),
    "update": ("Modifying", "Modifications complete"),
    "wait": ("Waiting for readiness", "Ready"),
    "sync-secret": ("Writing secret file", "Secret file written"),
    "remove-secret": ("Removing secret file", "Removal complete"),
    "gateway-image": ("Preparing gateway image", "Gateway image on host"),
    "gateway-start": ("Starting gateway", "Gateway started"),
    "gateway-routes": ("Loading routes", "Routes loaded"),
    "gateway-remove": ("Removing gateway", "Removal complete"),
    "roll-start": ("Starting new replica", "New replica started"),
    "roll-switch": ("Switching traffic to the new replica", "Old replica drained and stopped"),
    "watcher-image": ("Preparing watcher image", "Watcher image on host"),
    "watcher-start": ("Starting liveness watcher", "Watcher started"),
    "watcher-remove": ("Removing liveness watcher", "Removal complete"),
    "create-volume": ("Creating volume", "Volume created"),
    "remove-volume": ("Removing volume", "Removal complete"),
    "fetch-weights": ("Putting weights in the host's cache", "Weights in cache"),
}


def loading_line(step: Step, outcome: str, elapsed: float, left: float) -> str:
    """"llm[0] loading: answering 503 (12s, 588s left)"; "@HOST" after the replica off the local host."""
    address = step.address
    where = "" if address.host == "local" else f"@{address.host}"
    who = f"{address.app}[{address.index}]{where}" if address.kind == "container" else str(address)
    return f"{who} loading: {outcome} ({_duration(elapsed)}, {int(left + 0.5)}s left)"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class ApplyView:
    """Subscribes to apply events; thread-safe (events arrive from worker threads)."""

    def __init__(self, ui: Consoles) -> None:
        self.ui = ui
        self._lock = threading.Lock()
        self._running: dict[Step, list[float]] = {}  # step: [started, last line printed]
        self._seen: dict[Step, str] = {}
        self._loading: dict[Step, tuple[str, float, float, float]] = {}  # outcome, elapsed, left, when
        self._build: dict[Step, tuple[str, deque[str]]] = {}  # a build's current step, its last lines
        self._done = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="berth-progress", daemon=True)
        self._live: Any = None
        self.failures: list[Event] = []
        self.skipped: list[Event] = []

    def __enter__(self) -> ApplyView:
        if self.ui.is_terminal:
            from rich.live import Live

            self._live = Live(self._panel(), console=self.ui.out, refresh_per_second=8, transient=True)
            self._live.start()
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._ticker.join(timeout=1)
        if self._live is not None:
            self._live.stop()

    def _panel(self) -> Any:
        """The running steps, for the live display."""
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        now = time.monotonic()
        for step, times in sorted(self._running.items(), key=lambda item: item[1][0]):
            if step in self._loading:
                outcome, elapsed, left, when = self._loading[step]
                waited = now - when  # between probes, the clock goes on
                grid.add_row(Spinner("dots", style="cyan"), Text(loading_line(step, outcome, elapsed + waited,
                                                                              max(0.0, left - waited)), style="bold"))
                continue
            seen = self._seen.get(step, "")
            building = self._build.get(step)
            grid.add_row(Spinner("dots", style="cyan"), Text(str(step.address), style="bold"),
                         Text(VERBS[step.kind][0].lower()), Text(_duration(now - times[0]), style="yellow"),
                         Text(building[0] if building else f"last probe: {seen}" if seen else "", style="dim"))
            for line in building[1] if building else ():
                grid.add_row("", "", "", "", Text(f"  {line}"[:160], style="dim"))
        return grid

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, event: Event) -> None:
        step = event.step
        if step is None:
            return
        doing, done = VERBS[step.kind]
        match event.kind:
            case "started":
                now = time.monotonic()
                self._running[step] = [now, now]
                self.ui.say(f"{step.address}: {doing}...")
            case "progress" if event.detail == "output":  # a line of a build's own output
                current, last = self._build.setdefault(step, ("", deque(maxlen=BUILD_LINES)))
                last.append(event.message)
                if self._live is None:  # on a terminal the panel shows the last lines
                    self.ui.say(f"{step.address}: | {event.message}", "dim")
            case "progress":
                if step.kind == "build" and event.message.startswith("["):  # BuildKit's "[2/5] RUN ..."
                    self._build[step] = (event.message, deque(maxlen=BUILD_LINES))
                self.ui.say(f"{step.address}: {event.message}", "dim")
            case "waiting":
                self._seen[step] = event.message
                if event.left is not None:  # a probe's outcome
                    changed = self._loading.get(step, ("",))[0] != event.message
                    self._loading[step] = (event.message, event.elapsed, event.left, time.monotonic())
                    if changed and self._live is None:
                        self.ui.say(loading_line(step, event.message, event.elapsed, event.left))
            case "finished":
                self._running.pop(step, None)
                self._loading.pop(step, None)
                self._build.pop(step, None)
                extra = f" [{event.message}]" if event.message else ""
                self.ui.say(f"{step.address}: {done} after {_duration(event.elapsed)}{extra}", "green" if step.kind == "wait" else None)
            case "failed":
                self._running.pop(step, None)
                self._loading.pop(step, None)
                self._build.pop(step, None)
                self.failures.append(event)
                self.ui.say(f"{step.address}: {doing} failed after {_duration(event.elapsed)}", "bold red")
            case "skipped" | "not_started":
                self.skipped.append(event)

    def _tick(self) -> None:
        while not self._done.wait(0.25 if self._live is not None else 1.0):
            with self._lock:
                if self._live is not None:
                    self._live.update(self._panel())
                    continue
                now = time.monotonic()
                for step, times in self._running.items():
                    if now - times[1] >= STILL_EVERY:
                        times[1] = now
                        doing = VERBS[step.kind][0]
                        seen = f", last probe: {self._seen[step]}" if step in self._seen else ""
                        if step in self._build:
                            seen = f", at {self._build[step][0]}"
                        self.ui.say(f"{step.address}: Still {doing[0].lower()}{doing[1:]}... [{_duration(now - times[0])} elapsed{seen}]")

    def render_summary(self, counts: dict[str, int], interrupted: bool, destroy: bool = False) -> None:
        for event in self.failures:
            self.ui.say()
            self.ui.say(f"Error: {event.step.address}: {event.message}", "bold red", err=True)
            if event.detail.strip():
                title = "the failing step's output" if event.step.kind in ("build", "gateway-image", "watcher-image") else "the container's log"
                self.ui.say(f"  Last lines of {title}:", err=True)
                for line in event.detail.rstrip().splitlines():
                    self.ui.say(f"    {line}", "dim", err=True)
        if self.skipped:
            self.ui.say()
            for event in self.skipped:
                self.ui.say(f"Skipped: {event.step} ({event.message})", "yellow", err=True)
        # Terraform's closing lines: a destroy counts only what it destroyed.
        verb = "Destroy" if destroy else "Apply"
        line = f"{counts['destroyed']} destroyed." if destroy else (
            f"{counts['added']} added, {counts['changed']} changed, {counts['destroyed']} destroyed.")
        self.ui.say()
        if interrupted:
            self.ui.say(f"{verb} interrupted; state saved. Resources: {line}", "bold yellow")
        elif self.failures:
            self.ui.say(f"{verb} failed. Resources: {line}", "bold red")
        else:
            self.ui.say(f"{verb} complete! Resources: {line}", "bold green")
