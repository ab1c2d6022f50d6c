"""One command at a time changes a project's stack: an flock on `.devstack/lock`.

Every command that changes the stack (up, down, build, the end of a foreground run, the watcher
while it applies a change) holds it; a second one waits, saying which process holds it, and
gives up after a bounded wait naming that process. The kernel releases an flock when its
process dies, so a killed devstack never leaves the project locked. The lock is re-entrant
within one process (`up` holds it and converges, which takes it again), and its threads take
turns (the watcher's thread and the main thread of a foreground run).
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import DevstackError
from .settings import is_number
from .state import ensure_state_dir

LOCK_FILE = "lock"
POLL_SECONDS = 0.1
# A second `up` waits this long by default for the first (which may be building images) to finish.
DEFAULT_WAIT_SECONDS = 600.0


class StackBusy(DevstackError):
    """Another devstack process held the project's stack for longer than this one would wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds a project's lock, as that process wrote it when it took the lock."""

    pid: int
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} (`{self.command}`, since {self.since})"


def waiting_line(holder: Holder | None) -> str:
    """What a command says when it must wait for another."""
    who = holder.describe() if holder is not None else "another devstack process"
    return f"waiting for {who}, which is changing this project's stack"


def holder_command(argv: list[str] | None = None) -> str:
    """`devstack` and its arguments, with the values of `--set` left out (one may be a secret)."""
    args = list(sys.argv[1:] if argv is None else argv)
    shown: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            shown.append(arg.split("=", 1)[0] + "=…")
            hide_next = False
        elif arg in ("--set", "-s"):
            shown.append(arg)
            hide_next = True
        elif arg.startswith("--set="):
            shown.append("--set=" + arg.removeprefix("--set=").split("=", 1)[0] + "=…")
        elif arg.startswith("-s") and not arg.startswith("--"):  # -sKEY=VALUE, Click's attached form
            shown.append(arg.split("=", 1)[0] + "=…")
        else:
            shown.append(arg)
    return " ".join(["devstack", *shown])


def parse_holder(text: str) -> Holder | None:
    pid, _, rest = text.strip().partition("\t")
    command, _, since = rest.partition("\t")
    if not is_number(pid):
        return None
    return Holder(int(pid), command or "devstack", since or "?")


class ProjectLock:
    """The lock of one project folder's stack. One object per folder and process (see `project_lock`)."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / LOCK_FILE
        self._state_dir = state_dir
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self, waiting: Callable[[Holder | None], None] = lambda holder: None,
             timeout: float | None = DEFAULT_WAIT_SECONDS,
             cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the lock for the block. `waiting` is told once who holds it when this must wait;
        after `timeout` seconds (None: no bound) StackBusy names the holder; `cancelled` ends the
        wait early (StackBusy too)."""
        self.acquire(waiting, timeout, cancelled)
        try:
            yield
        finally:
            self.release()

    def acquire(self, waiting: Callable[[Holder | None], None], timeout: float | None,
                cancelled: Callable[[], bool]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while not self._thread_lock.acquire(timeout=POLL_SECONDS):  # another thread of ours holds it
            if not told:
                waiting(self.holder())
                told = True
            self._check_wait(deadline, cancelled)
        if self._depth:
            self._depth += 1
            return
        fd = -1
        try:
            fd = self._open()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        waiting(self.holder())
                        told = True
                    self._check_wait(deadline, cancelled)
                    time.sleep(POLL_SECONDS)
            record = f"{os.getpid()}\t{holder_command()}\t{datetime.now():%H:%M:%S}\n".encode()
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, len(record))  # written first, cut after: a reader never sees it empty
        except BaseException:
            if fd >= 0:
                os.close(fd)
            self._thread_lock.release()
            raise
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None
        self._thread_lock.release()

    def holder(self) -> Holder | None:
        try:
            return parse_holder(self.path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None

    def _open(self) -> int:
        ensure_state_dir(self._state_dir)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _check_wait(self, deadline: float | None, cancelled: Callable[[], bool]) -> None:
        if cancelled():
            raise StackBusy(f"stopped waiting for {self._who()} to release the stack")
        if deadline is not None and time.monotonic() >= deadline:
            raise StackBusy(f"{self._who()} is changing this project's stack ({self.path}): wait for it to "
                            "finish, or stop that process, then run this command again")

    def _who(self) -> str:
        holder = self.holder()
        return holder.describe() if holder is not None else "another devstack process"


_locks: dict[Path, ProjectLock] = {}
_locks_guard = threading.Lock()


def project_lock(state_dir: Path) -> ProjectLock:
    """The one lock object of a project folder in this process (two would block each other)."""
    key = state_dir.resolve()
    with _locks_guard:
        if key not in _locks:
            _locks[key] = ProjectLock(key)
        return _locks[key]
