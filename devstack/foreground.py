"""A run in the foreground: `devstack up` without -d, and `devstack watch`.

`ForegroundRun` brings the stack up, watches and shows it until Ctrl-C, SIGTERM, SIGHUP or the
stack's removal from outside (`devstack down` in another terminal), then ends the run: it stops
the stack, as compose's Ctrl-C does, or with `--rm` removes it. The CLI passes in what it needs
(the stack, whose `notify` shows lines about the run, and the console the live view draws on); this
module never prints or exits: it reports events and raises `DevstackError`s.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console

from .errors import DevstackError
from .events import Info
from .lock import StackBusy
from .reconcile import Stack
from .settings import Settings
from .snapshot import LiveFacts
from .ui.live import LiveEnd, LiveRecorder, StopRequested, run_live
from .watch.files import FileWatcher, start_watching

# Besides Ctrl-C, `kill` and the terminal being closed end a foreground run the same way (left to
# their defaults they would end devstack and leave the stack running unattended). SIGINT is set
# here too, not left to Python: a non-interactive shell starts a background job (`devstack up &`
# in a script) with SIGINT ignored (POSIX, "Shell Command Language" 2.11), Python then installs
# no KeyboardInterrupt handler of its own, and `kill -INT` would do nothing.
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, Any], None]


@contextlib.contextmanager
def ending_signals(handler: Handler) -> Iterator[None]:
    """`handler` for each ending signal while the block runs; the previous handlers after it."""
    previous = {signum: signal.signal(signum, handler) for signum in ENDING_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
    """While the stack comes up, a signal ends `up` the way Ctrl-C does (stop, or remove with --rm)."""
    raise KeyboardInterrupt


def watch_until_stopped(stack: Stack, watcher: FileWatcher | None, console: Console,
                        reload_settings: Callable[[], Settings] | None = None,
                        initial: LiveFacts | None = None) -> LiveEnd:
    """The live view and the watcher until Ctrl-C, SIGTERM, SIGHUP, or the stack removed from outside
    (which is reported). The stack itself is left as it is."""
    notify = stack.notify  # the live view takes the stack's events over while it runs
    stop = threading.Event()
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    signalled: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
        # Only what is safe in a handler: appending to a list, and SimpleQueue.put, which is
        # reentrant (Python's docs say so). The put wakes the view at once, however long it was
        # going to wait for its next tick (10 s on a terminal); the view sets `stop` itself.
        signalled.append(signum)
        inbox.put(StopRequested(signal.Signals(signum).name))

    with ending_signals(on_signal):
        try:
            ended = run_live(stack, stop, console, watcher, reload_settings=reload_settings, inbox=inbox,
                             initial=initial)
        except KeyboardInterrupt:  # a Ctrl-C that came before the handler above was in place
            ended = LiveEnd(stack)
        except OSError:
            if not (signalled or stop.is_set()):
                raise
            ended = LiveEnd(stack)  # the terminal went away as the view drew its last frame
    ended.stack.notify = notify
    if ended.removed:
        notify(Info(f"the stack of project {stack.spec.project} was removed from outside "
                    "(`devstack down`?): nothing left to stop; stopped watching"))
    return ended


class ForegroundRun:
    """One `devstack up`: come up (watching from the start unless detached), then watch until the
    run ends, then end it. Lines about the run go to the stack's `notify`."""

    def __init__(self, stack: Stack, remove: bool = False):
        self.stack = stack
        self.remove = remove
        self.watcher: FileWatcher | None = None
        self.recorded: LiveFacts | None = None  # what coming up did (its deployment): the live view starts from it

    def come_up(self, ready_timeout: float, watch: bool = True) -> bool:
        """Bring the stack up; False when a signal interrupted it (the run is then ended already).
        With `watch`, files are watched from the start, so that one saved during the first build
        is applied after it. A DevstackError is raised as it came, after `--rm` removed the stack."""
        if watch:
            self.watcher = start_watching(self.stack.settings, self.stack.spec)
        notify = self.stack.notify
        recorder = self.stack.notify = LiveRecorder(self.stack.spec.state_dir, notify)
        try:
            with ending_signals(_interrupt):
                self.stack.up(ready_timeout=ready_timeout)
        except KeyboardInterrupt:
            self._stop_watching()
            if self.stack.up_began:  # interrupted while waiting for another devstack: this run changed nothing
                self.end(self.stack)
            return False
        except DevstackError:
            self._stop_watching()
            if self.remove:
                with contextlib.suppress(DevstackError):  # the first error is the one to show
                    self.end(self.stack)
            raise
        finally:
            self.stack.notify = notify
            self.recorded = recorder.close()
        return True

    def watch_until_ended(self, console: Console, reload_settings: Callable[[], Settings] | None = None) -> LiveEnd:
        """Watch and show the stack until a signal (then stop it, or with --rm remove it), or until
        it is removed from outside (then there is nothing left to stop)."""
        ended = watch_until_stopped(self.stack, self.watcher, console, reload_settings, self.recorded)
        if not ended.removed:
            self.end(ended.stack)
        return ended

    def end(self, stack: Stack) -> None:
        """The end of a foreground run: stop the stack as compose does, or remove it (`--rm`). Another
        devstack changing the stack meanwhile is waited for (its line says whom); a second signal ends
        that wait and leaves the stack as it is (StackBusy says so). Once the stop is under way a
        signal changes nothing: it finishes, the containers are never left half stopped."""
        again = threading.Event()
        with ending_signals(lambda signum, frame: again.set()):
            try:
                if self.remove:
                    stack.notify(Info("removing the stack (--rm: images and the notebooks folder are kept)"))
                    stack.down(cancelled=again.is_set)
                else:
                    stack.notify(Info("stopping the stack (containers kept; `devstack down` removes them)"))
                    stack.stop(cancelled=again.is_set)
            except StackBusy as exc:
                if not again.is_set():
                    raise
                command = "devstack down" if self.remove else "devstack stop"
                raise StackBusy(f"{exc}: the stack is left as it is; `{command}` ends it") from None

    def _stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

