"""The foreground view: watch the sources, follow the engine, show the stack.

Four threads feed one queue (`inbox`) that only the main thread reads (and a signal handler may
put a `StopRequested` on it: a SimpleQueue, whose put is reentrant):
- the applier (watch.Applier) sends the core's events: what changed, builds, reloads, errors;
- the engine's event stream (containers starting, dying, turning healthy), pushed, not polled;
- the containers' log streams (TTY only: the view shows the latest lines);
- watchdog's observer feeds the applier, never this queue.
The main thread folds events into `LiveState` (pure) and redraws the snapshot at most
`MIN_REDRAW_SECONDS` apart; a slow tick refreshes uptimes and probes. Without a TTY it
prints one plain line per event instead. It ends when `stop` is set, a `StopRequested` arrives,
or the stack is removed from outside (`RemovalCheck`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.live import Live

from .errors import DevstackError
from .reconcile import Controller, Event
from .settings import Settings
from .status import (
    LOG_LINES,
    BuildProgress,
    LiveFacts,
    StackStatus,
    clear_live_facts,
    collect_status,
    is_probe_line,
    save_live_facts,
)
from .view import error_text, event_line, render_status
from .watch import Applier, FileWatcher, RefreshProxy

# Uptimes and probes are refreshed this often when nothing happens (the engine pushes the rest).
TICK_SECONDS = 10.0
# A build prints many lines a second: the screen is redrawn at most this often.
MIN_REDRAW_SECONDS = 0.25
# On Ctrl-C, how long to let a change being applied finish its current step before stopping.
STOP_GRACE_SECONDS = 10.0
# Docker's healthcheck runs an exec every interval: not news.
_NOISE = ("exec_create", "exec_start", "exec_die")
# `devstack down` removes the project's containers, then its network, milliseconds apart
# (reconcile.Controller.down). The event stream shows the containers going, not the network
# (network events carry no labels, so the stream's label filter drops them): after a container
# is destroyed, the stack is looked at this often, for at most this long.
REMOVAL_POLL_SECONDS = 0.2
REMOVAL_WINDOW_SECONDS = 5.0


@dataclass
class LiveState:
    """What the view shows beside the engine's snapshot, changed only by events. Pure."""

    activity: str = ""
    build: BuildProgress | None = None
    last_error: str = ""
    timeline: tuple[tuple[str, float], ...] = ()
    watching: tuple[str, ...] = ()
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def on_event(self, event: Event) -> bool:
        """Fold one of the core's events in; returns whether what is shown changed."""
        before = self.facts()
        kind = event.kind
        if kind == "build" and event.build is not None:
            b = event.build
            self.build = BuildProgress(event.target, b.step, b.total, b.instruction)
        elif kind == "watching":
            self.watching = tuple(event.data.get("folders") or ())
        elif kind == "error":
            self.last_error = error_text(event)
            self.activity, self.build = "", None
        elif kind == "applied":
            self.timeline = tuple((str(label), float(ms)) for label, ms in event.data.get("timeline") or ())
            self.activity, self.build, self.last_error = "", None, ""
        elif kind == "ready":
            self.activity, self.build = "", None
        elif kind == "info" and event.message.startswith("built "):
            self.build = None
            self.activity = event.message
        else:  # change, activity, action, proxy, info, warning: what is happening now
            self.activity = event.message
        return self.facts() != before

    def on_log(self, line: str) -> None:
        self.logs.append(line)

    def facts(self) -> LiveFacts:
        return LiveFacts(self.activity, self.build, self.last_error, self.timeline, self.watching)

    def overlay(self, snapshot: StackStatus) -> StackStatus:
        return replace(snapshot, activity=self.activity, build=self.build, last_error=self.last_error,
                       timeline=self.timeline, watching=self.watching, logs=tuple(self.logs) or snapshot.logs)


def follow_events(controller: Controller, sink: queue.SimpleQueue[Any], stop: threading.Event) -> threading.Thread:
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


def follow_logs(controller: Controller, service: str, container_id: str, sink: queue.SimpleQueue[Any],
                stop: threading.Event) -> threading.Thread:
    """One container's log stream, line by line, redacted, without devstack's own probes."""

    def pump() -> None:
        try:
            for line in controller.engine.log_lines(container_id, tail=LOG_LINES, follow=True):
                if stop.is_set():
                    return
                line = line.rstrip()
                if line and not is_probe_line(line):
                    sink.put(LogLine(f"{service} | {controller.redact(line)}"))
        except DevstackError:
            return  # the container went away: its successor gets a follower of its own

    thread = threading.Thread(target=pump, name=f"devstack-logs-{service}", daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class LogLine:
    text: str


@dataclass(frozen=True)
class StopRequested:
    """Put on the inbox (by a signal handler, say): the view ends at once, whatever it was waiting for."""

    reason: str


@dataclass(frozen=True)
class LiveEnd:
    """How a live run ended: the controller then in use (a saved `.env` replaces it), and whether the
    stack was removed from outside."""

    controller: Controller
    removed: bool = False


class RemovalCheck:
    """Tells the stack removed from outside (`devstack down` in another terminal) from devstack's own
    recreates (a saved Dockerfile or `.env`), which destroy a container too. After a container of the
    project is destroyed, the stack counts as removed once, while the applier applies nothing, no
    container of the project is left and, in bridge mode, neither is its network (host mode has none)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.removed = False
        self._until: float | None = None  # looking until then, after a container was destroyed

    def on_engine_event(self, event: dict[str, Any]) -> None:
        if event.get("Type", "container") == "container" and event.get("Action") == "destroy":
            self._until = self.clock() + REMOVAL_WINDOW_SECONDS

    def wait_time(self) -> float | None:
        """How soon to look again; None when there is nothing to look for."""
        return None if self._until is None else REMOVAL_POLL_SECONDS

    def check(self, applier: Applier, stop: threading.Event) -> bool:
        """Look at the stack; when it was removed, set `stop` (before the applier may act again)."""
        if self._until is None:
            return False
        if not applier.busy.acquire(blocking=False):
            return False  # applying a change, a recreate perhaps: look again once it is done
        try:
            controller = applier.controller
            project = controller.spec.project
            if controller.engine.containers(project):
                self._until = None  # a recreate, or a container removed by hand: the stack is still there
                return False
            if controller.spec.network_mode != "host" and controller.engine.networks(project):
                if self.clock() >= self._until:
                    self._until = None  # containers removed by hand, network kept: the next change recreates them
                return False
            self.removed = True
            stop.set()  # while the applier waits for `busy`: it starts nothing on a removed stack
            return True
        except DevstackError:
            if self.clock() >= self._until:
                self._until = None
            return False
        finally:
            applier.busy.release()


def describe_engine_event(event: dict[str, Any]) -> str:
    if "error" in event:
        return f"event stream: {event['error']}"
    attrs = (event.get("Actor") or {}).get("Attributes") or {}
    service = attrs.get("devstack.service", "") or attrs.get("name", "?")
    return f"{service}: {event.get('Action') or event.get('status') or '?'}"


def run_live(
    controller: Controller,
    stop: threading.Event,
    console: Console,
    watcher: FileWatcher | None = None,
    reload_settings: Callable[[], Settings] | None = None,
    inbox: queue.SimpleQueue[Any] | None = None,
) -> LiveEnd:
    """Watch and show the stack until `stop` is set, a `StopRequested` arrives on `inbox`, Ctrl-C, or
    the stack is removed from outside; returns the controller in use at the end (a saved `.env`
    replaces it) and whether the stack was removed."""
    inbox = queue.SimpleQueue() if inbox is None else inbox
    controller.notify = inbox.put

    def make_controller(settings: Settings) -> Controller:
        return Controller(settings, notify=inbox.put, redactor=controller.redact)

    applier = Applier(controller, inbox.put, reload_settings or (lambda: controller.settings), make_controller,
                      stop, watcher=watcher)
    state = LiveState()
    removal = RemovalCheck()
    state_dir = controller.spec.state_dir
    try:
        applier.start()
        follow_events(controller, inbox, stop)
        if console.is_terminal:
            _show_live(applier, inbox, state, stop, console, removal)
        else:
            _print_lines(applier, inbox, state, stop, console, removal)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if watcher is not None:
            watcher.stop()
        # A change half applied when the stack stops would race the stop: let its step finish, bounded.
        if applier.busy.acquire(timeout=STOP_GRACE_SECONDS):
            applier.busy.release()
        clear_live_facts(state_dir)
    return LiveEnd(applier.controller, removed=removal.removed)


def _on_engine_event(applier: Applier, event: dict[str, Any]) -> None:
    attrs = (event.get("Actor") or {}).get("Attributes") or {}
    if attrs.get("devstack.service") == "notebook" and event.get("Action") == "start":
        # It may be back on another IP: the applier rewrites the upstreams (no stale-IP 502).
        applier.inbox.put(RefreshProxy("the notebook container started"))


def _print_lines(applier: Applier, inbox: queue.SimpleQueue[Any], state: LiveState, stop: threading.Event,
                 console: Console, removal: RemovalCheck) -> None:
    """No TTY: one plain line per event; build output only as its `Step N/M` lines."""
    state_dir = applier.controller.spec.state_dir
    while not stop.is_set():
        try:
            item = inbox.get(timeout=removal.wait_time() or 1.0)
        except queue.Empty:
            removal.check(applier, stop)
            continue
        if isinstance(item, StopRequested):
            stop.set()
        elif isinstance(item, Event):
            if state.on_event(item):
                save_live_facts(state_dir, state.facts())
            if item.kind == "build" and not item.message.startswith("Step "):
                continue
            line = f"error: {error_text(item)}" if item.kind == "error" else event_line(item)
            console.print(line, markup=False, highlight=False)
        elif isinstance(item, dict):
            _on_engine_event(applier, item)
            removal.on_engine_event(item)
            console.print(describe_engine_event(item), markup=False, highlight=False)
        removal.check(applier, stop)


def _show_live(applier: Applier, inbox: queue.SimpleQueue[Any], state: LiveState, stop: threading.Event,
               console: Console, removal: RemovalCheck) -> None:
    followed: dict[str, str] = {}  # service -> container ID whose logs are followed

    def follow_current_logs() -> None:
        controller = applier.controller
        for spec in controller.spec.services:
            found = controller.engine.container(spec.container_name)
            if found is not None and found.running and followed.get(spec.name) != found.id:
                followed[spec.name] = found.id
                follow_logs(controller, spec.name, found.id, inbox, stop)

    def snapshot() -> StackStatus:
        try:
            return collect_status(applier.controller)
        except DevstackError as exc:
            state.last_error = f"cannot read the stack's state: {exc}"
            return last

    follow_current_logs()
    last = collect_status(applier.controller)
    next_tick = time.monotonic() + TICK_SECONDS
    last_draw, dirty = 0.0, False
    saved = None
    with Live(render_status(state.overlay(last)), console=console, auto_refresh=False,
              redirect_stdout=False, redirect_stderr=False) as live:
        while not stop.is_set():
            now = time.monotonic()
            wait = next_tick - now
            if dirty:
                wait = min(wait, last_draw + MIN_REDRAW_SECONDS - now)
            wait = min(wait, removal.wait_time() or wait)
            items = []
            try:
                items.append(inbox.get(timeout=max(wait, 0.01)))
                while True:
                    items.append(inbox.get_nowait())
            except queue.Empty:
                pass
            refresh = time.monotonic() >= next_tick
            for item in items:
                if isinstance(item, StopRequested):
                    stop.set()
                elif isinstance(item, Event):
                    dirty = state.on_event(item) or dirty
                elif isinstance(item, LogLine):
                    state.on_log(item.text)
                    dirty = True
                elif isinstance(item, dict):
                    _on_engine_event(applier, item)
                    removal.on_engine_event(item)
                    if "error" in item:
                        state.last_error = describe_engine_event(item)
                    elif item.get("Action") == "start":
                        follow_current_logs()
                    refresh = True
            if stop.is_set() or removal.check(applier, stop):
                break
            if refresh:
                last = snapshot()
                next_tick = time.monotonic() + TICK_SECONDS
                dirty = True
            if dirty and time.monotonic() - last_draw >= MIN_REDRAW_SECONDS:
                live.update(render_status(state.overlay(last)), refresh=True)
                facts = state.facts()
                if facts != saved:
                    save_live_facts(applier.controller.spec.state_dir, facts)
                    saved = facts
                last_draw, dirty = time.monotonic(), False
