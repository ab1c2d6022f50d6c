"""Whether the stack a foreground run watches was removed from outside (`devstack down` in another
terminal), told apart from devstack's own recreates, which destroy a container too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import DevstackError
from ..events import EngineEvent
from .changes import ChangeLoop

# `devstack down` removes the project's containers, then its network, milliseconds apart
# (reconcile.Stack.down). The event stream shows the containers going, not the network
# (network events carry no labels, so the stream's label filter drops them): after a container
# is destroyed, the stack is looked at this often, for at most this long.
REMOVAL_POLL_SECONDS = 0.2
REMOVAL_WINDOW_SECONDS = 5.0


class RemovalCheck:
    """After a container of the project is destroyed, the stack counts as removed once, while the change
    loop applies nothing, no container of the project is left and, in bridge mode, neither is its network."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.removed = False
        self._until: float | None = None  # looking until then, after a container was destroyed

    def on_engine_event(self, event: EngineEvent) -> None:
        if event.kind == "container" and event.action == "destroy":
            self._until = self.clock() + REMOVAL_WINDOW_SECONDS

    def wait_time(self) -> float | None:
        """How soon to look again; None when there is nothing to look for."""
        return None if self._until is None else REMOVAL_POLL_SECONDS

    def check(self, changes: ChangeLoop, stop: threading.Event) -> bool:
        """Look at the stack; when it was removed, set `stop` (before the change loop may act again)."""
        if self._until is None:
            return False
        if not changes.busy.acquire(blocking=False):
            return False  # applying a change, a recreate perhaps: look again once it is done
        try:
            containers, network = changes.stack.running.remains()
            if containers:
                self._until = None  # a recreate, or a container removed by hand: the stack is still there
                return False
            if network:
                if self.clock() >= self._until:
                    self._until = None  # containers removed by hand, network kept: the next change recreates them
                return False
            self.removed = True
            stop.set()  # while the change loop waits for `busy`: it starts nothing on a removed stack
            return True
        except DevstackError:
            if self.clock() >= self._until:
                self._until = None
            return False
        finally:
            changes.busy.release()
