"""In what order a stop (`devstack stop`, the end of a foreground `up`) stops the stack's containers. Pure.

Containers are stopped in waves: every container of a wave at once (a Ctrl-C then waits for the
slowest, not for the sum), each wave once the one before it has stopped.

1. What serves requests, together: every notebook, its proxy and the load balancer. Not the front
   first: nginx (SIGQUIT) and haproxy (SIGUSR1) stop gracefully, which means they wait for the
   connections they hold to end, and a browser's kernel WebSocket ends only when Jupyter closes it;
   a front stopped before its notebook would wait out its whole timeout with a tab open. Nor the
   notebook first: its front, left running, would answer 502 meanwhile. Side by side, each front
   stops taking new connections at once and is done as soon as its notebook has closed them.
2. The coupled database, once no Sifu is left running: Sifu may still write while it stops (its
   own graceful stop), and a database gone first would lose those writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..spec.rds import SERVICE as DATABASE_SERVICE

# The engine's own default for `docker stop`: supervisor (Sifu, then Jupyter), nginx and haproxy
# are done well inside it. Jupyter loses nothing when cut short: notebooks are saved by the browser.
STOP_TIMEOUT_SECONDS = 10
# MySQL's clean shutdown flushes InnoDB's dirty pages first; killed before it is done, it has to
# recover from its redo log at the next start. A dev database is done in a second or two; the
# longer bound only matters when it is not, and then it is what keeps the shutdown clean.
DATABASE_STOP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class StopWave:
    services: tuple[str, ...]  # stopped side by side
    timeout: int  # seconds each gets after its stop signal before the engine kills it


def stop_waves(services: Iterable[str]) -> list[StopWave]:
    """The waves that stop these running services, first to last (empty ones left out)."""
    names = sorted(set(services))
    front = tuple(name for name in names if name != DATABASE_SERVICE)
    database = tuple(name for name in names if name == DATABASE_SERVICE)
    waves = [StopWave(front, STOP_TIMEOUT_SECONDS), StopWave(database, DATABASE_STOP_TIMEOUT_SECONDS)]
    return [wave for wave in waves if wave.services]
