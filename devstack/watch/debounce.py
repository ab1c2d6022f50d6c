"""Coalescing: a stream of changed paths becomes batches, as Tilt does it
(internal/controllers/core/filewatch/fsevent/coalesce.go). The clock is injected, so tests are exact."""

from __future__ import annotations

import time
from collections.abc import Callable

# A batch is due after this much quiet, and never later than MAX_WAIT_SECONDS after its first
# change (a tool that writes without pause). Tilt uses 200 ms and 10 s (BufferMinRestDuration,
# BufferMaxDuration). The quiet period here is 100 ms: an editor's save and a checkout write
# their files milliseconds apart, so bursts still coalesce (bench/burst.py: one build for 1,000
# files), while a saved proxy configuration must answer within 0.3 s and nginx alone holds its
# old workers for 100 ms after a reload (src/os/unix/ngx_process_cycle.c: `ngx_msleep(100)` before
# it tells them to quit, and they answer new connections meanwhile): with 200 ms of
# quiet that target cannot be met (bench/proxy_reload.py: 0.35 s at 200 ms, 0.25 s at 100 ms).
QUIET_SECONDS = 0.1
MAX_WAIT_SECONDS = 10.0


class Debouncer:
    """Collects changed paths; a batch is due once no change came for `quiet` seconds,
    or `max_wait` seconds after its first change, whichever comes first."""

    def __init__(self, quiet: float = QUIET_SECONDS, max_wait: float = MAX_WAIT_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.quiet = quiet
        self.max_wait = max_wait
        self.clock = clock
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._first = 0.0
        self._last = 0.0

    def add(self, path: str) -> None:
        now = self.clock()
        if not self._pending:
            self._first = now
        self._last = now
        self._pending[path] = None

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def wait_time(self) -> float | None:
        """Seconds until the pending batch is due (0: now); None when nothing is pending."""
        if not self._pending:
            return None
        due_at = min(self._last + self.quiet, self._first + self.max_wait)
        left = due_at - self.clock()
        return 0.0 if left < 1e-6 else left  # a microsecond early is on time (float sums)

    def due(self) -> bool:
        return self.wait_time() == 0.0

    def take(self) -> tuple[str, ...]:
        batch = tuple(self._pending)
        self._pending = {}
        return batch
