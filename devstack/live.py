"""The foreground view: follow the engine's event stream, redraw the status on change.

The engine pushes events (no tight polling loop); a slow tick keeps uptimes
and probes fresh. When the notebook container starts again (its IP may have
changed) the proxy's upstreams are rewritten before anyone sees a 502.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from rich.console import Console
from rich.live import Live

from .reconcile import Controller
from .status import collect_status
from .view import render_status

TICK_SECONDS = 5.0
# Docker's healthcheck runs an exec every interval: not news.
_NOISE = ("exec_create", "exec_start", "exec_die")


def follow_events(controller: Controller, sink: queue.Queue[Any], stop: threading.Event) -> threading.Thread:
    """Run the blocking event stream on its own thread; only queue what it yields."""

    def pump() -> None:
        try:
            for event in controller.engine.events(controller.spec.project):
                if stop.is_set():
                    return
                action = str(event.get("Action") or event.get("status") or "")
                if not action.startswith(_NOISE):
                    sink.put(event)
        except Exception as exc:  # noqa: BLE001 - reported in the view, not fatal
            sink.put({"error": str(exc)})

    thread = threading.Thread(target=pump, name="devstack-events", daemon=True)
    thread.start()
    return thread


def handle_engine_event(controller: Controller, event: dict[str, Any]) -> str:
    """React to one engine event; returns a line describing it."""
    attrs = (event.get("Actor") or {}).get("Attributes") or {}
    service = attrs.get("devstack.service", "")
    action = str(event.get("Action") or "")
    if service == "notebook" and action == "start":
        controller.refresh_proxy()
    return f"{service or attrs.get('name', '?')}: {action}"


def run_live(controller: Controller, stop: threading.Event, console: Console) -> None:
    events: queue.Queue[Any] = queue.Queue()
    follow_events(controller, events, stop)
    last_error = ""
    if not console.is_terminal:
        while not stop.is_set():
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                continue
            console.print(_describe(controller, event))
        return
    with Live(render_status(collect_status(controller)), console=console, auto_refresh=False) as live:
        while not stop.is_set():
            try:
                event = events.get(timeout=TICK_SECONDS)
            except queue.Empty:
                event = None
            activity = ""
            if event is not None:
                activity = _describe(controller, event)
                if event.get("error"):
                    last_error = activity
            snapshot = collect_status(controller)
            from dataclasses import replace

            live.update(render_status(replace(snapshot, activity=activity, last_error=last_error)), refresh=True)


def _describe(controller: Controller, event: dict[str, Any]) -> str:
    if "error" in event:
        return f"event stream: {event['error']}"
    try:
        return handle_engine_event(controller, event)
    except Exception as exc:  # noqa: BLE001 - shown, the view goes on
        return f"error: {exc}"
