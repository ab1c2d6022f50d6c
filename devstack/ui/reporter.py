"""The core's events as a person reads them outside the live view: one line each, and the build's
progress bar (step N of M) on a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from rich.console import Console
from rich.live import Live

from ..events import BuildOutput, Event, ProxyLoaded, Ready, Warned
from ..snapshot import BuildProgress
from .view import build_progress, event_line

_STYLE: dict[type, str] = {Warned: "yellow", Ready: "bold green", ProxyLoaded: "cyan"}


class Reporter:
    """Prints events on `console`, redacted once more by `redact` (the CLI's redactor knows every secret)."""

    def __init__(self, console: Callable[[], Console], redact: Callable[[str], str]):
        self.console = console
        self.redact = redact
        self._progress: Live | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, BuildOutput):
            self._build_output(event)
            return
        self._finish_progress()
        style = _STYLE.get(type(event))
        with contextlib.suppress(OSError):  # the terminal was closed (SIGHUP): the run ends all the same
            self.console().print(self.redact(event_line(event)), style=style, markup=False)

    def _build_output(self, event: BuildOutput) -> None:
        console = self.console()
        if not console.is_terminal:
            if event.is_step:
                console.print(self.redact(f"[build {event.target}] {event.message}"), markup=False)
            return
        shown = build_progress(BuildProgress(event.target, event.step, event.total, self.redact(event.instruction)))
        if self._progress is None:
            self._progress = Live(shown, console=console, transient=True, refresh_per_second=8)
            self._progress.start()
        else:
            self._progress.update(shown)

    def _finish_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

