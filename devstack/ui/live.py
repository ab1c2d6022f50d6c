"""The foreground view: watch the sources, follow the engine, show the stack.

Four threads feed one queue (`inbox`) that only the main thread reads (and a signal handler may
put a `StopRequested` on it: a SimpleQueue, whose put is reentrant):
- the change loop (watch.changes.ChangeLoop) sends the core's events: what changed, builds, reloads,
  errors, restores of stopped containers;
- the engine's event stream (containers starting, dying, turning healthy), pushed, not polled, and
  asked for again when it ends (watch.heal: a daemon restart);
- the containers' log streams (TTY only: the view shows the latest lines);
- watchdog's observer feeds the change loop, never this queue.
The main thread folds events into `LiveState` (pure) and redraws the snapshot at most
`MIN_REDRAW_SECONDS` apart; a slow tick refreshes uptimes and probes. Without a TTY it
prints one plain line per event instead. It ends when `stop` is set, a `StopRequested` arrives,
or the stack is removed from outside (watch.removal.RemovalCheck).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live

from ..errors import DevstackError
from ..events import (
    BuildOutput,
    ChangeApplied,
    ChangeFailed,
    DeploymentProgress,
    EngineBack,
    EngineEvent,
    EngineLost,
    Event,
    ImageBuilt,
    Notify,
    Ready,
    Restored,
    RestoreFailed,
    Restoring,
    Watching,
)
from ..reconcile import Stack
from ..settings import Settings
from ..snapshot import (
    LOG_LINES,
    BuildProgress,
    DeploymentFacts,
    LiveFacts,
    StackStatus,
    clear_live_facts,
    is_probe_line,
    save_live_facts,
)
from ..watch.changes import ChangeLoop, RefreshProxy
from ..watch.files import FileWatcher
from ..watch.heal import RestoreStack, follow_engine_events, restore_request
from ..watch.removal import RemovalCheck
from ..reconcile.running import service_kind
from .view import event_line, forget_drawn_widths, render_status

if TYPE_CHECKING:
    from ..docker.engine import ContainerInfo

# Uptimes and probes are refreshed this often when nothing happens (the engine pushes the rest).
TICK_SECONDS = 10.0
# A build prints many lines a second: the screen is redrawn at most this often.
MIN_REDRAW_SECONDS = 0.25
# On Ctrl-C, how long to let a change being applied finish its current step before stopping (a build
# is cancelled and a wait for the stack cut short at once: what is left is a create or a start).
STOP_GRACE_SECONDS = 10.0


_RECOVERY = (Restoring, Restored, RestoreFailed, EngineLost, EngineBack)


@dataclass
class LiveState:
    """What the view shows beside the engine's snapshot, changed only by events. Pure."""

    live: LiveFacts = field(default_factory=LiveFacts)
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    read_error: str = ""  # the last error reading the stack's state (the engine gone): cleared once it is back

    def on_event(self, event: Event) -> bool:
        """Fold one of the core's events in; returns whether what is shown changed."""
        before = self.live
        if isinstance(event, _RECOVERY):  # what keeping the stack up did last, with when
            self.live = replace(self.live, recovery=f"{time.strftime('%H:%M:%S')} {event.message}")
        if isinstance(event, DeploymentProgress):
            self.live = replace(self.live, deployment=DeploymentFacts(
                event.policy, event.batch, event.batches, event.instances, event.phase, time.strftime("%H:%M:%S")))
        if isinstance(event, (EngineBack, Restored)) and self.read_error and self.live.last_error == self.read_error:
            self.live = replace(self.live, last_error="")
        live = self.live
        if isinstance(event, BuildOutput):
            self.live = replace(live, build=BuildProgress(event.target, event.step, event.total, event.instruction))
        elif isinstance(event, Watching):
            self.live = replace(live, watching=event.folders)
        elif isinstance(event, ChangeFailed):
            self.live = replace(live, last_error=event.full_text(), activity="", build=None)
        elif isinstance(event, ChangeApplied):
            self.live = replace(live, timeline=event.timeline, activity="", build=None, last_error="")
        elif isinstance(event, (Ready, Restored)):
            self.live = replace(live, activity="", build=None)
        elif isinstance(event, ImageBuilt):
            self.live = replace(live, activity=event.message, build=None)
        else:  # a change seen, an activity, an action, a reload, a notice: what is happening now
            self.live = replace(live, activity=event.message)
        return self.live != before

    def on_error(self, message: str) -> None:
        self.read_error = message
        self.live = replace(self.live, last_error=message)

    def on_log(self, line: str) -> None:
        self.logs.append(line)

    def facts(self) -> LiveFacts:
        return self.live

    def overlay(self, snapshot: StackStatus) -> StackStatus:
        return replace(snapshot, live=self.live, logs=tuple(self.logs) or snapshot.logs)


class LiveRecorder:
    """While `up` brings the stack up (before any live view runs, and all of `up -d`), the core's events
    are folded as the live view folds them and written to `.devstack/live.json`, so that `devstack
    status` beside it shows what it is doing: the build's step, the deployment's batch. Each event is
    passed on to `notify`."""

    def __init__(self, state_dir: Path, notify: Notify):
        self.state_dir = state_dir
        self.notify = notify
        self.state = LiveState()
        self._saved_at = 0.0

    def __call__(self, event: Event) -> None:
        self.notify(event)
        if not self.state.on_event(event):
            return
        now = time.monotonic()
        if isinstance(event, BuildOutput) and now - self._saved_at < MIN_REDRAW_SECONDS:
            return  # a build prints many lines a second: its step is written a few times a second
        save_live_facts(self.state_dir, self.state.facts())
        self._saved_at = now

    def close(self) -> LiveFacts:
        """What was recorded (a live view that follows starts from it); `live.json` is cleared."""
        clear_live_facts(self.state_dir)
        return replace(self.state.facts(), activity="", build=None)


LogKey = tuple[str, Any]  # a container's ID and when it started: a restart keeps the ID


def log_follow(previous: LogKey | None, found: ContainerInfo | None) -> tuple[LogKey, dict[str, Any]] | None:
    """Whether to follow a service's logs anew: (what is followed then, the log call's arguments), or None.
    A container's log stream ends when it stops, so a container that started again with the same ID
    (`docker restart`, a restore) is followed again, from its start (its older lines were shown)."""
    if found is None or not found.running:
        return None
    key = (found.id, found.started_at)
    if key == previous:
        return None
    if previous is not None and previous[0] == found.id and found.started_at is not None:
        return key, {"tail": "all", "since": found.started_at}
    return key, {"tail": LOG_LINES}


def follow_logs(stack: Stack, service: str, container_id: str, sink: queue.SimpleQueue[Any],
                stop: threading.Event, **which: Any) -> threading.Thread:
    """One container's log stream, line by line, redacted, without devstack's own probes."""

    def pump() -> None:
        try:
            for line in stack.running.log_lines(container_id, follow=True, **{"tail": LOG_LINES, **which}):
                if stop.is_set():
                    return
                line = line.rstrip()
                if line and not is_probe_line(line):
                    sink.put(LogLine(f"{service} | {line}"))
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
    """How a live run ended: the stack then in use (a saved `.env` replaces it), and whether it was
    removed from outside."""

    stack: Stack
    removed: bool = False


def run_live(
    stack: Stack,
    stop: threading.Event,
    console: Console,
    watcher: FileWatcher | None = None,
    reload_settings: Callable[[], Settings] | None = None,
    inbox: queue.SimpleQueue[Any] | None = None,
    initial: LiveFacts | None = None,
) -> LiveEnd:
    """Watch and show the stack until `stop` is set, a `StopRequested` arrives on `inbox`, Ctrl-C, or
    the stack is removed from outside; returns the stack in use at the end (a saved `.env`
    replaces it) and whether it was removed."""
    inbox = queue.SimpleQueue() if inbox is None else inbox
    stack.notify = inbox.put

    def make_stack(settings: Settings) -> Stack:
        # A saved .env makes the stack anew; they all share the first one's engine connection.
        return Stack(settings, notify=inbox.put, redactor=stack.redact, connect=stack.engine)

    changes = ChangeLoop(stack, inbox.put, reload_settings or (lambda: stack.settings), make_stack,
                         stop, watcher=watcher)
    state = LiveState(live=initial or LiveFacts())  # what `up` did before: its deployment, say
    removal = RemovalCheck()
    state_dir = stack.spec.state_dir
    try:
        changes.start()
        follow_engine_events(lambda: changes.stack.running.events(), inbox.put, stop)
        if console.is_terminal:
            _show_live(changes, inbox, state, stop, console, removal)
        else:
            _print_lines(changes, inbox, state, stop, console, removal)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if watcher is not None:
            watcher.stop()
        changes.stack.cancel_builds()  # a rebuild the watcher started ends now, not at its last step
        # A change half applied when the stack stops would race the stop: let its step finish, bounded.
        if changes.busy.acquire(timeout=STOP_GRACE_SECONDS):
            changes.busy.release()
        clear_live_facts(state_dir)
    return LiveEnd(changes.stack, removed=removal.removed)


def _on_engine_event(changes: ChangeLoop, event: EngineEvent) -> None:
    if service_kind(event.service) == "notebook" and event.action == "start":  # notebook, or notebook-K
        # It may be back on another IP: the change loop rewrites the upstreams (no stale-IP 502).
        changes.inbox.put(RefreshProxy("the notebook container started"))
    request = restore_request(event, tuple(service.name for service in changes.stack.spec.services))
    if request is not None:
        changes.inbox.put(request)


def _on_engine_back(changes: ChangeLoop) -> None:
    """The daemon restarted: what it stopped meanwhile (no event said so) is restored now."""
    changes.inbox.put(RestoreStack("the Docker Engine restarted", delay=0.0))


def _print_lines(changes: ChangeLoop, inbox: queue.SimpleQueue[Any], state: LiveState, stop: threading.Event,
                 console: Console, removal: RemovalCheck) -> None:
    """No TTY: one plain line per event; build output only as its `Step N/M` lines."""
    state_dir = changes.stack.spec.state_dir
    while not stop.is_set():
        try:
            item = inbox.get(timeout=removal.wait_time() or 1.0)
        except queue.Empty:
            forget_drawn_widths()  # each line printed is measured once: its cached width is of no use
            removal.check(changes, stop)
            continue
        if isinstance(item, StopRequested):
            stop.set()
        elif isinstance(item, Event):
            if isinstance(item, EngineBack):
                _on_engine_back(changes)
            if state.on_event(item):
                save_live_facts(state_dir, state.facts())
            if isinstance(item, BuildOutput) and not item.is_step:
                continue
            console.print(event_line(item), markup=False, highlight=False)
        elif isinstance(item, EngineEvent):
            _on_engine_event(changes, item)
            removal.on_engine_event(item)
            console.print(item.describe(), markup=False, highlight=False)
        removal.check(changes, stop)


def _show_live(changes: ChangeLoop, inbox: queue.SimpleQueue[Any], state: LiveState, stop: threading.Event,
               console: Console, removal: RemovalCheck) -> None:
    followed: dict[str, LogKey] = {}  # service -> the container (and its start) whose logs are followed

    def follow_current_logs() -> None:
        stack = changes.stack
        try:
            for spec in stack.spec.services:
                found = stack.running.container(spec.name)
                anew = log_follow(followed.get(spec.name), found)
                if anew is not None and found is not None:
                    followed[spec.name] = anew[0]
                    follow_logs(stack, spec.name, found.id, inbox, stop, **anew[1])
        except DevstackError:
            return  # the engine went away: its return starts the containers, and their start events follow

    def snapshot() -> StackStatus:
        try:
            return changes.stack.running.status()
        except DevstackError as exc:
            state.on_error(f"cannot read the stack's state: {exc}")
            return last

    follow_current_logs()
    last = changes.stack.running.status()
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
                    if isinstance(item, EngineBack):
                        _on_engine_back(changes)
                    dirty = state.on_event(item) or dirty
                elif isinstance(item, LogLine):
                    state.on_log(item.text)
                    dirty = True
                elif isinstance(item, EngineEvent):
                    _on_engine_event(changes, item)
                    removal.on_engine_event(item)
                    if item.action == "start":
                        follow_current_logs()
                    refresh = True
            if stop.is_set() or removal.check(changes, stop):
                break
            if refresh:
                last = snapshot()
                next_tick = time.monotonic() + TICK_SECONDS
                forget_drawn_widths()  # the log lines drawn so far are gone from the screen
                dirty = True
            if dirty and time.monotonic() - last_draw >= MIN_REDRAW_SECONDS:
                live.update(render_status(state.overlay(last)), refresh=True)
                facts = state.facts()
                if facts != saved:
                    save_live_facts(changes.stack.spec.state_dir, facts)
                    saved = facts
                last_draw, dirty = time.monotonic(), False
