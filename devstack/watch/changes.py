"""Applying what was saved: the loop that takes watched paths, coalesces them, classifies each
batch and applies it with the least disruptive action.

`ChangeLoop` runs on a thread of its own and is the only code that changes the stack while
devstack watches, so two changes are never applied at once. Whether a change recreates the
notebook container (and must wait for busy kernels first) is the plan's answer, asked as the
plan is applied.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError, DevstackError, EngineUnavailable
from ..events import (Activity, ChangeApplied, ChangeFailed, ChangeSeen, Event, Info, Notify, NothingToApply,
                      RestoreFailed, Restored, Restoring, Warned, Watching)
from ..lock import StackBusy
from ..reconcile import Stack, Step, Verb
from ..reconcile.preflight import check_environment, check_ports
from ..reconcile.running import service_kind
from ..settings import ENV_FILE, Settings
from ..snapshot import is_probe_line
from .classify import ChangePlan, WatchTargets, classify, watch_targets
from .debounce import Debouncer
from .files import FileWatcher, PathSeen
from .heal import MAX_RESTORES, RESTORE_WINDOW_SECONDS, RESTORED_READY_SECONDS, CrashLoop, RestoreStack

# How long a change waits for the stack to answer again before it is reported as failed.
HEALTHY_AFTER_RECREATE_SECONDS = 180.0
HEALTHY_AFTER_RELOAD_SECONDS = 30.0
KERNEL_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RefreshProxy:
    """Asked by the engine's event stream: the notebook started again, maybe on a new IP."""

    reason: str


@dataclass
class Timeline:
    """Milliseconds from the save to each step of applying it."""

    saved: float  # wall clock
    steps: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, label: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        self.steps.append((label, max(0.0, (at - self.saved) * 1000)))


def change_timeline(paths: Iterable[str], seen: dict[str, float]) -> Timeline:
    """The last file saved in a batch starts its timeline: its modification time when that is
    plausible (not older than a few seconds before it was seen), else when it was seen."""
    latest = max(paths, key=lambda p: seen.get(p, 0.0))
    seen_at = seen.get(latest, time.time())
    try:
        modified = os.stat(latest).st_mtime
    except OSError:
        modified = seen_at  # deleted: the event is all there is
    saved = modified if seen_at - 5.0 <= modified <= seen_at else seen_at
    timeline = Timeline(saved)
    timeline.mark("saved", saved)
    timeline.mark("seen", seen_at)
    return timeline


class _Stopping(Exception):
    """Raised between two steps when devstack is told to stop: the rest of the change is not applied."""


class ChangeLoop:
    """Takes paths from the queue, coalesces them, classifies each batch and applies it."""

    def __init__(
        self,
        stack: Stack,
        notify: Notify,
        reload_settings: Callable[[], Settings],
        make_stack: Callable[[Settings], Stack],
        stop: threading.Event,
        watcher: FileWatcher | None = None,
        debouncer: Debouncer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.stack = stack
        # The watcher's queue when there is one; the engine's event stream adds RefreshProxy requests.
        self.inbox: queue.Queue[Any] = watcher.queue if watcher is not None else queue.Queue()
        self.notify = notify
        self.reload_settings = reload_settings
        self.make_stack = make_stack
        self.stop = stop
        self.watcher = watcher
        self.debouncer = debouncer or Debouncer()
        self.clock = clock
        self.sleep = sleep
        # Held while applying: a foreground run waits for it before stopping the stack, and the live
        # view holds it while it looks whether the stack was removed from outside.
        self.busy = threading.Lock()
        self.targets = self._targets()
        self._seen: dict[str, float] = {}
        self._refresh: RefreshProxy | None = None
        self._restore: tuple[float, str] | None = None  # (when it is due, why) once a container stopped
        self.crash_loop = CrashLoop(clock)
        self._gave_up: set[str] = set()  # services whose crash loop was reported
        self._applied: list[tuple[Step, float]] = []  # the current change's steps, with when each finished

    def _targets(self) -> WatchTargets:
        return watch_targets(self.stack.settings, self.stack.spec)

    # -- the loop ----------------------------------------------------------

    def start(self) -> threading.Thread:
        if self.watcher is not None:
            if self.watcher.roots != self.targets.roots():
                self._watch_targets()
            else:
                self._announce_roots()
        thread = threading.Thread(target=self.run, name="devstack-changes", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - a bug must not end watching silently
                self._fail(f"devstack failed while applying a change ({type(exc).__name__}: {exc}); "
                           "still watching: save again to retry")

    def step(self, idle_wait: float = 1.0) -> None:
        """One turn: wait for a path (or the due time), take everything queued, apply what is due."""
        waits = [w for w in (self.debouncer.wait_time(), self._restore_wait()) if w is not None]
        wait = min(waits) if waits else None
        try:
            self._take(self.inbox.get(timeout=idle_wait if wait is None else max(wait, 0.001)))
        except queue.Empty:
            pass
        while True:  # everything queued meanwhile (during a build too) joins the same batch
            try:
                self._take(self.inbox.get_nowait())
            except queue.Empty:
                break
        if self._refresh is not None:
            request, self._refresh = self._refresh, None
            with self.busy:
                if self.stop.is_set():
                    return  # set while this thread waited for `busy` (the stack was removed, say)
                self._alone(lambda: self._refresh_proxy(request))
        if self._restore is not None and self._restore_wait() == 0.0:
            reason = self._restore[1]
            self._restore = None
            with self.busy:
                if self.stop.is_set():
                    return
                self._alone(lambda: self.restore(reason))
        if self.debouncer.due():
            paths = self.debouncer.take()
            seen = {p: self._seen.pop(p, time.time()) for p in paths}
            self._seen.clear()
            # Made again for each batch: an edited .dockerignore counts from the next save on.
            self.targets = self._targets()
            plan = classify(paths, self.targets)
            if self.watcher is not None and self.watcher.roots != self.targets.roots():
                self._watch_targets()  # a watched folder appeared or went away
            if not plan.empty:
                with self.busy:
                    if self.stop.is_set():
                        return
                    self._alone(lambda: self.apply(plan, change_timeline(plan_paths(paths, plan), seen)))

    def _alone(self, action: Callable[[], None]) -> None:
        """Apply with the project's lock held: another devstack's `up`, `build` or `down` finishes first,
        however long it takes (the live view says whom it waits for); stopping ends the wait."""
        try:
            with self.stack.exclusive(forever=True, cancelled=self.stop.is_set):
                action()
        except StackBusy:
            if not self.stop.is_set():
                raise

    def _take(self, item: Any) -> None:
        if isinstance(item, PathSeen):
            self.debouncer.add(item.path)
            self._seen[item.path] = item.at
        elif isinstance(item, RefreshProxy):
            self._refresh = item
        elif isinstance(item, RestoreStack):
            due = self.clock() + item.delay
            if self._restore is None or due < self._restore[0]:
                self._restore = (due, item.reason or (self._restore[1] if self._restore else ""))

    def _restore_wait(self) -> float | None:
        if self._restore is None:
            return None
        return max(0.0, self._restore[0] - self.clock())

    # -- applying one batch -------------------------------------------------

    def apply(self, plan: ChangePlan, timeline: Timeline) -> None:
        """Apply one classified batch; a failure is reported (in full) and the loop goes on."""
        self._say(ChangeSeen(plan.describe(), files=tuple(plan.changed_files()), steps=tuple(plan.steps())))
        try:
            if not self._apply(plan, timeline):
                if not self.stop.is_set():
                    self._say(NothingToApply("nothing to apply: what runs already matches the saved files"))
                return
            self._say(Activity("waiting for the stack to answer through the proxy"))
            # A new container takes its processes' start-up time; a reload or a Sifu restart, seconds.
            recreated = any(step.verb in (Verb.CREATE, Verb.RECREATE) for step, _ in self._applied)
            self.stack.wait_ready(HEALTHY_AFTER_RECREATE_SECONDS if recreated else HEALTHY_AFTER_RELOAD_SECONDS,
                                  stop=self.stop)
        except _Stopping:
            return
        except DevstackError as exc:
            if self.stop.is_set():
                return  # devstack is ending: a build cancelled, a wait cut short
            # BuildError carries the failing step and its output; NotReady the containers' last log lines.
            tail = list(getattr(exc, "tail", None) or getattr(exc, "logs", None) or [])
            self._fail(str(exc), tail=tail, step=getattr(exc, "step", ""))
            return
        timeline.mark("healthy")
        self.crash_loop.reset()  # what crash-looped may be fixed by what was saved
        summary = " → ".join(f"{label} {ms:.0f} ms" for label, ms in timeline.steps)
        self._say(ChangeApplied(f"applied: {summary}", timeline=tuple(timeline.steps)))

    def _apply(self, plan: ChangePlan, timeline: Timeline) -> bool:
        stack = self.stack
        acted = False
        self._applied = []
        if plan.settings:
            self._say(Activity(f"resolving the settings again ({ENV_FILE} changed)"))
            stack = self._reload()
        restarted_sifu = False
        if plan.settings or plan.images:
            applied = stack.converge(before=self._before_step, after=self._after_step)
            built = [at for step, at in self._applied if step.verb is Verb.BUILD]
            containers = [at for step, at in self._applied if step.verb in (Verb.CREATE, Verb.RECREATE, Verb.START)]
            if built:
                timeline.mark("built", built[-1])
            if containers:
                timeline.mark("recreated", containers[-1])
            restarted_sifu = any(service_kind(s.target) == "notebook" and s.verb in (Verb.CREATE, Verb.RECREATE)
                                 for s in applied)
            acted = bool(applied)
        if plan.proxy:
            self._say(Activity("checking the proxy configuration (nginx -t) and reloading nginx"))
            sidecar = stack.spec.service("proxy")
            stack.describe_again()  # which of the project's EB proxy files exist now
            if stack.spec.proxy.project_files.any:
                stack.report_lint()  # findings on the project's EB files, as `up` shows them
            if stack.spec.service("proxy") != sidecar:
                # The saved files changed the proxy's flavour (PROXY_FLAVOR=auto): another image, so the
                # sidecar is replaced, as `up` would replace it; its configuration is checked by that image.
                self._say(Info(stack.spec.proxy.choice.describe(), "proxy"))
                applied = stack.converge(before=self._before_step, after=self._after_step)
                timeline.mark("recreated")
                acted = acted or bool(applied)
            elif stack.reload_proxy():
                timeline.mark("reloaded")
                acted = True
        if plan.sifu and not restarted_sifu:  # a new notebook container started Sifu anew already
            self._say(Activity("restarting Sifu (supervisorctl restart sifu)"))
            stack.running.restart_sifu()
            timeline.mark("restarted")
            acted = True
        return acted

    def _before_step(self, step: Step) -> None:
        if self.stop.is_set():
            raise _Stopping
        if step.verb is Verb.RECREATE and service_kind(step.target) == "notebook":  # notebook, or notebook-K
            self._wait_for_idle_kernels()  # a recreate kills the kernels
            if self.stop.is_set():
                raise _Stopping

    def _after_step(self, step: Step) -> None:
        self._applied.append((step, time.time()))

    def _reload(self) -> Stack:
        settings = self.reload_settings()
        if settings.project_name != self.stack.spec.project:
            raise ConfigError(f"DEVSTACK_PROJECT changed from {self.stack.spec.project} to {settings.project_name}: "
                              "that is another stack; stop devstack (Ctrl-C) and run `devstack up` again")
        fresh = self.make_stack(settings)
        check_environment(fresh)  # a value the container could not start with, before it is recreated
        check_ports(fresh)
        self.stack.release()  # the shell it kept open in the sidecar
        self.stack = fresh
        self.targets = self._targets()
        if self.watcher is not None:
            self._watch_targets()
        return fresh

    def _watch_targets(self) -> None:
        assert self.watcher is not None
        for folder in self.watcher.watch(self.targets.roots()):
            self._say(Warned(f"not watching {folder}: no such folder"))
        self._announce_roots()

    def _announce_roots(self) -> None:
        assert self.watcher is not None
        roots = self.watcher.roots
        self._say(Watching("watching " + ", ".join(
            str(folder) + ("" if recursive else f" ({ENV_FILE})") for folder, recursive in roots),
            folders=tuple(str(folder) for folder, _ in roots)))

    def _wait_for_idle_kernels(self) -> None:
        """A recreate kills the kernels; one busy executing gets up to KERNEL_IDLE_WAIT seconds to finish."""
        stack = self.stack
        bound = stack.settings.kernel_idle_wait
        try:
            busy = stack.running.busy_kernels()
        except (DevstackError, ValueError, OSError) as exc:
            self._say(Warned(f"could not ask Jupyter whether a kernel is busy ({exc}): recreating now"))
            return
        if not busy:
            return
        self._say(Activity(f"waiting up to {bound:.0f}s (KERNEL_IDLE_WAIT) for {len(busy)} busy kernel(s) "
                           "to finish executing before the notebook container is recreated"))
        deadline = self.clock() + bound
        while busy and self.clock() < deadline and not self.stop.is_set():
            self.sleep(KERNEL_POLL_SECONDS)
            try:
                busy = stack.running.busy_kernels()
            except (DevstackError, ValueError, OSError):
                break
        if busy:
            self._say(Warned(f"{len(busy)} kernel(s) still busy after {bound:.0f}s: recreating the notebook "
                             "container anyway (raise KERNEL_IDLE_WAIT to wait longer)"))
        else:
            self._say(Info("kernels idle: recreating the notebook container"))

    # -- restoring what stopped ----------------------------------------------------

    def restore(self, reason: str = "") -> None:
        """Start again the stack's containers that stopped without devstack stopping them (each at most
        MAX_RESTORES times within the window), then wait until the stack answers through the proxy.
        Nothing when everything runs (devstack's own recreate was what died), or when a container is
        gone (the stack is being removed beside this run, or was by hand: the next change recreates it)."""
        stack = self.stack
        try:
            stopped, missing = stack.running.stopped()
        except EngineUnavailable:
            return  # the event stream reconnects and asks again once the engine answers
        except DevstackError as exc:
            self._fail(f"{reason or 'a container of the stack stopped'}, and devstack cannot tell what of it runs: {exc}")
            return
        if missing or not stopped:
            for service in self.crash_loop.given_up - {c.service for c in stopped} - set(missing):
                self.crash_loop.forget(service)  # it runs again: started by `devstack up -d`, say
            return
        allowed = []
        for container in stopped:
            if self.crash_loop.may_restore(container.service):
                allowed.append(container)
            elif container.service not in self._gave_up:
                self._gave_up.add(container.service)
                self._give_up(container)
        self._gave_up &= self.crash_loop.given_up
        if not allowed:
            return
        started = self.clock()
        shown = ", ".join(f"{c.name} ({c.status})" for c in allowed)
        counts = ", ".join(f"{self.crash_loop.count(c.service) + 1} of {MAX_RESTORES}" for c in allowed)
        it = "it" if len(allowed) == 1 else "them"
        self._say(Restoring(f"{reason + ': ' if reason else ''}{shown} stopped without devstack stopping {it}: starting {it} again, "
                            f"as EB's agent would (restore {counts} within {RESTORE_WINDOW_SECONDS:.0f} s)"))
        try:
            stack.restore(allowed)
            for container in allowed:
                self.crash_loop.restored(container.service)
            if len(allowed) == len(stopped):  # with a container given up, the stack cannot answer
                stack.wait_ready(RESTORED_READY_SECONDS, stop=self.stop)
        except EngineUnavailable:
            return
        except DevstackError as exc:
            if self.stop.is_set():
                return
            tail = list(getattr(exc, "logs", None) or [])
            self._say_failure(RestoreFailed, f"could not restore {shown}: {exc}", tail)
            return
        names = ", ".join(c.name for c in allowed)
        self._say(Restored(f"restored {names} in {self.clock() - started:.1f} s: "
                           + ("Sifu and Jupyter answer through the proxy again" if len(allowed) == len(stopped)
                              else "the rest of the stack is still down"),
                           seconds=self.clock() - started))

    def _give_up(self, container) -> None:  # noqa: ANN001 - a ContainerInfo
        try:
            tail = [line for line in self.stack.running.last_logs(container.service, lines=40)
                    if not is_probe_line(line)][-20:]
        except DevstackError:
            tail = []
        self._say_failure(RestoreFailed, (
            f"{container.name} stopped again ({container.status}) after {MAX_RESTORES} restores within "
            f"{RESTORE_WINDOW_SECONDS:.0f} s: devstack stopped restoring it (a crash loop); its last log lines "
            "are below: fix the cause, then save a change or run `devstack up -d`"), tail, step=container.service)

    def _refresh_proxy(self, request: RefreshProxy) -> None:
        try:
            # Only where a notebook came back on another address: a start the loop made itself (a
            # recreate, the staging flip) was followed by its own load, and a template saved meanwhile
            # is the next change's to apply and report.
            self.stack.reload_proxy(moved_only=True)
        except DevstackError as exc:
            self._fail(f"{request.reason}: {exc}")

    def _fail(self, message: str, tail: Iterable[str] = (), step: str = "") -> None:
        self._say_failure(ChangeFailed, message, tail, step)

    def _say_failure(self, kind: type[ChangeFailed], message: str, tail: Iterable[str] = (), step: str = "") -> None:
        redact = self.stack.redact
        # A build's output or a container's log lines can carry a secret too.
        self.notify(kind(redact(message), tail=tuple(redact(str(line)) for line in tail), step=step))

    def _say(self, event: Event) -> None:
        self.notify(replace(event, message=self.stack.redact(event.message)))


def plan_paths(paths: tuple[str, ...], plan: ChangePlan) -> list[str]:
    """The batch's paths that mean something (their save starts the timeline); all of them if none does."""
    ignored = set(plan.ignored)
    return [p for p in paths if p not in ignored] or list(paths)
