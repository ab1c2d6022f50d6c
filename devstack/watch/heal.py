"""Keeping a watched stack up, as EB's agent keeps an environment up: a container that stops without
devstack stopping it (killed, crashed, or stopped by a daemon restart) is started again, a bounded
number of times; and the engine's event stream, which ends when the daemon restarts, is followed
again once the engine answers.

The change loop does the restoring (it is the one thread that changes the stack); this module holds
the rules: when to ask for it, how often it may happen, how soon to reconnect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..events import EngineBack, EngineEvent, EngineLost

# After a container dies, the restore waits this long: `devstack down` beside the run removes the
# containers milliseconds after they die, and a container that is gone is never brought back.
RESTORE_DELAY_SECONDS = 0.5
# A container is started again at most this many times within the window; when it dies once more,
# devstack stops trying and shows its last log lines (a crash loop is not fixed by starting it again).
MAX_RESTORES = 3
RESTORE_WINDOW_SECONDS = 120.0
# How long a restored stack may take to answer through the proxy (a new Jupyter takes seconds).
RESTORED_READY_SECONDS = 60.0
# Reconnecting to the engine's event stream: the first retry soon, then doubling up to this bound.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class RestoreStack:
    """Asked of the change loop: start again what of the stack stopped, `delay` seconds from now.
    `reason`: what stopped it, when the containers' state does not say (the daemon restarted)."""

    reason: str = ""
    delay: float = RESTORE_DELAY_SECONDS


def restore_request(event: EngineEvent, services: tuple[str, ...]) -> RestoreStack | None:
    """The engine's event that asks for a restore: one of the stack's own containers died (devstack's
    own stops and recreates die too; the restore then finds everything running and does nothing)."""
    if event.kind == "container" and event.action == "die" and event.service in services:
        return RestoreStack()
    return None


class CrashLoop:
    """How many times each service's container was restored within the window; pure (clock injected)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, limit: int = MAX_RESTORES,
                 window: float = RESTORE_WINDOW_SECONDS):
        self.clock = clock
        self.limit = limit
        self.window = window
        self._restores: dict[str, list[float]] = {}
        self.given_up: set[str] = set()

    def may_restore(self, service: str) -> bool:
        """Whether the service's container may be started again now; False once it used up its restores
        within the window (it is then given up until `forget` or `reset`)."""
        if service in self.given_up:
            return False
        recent = [at for at in self._restores.get(service, []) if self.clock() - at < self.window]
        self._restores[service] = recent
        if len(recent) >= self.limit:
            self.given_up.add(service)
            return False
        return True

    def restored(self, service: str) -> None:
        self._restores.setdefault(service, []).append(self.clock())

    def count(self, service: str) -> int:
        """Restores within the window so far."""
        return sum(self.clock() - at < self.window for at in self._restores.get(service, []))

    def forget(self, service: str) -> None:
        """The service's container runs again by other means (`devstack up -d`): count from zero."""
        self._restores.pop(service, None)
        self.given_up.discard(service)

    def reset(self) -> None:
        """A change was applied: whatever crash-looped may be fixed now."""
        self._restores.clear()
        self.given_up.clear()


def reconnect_delays(first: float = RECONNECT_FIRST_SECONDS, most: float = RECONNECT_MAX_SECONDS) -> Iterator[float]:
    """0.5, 1, 2, 4, 5, 5, ... seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


def follow_engine_events(events: Callable[[], Iterator[EngineEvent]], sink: Callable[[Any], None],
                         stop: threading.Event, clock: Callable[[], float] = time.monotonic,
                         delays: Callable[[], Iterator[float]] = reconnect_delays) -> threading.Thread:
    """The engine's event stream on a thread of its own, each event put on `sink`. When the stream
    ends (the daemon stopped or restarted), `EngineLost` is put once and the stream is asked for again,
    with backoff, until the engine answers: then `EngineBack`, and the stream goes on."""

    def pump() -> None:
        lost_at: float | None = None
        waits = delays()
        while not stop.is_set():
            try:
                stream = events()  # asks the engine at once: fails while nothing answers
                if lost_at is not None:
                    down = clock() - lost_at
                    sink(EngineBack(f"the Docker Engine answers again (after {down:.1f} s): restoring the stack",
                                    down_seconds=down))
                    lost_at, waits = None, delays()
                for event in stream:
                    if stop.is_set():
                        return
                    sink(event)
                error = "it ended"
            except Exception as exc:  # noqa: BLE001 - any end of the stream is reported, then retried
                error = " ".join(str(exc).split()) or type(exc).__name__
            if stop.is_set():
                return
            if lost_at is None:
                lost_at = clock()
                sink(EngineLost(f"lost the Docker Engine's event stream ({error}): reconnecting, "
                                f"retrying every {RECONNECT_MAX_SECONDS:.0f} s at most"))
            stop.wait(next(waits))

    thread = threading.Thread(target=pump, name="devstack-events", daemon=True)
    thread.start()
    return thread
