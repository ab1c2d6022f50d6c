"""Watching: every saved file becomes the least disruptive action that applies it.

Three parts, as Tilt does it (internal/controllers/core/filewatch/fsevent/coalesce.go):
- `FileWatcher`: watchdog's observer thread only queues raw paths with the time it saw them.
  It never calls Docker.
- `Debouncer`: a stream of paths becomes batches: a batch is due after a quiet period, or after
  an upper bound when changes never stop. Its clock is injected, so tests are exact.
- `classify`: a pure function from a batch to a `ChangePlan`.

`Applier` runs the loop on a thread of its own and is the only code that changes the stack
while devstack watches, so two changes are never applied at once.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import context as build_context
from .engine import dockerignore_excludes
from .errors import ConfigError, DevstackError
from .reconcile import Controller, Event, Notify
from .settings import ENV_FILE, Settings

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

# Never part of what devstack builds or serves: version control, caches, editors' files.
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
                          ".mypy_cache", ".devstack"})
# vim (.swp .swo ..., backups `file~`, and `4913`, the file it writes to test a folder),
# emacs (`#file#`, `.#file`), JetBrains' safe write, `sed -i`'s temporary file, and other leftovers.
_EDITOR_FILE = re.compile(
    r"(\.sw[a-p]x?$|~$|^4913$|^#.*#$|^\.#|___jb_(tmp|old)___$|^sed[A-Za-z0-9]{6}$|\.bak$|\.orig$|\.tmp$"
    r"|\.pyc$|^\.DS_Store$)")

# How long a change waits for the stack to answer again before it is reported as failed.
HEALTHY_AFTER_RECREATE_SECONDS = 180.0
HEALTHY_AFTER_RELOAD_SECONDS = 30.0
KERNEL_POLL_SECONDS = 0.5


# -- coalescing ---------------------------------------------------------------


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


# -- classification -----------------------------------------------------------------


@dataclass(frozen=True)
class ImageContext:
    image: str  # "base" or "notebook"
    folder: Path
    dockerignore: tuple[str, ...]  # its .dockerignore patterns, read when the targets were made


@dataclass(frozen=True)
class WatchTargets:
    """What devstack watches, and what each place means."""

    env_file: Path
    # Every folder proxy configuration comes from, existing or not: devstack's templates and the
    # project's own EB folders (.ebextensions/.nginx/..., .platform/nginx/...).
    proxy_sources: tuple[Path, ...]
    contexts: tuple[ImageContext, ...]  # base first
    sifu_src: Path | None
    ignored_dirs: tuple[Path, ...]  # the notebooks folder and devstack's own .devstack/

    def roots(self) -> list[tuple[Path, bool]]:
        """(folder, recursive) to schedule, for the folders that exist now; a folder inside another
        recursive one is not scheduled twice. A proxy folder that does not exist yet is watched for
        through its nearest existing parent inside the project, so that creating it is seen."""
        project = self.env_file.parent
        wanted = [*self.proxy_sources, *(c.folder for c in self.contexts)]
        if self.sifu_src is not None:
            wanted.append(self.sifu_src)
        unique: list[Path] = []
        for folder in sorted({f for f in wanted if f.is_dir()}, key=lambda p: len(p.parts)):
            if not any(_inside(folder, kept) for kept in unique):
                unique.append(folder)
        flat = {project}
        for folder in self.proxy_sources:
            if not folder.is_dir():
                parent = next((p for p in folder.parents if p.is_dir()), None)
                if parent is not None and _inside(parent, project):
                    flat.add(parent)
        roots = [(folder, False) for folder in sorted(flat) if not any(_inside(folder, kept) for kept in unique)]
        return roots + [(folder, True) for folder in unique]


def watch_targets(settings: Settings, controller: Controller) -> WatchTargets:
    spec = controller.spec
    contexts = tuple(
        # The Dockerfile and .dockerignore are always sent, whatever .dockerignore says.
        ImageContext(image.name, image.context,
                     (*build_context.read_dockerignore(image.context), f"!{image.dockerfile}", "!.dockerignore"))
        for image in spec.images if image.context.is_dir())
    ignored = [spec.state_dir]
    if spec.notebooks_dir is not None:
        ignored.append(spec.notebooks_dir)
    return WatchTargets(
        env_file=settings.project_dir / ENV_FILE,
        proxy_sources=(spec.proxy.server_templates, *spec.proxy.sources),
        contexts=contexts,
        sifu_src=settings.sifu_src_path,
        ignored_dirs=tuple(ignored),
    )


@dataclass(frozen=True)
class ChangePlan:
    """What a batch of changed files means, by kind; each kind lists the files (as shown)."""

    settings: tuple[str, ...] = ()
    proxy: tuple[str, ...] = ()
    base: tuple[str, ...] = ()
    notebook: tuple[str, ...] = ()
    sifu: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.settings or self.proxy or self.base or self.notebook or self.sifu)

    @property
    def images(self) -> tuple[str, ...]:
        """Images to bring up to date: a new base means a new final image too."""
        if self.base:
            return ("base", "notebook")
        return ("notebook",) if self.notebook else ()

    def steps(self) -> list[str]:
        """The actions, in the order they are applied, in words. (A recreate of the notebook container
        also restarts Sifu, so the applier then skips the Sifu restart.)"""
        steps = []
        if self.settings:
            steps.append("resolve the settings again and recreate only the containers whose spec changed")
        if self.base:
            steps.append("rebuild base, then notebook, and recreate the notebook container")
        elif self.notebook:
            steps.append("rebuild notebook and recreate the notebook container")
        if self.proxy:
            steps.append("check the proxy configuration with nginx -t and reload nginx (no restart)")
        if self.sifu:
            steps.append("restart Sifu in the notebook container (supervisorctl; kernels untouched)")
        return steps

    def changed_files(self) -> list[str]:
        seen: dict[str, None] = {}
        for files in (self.settings, self.base, self.notebook, self.proxy, self.sifu):
            seen.update(dict.fromkeys(files))
        return list(seen)

    def describe(self) -> str:
        files = self.changed_files()
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        return f"changed {shown}: " + "; ".join(self.steps())


def classify(paths: Iterable[str], targets: WatchTargets) -> ChangePlan:
    """Map changed paths to what they mean. Pure: paths are compared, never read."""
    kinds: dict[str, list[str]] = {"settings": [], "proxy": [], "base": [], "notebook": [], "sifu": [],
                                   "ignored": []}
    project = targets.env_file.parent

    def shown(folder: Path, rel: str) -> str:
        """As the user knows the file: from the project folder, or from the folder's name outside it."""
        return (folder / rel).relative_to(project).as_posix() if _inside(folder, project) else f"{folder.name}/{rel}"

    for raw in paths:
        path = Path(raw)
        matched = False
        if not any(_inside(path, folder) for folder in targets.ignored_dirs):
            if path == targets.env_file:
                kinds["settings"].append(ENV_FILE)
                matched = True
            for folder in targets.proxy_sources:
                rel = _relevant(path, folder)
                if rel is not None:
                    kinds["proxy"].append(shown(folder, rel))
                    matched = True
                if path in folder.parents and _inside(path, project) and not is_noise(path.name):
                    # A folder on the way to a proxy folder came or went (`mkdir -p .platform/nginx/conf.d`).
                    kinds["proxy"].append(path.relative_to(project).as_posix())
                    matched = True
            if targets.sifu_src is not None:
                rel = _relevant(path, targets.sifu_src)
                if rel is not None:
                    kinds["sifu"].append(shown(targets.sifu_src, rel))
                    matched = True
            for ctx in targets.contexts:
                rel = _relevant(path, ctx.folder)
                if rel is not None and not dockerignore_excludes(list(ctx.dockerignore), rel):
                    kinds[ctx.image].append(shown(ctx.folder, rel))
                    matched = True
        if not matched:
            kinds["ignored"].append(raw)
    return ChangePlan(**{kind: tuple(dict.fromkeys(files)) for kind, files in kinds.items()})


def is_noise(rel: str) -> bool:
    """Version control, caches and editors' temporary files: never a change to apply."""
    parts = PurePosixPath(rel).parts
    return any(part in IGNORED_DIRS for part in parts[:-1]) or bool(parts) and (
        parts[-1] in IGNORED_DIRS or bool(_EDITOR_FILE.search(parts[-1])))


def _relevant(path: Path, folder: Path) -> str | None:
    """The path relative to `folder` when it is inside it and not noise."""
    if not _inside(path, folder) or path == folder:
        return None
    rel = path.relative_to(folder).as_posix()
    return None if is_noise(rel) else rel


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# -- the observer ---------------------------------------------------------------------


@dataclass(frozen=True)
class PathSeen:
    path: str
    at: float  # wall clock (time.time()) when the watcher saw it: the timeline starts here


@dataclass(frozen=True)
class RefreshProxy:
    """Asked by the engine's event stream: the notebook started again, maybe on a new IP."""

    reason: str


class FileWatcher:
    """watchdog's observer; its thread only puts `PathSeen` items on `queue`."""

    def __init__(self) -> None:
        from watchdog import events
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.queue: queue.Queue[Any] = queue.Queue()
        sink = self.queue

        class QueuePaths(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:  # noqa: PLR6301 - watchdog's interface
                now = time.time()
                sink.put(PathSeen(os.fsdecode(event.src_path), now))
                if getattr(event, "dest_path", ""):
                    sink.put(PathSeen(os.fsdecode(event.dest_path), now))

        # Only what changes content: reads (opened, closed without writing) are not subscribed to, so
        # devstack reading a build context to hash or send it is never mistaken for an edit.
        self._filter = [cls for cls in (
            events.FileCreatedEvent, events.FileModifiedEvent, events.FileDeletedEvent, events.FileMovedEvent,
            getattr(events, "FileAttribEvent", None), events.DirCreatedEvent, events.DirDeletedEvent,
            events.DirMovedEvent) if cls is not None]
        self._handler = QueuePaths()
        self._observer = Observer()
        self._lock = threading.Lock()
        self.roots: list[tuple[Path, bool]] = []

    def watch(self, roots: list[tuple[Path, bool]]) -> list[Path]:
        """Watch exactly these folders from now on; returns the ones that do not exist."""
        missing = []
        with self._lock:
            self._observer.unschedule_all()
            self.roots = []
            for folder, recursive in roots:
                if not folder.is_dir():
                    missing.append(folder)
                    continue
                self._observer.schedule(self._handler, str(folder), recursive=recursive,
                                        event_filter=self._filter)
                self.roots.append((folder, recursive))
        return missing

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


def start_watching(controller: Controller) -> FileWatcher:
    """Watch the stack's sources from now on (changes queue up until an `Applier` takes them)."""
    watcher = FileWatcher()
    watcher.watch(watch_targets(controller.settings, controller).roots())
    watcher.start()
    return watcher


# -- applying ---------------------------------------------------------------------------


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


class Applier:
    """Takes paths from the queue, coalesces them, classifies each batch and applies it."""

    def __init__(
        self,
        controller: Controller,
        notify: Notify,
        reload_settings: Callable[[], Settings],
        make_controller: Callable[[Settings], Controller],
        stop: threading.Event,
        watcher: FileWatcher | None = None,
        debouncer: Debouncer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.controller = controller
        # The watcher's queue when there is one; the engine's event stream adds RefreshProxy requests.
        self.inbox: queue.Queue[Any] = watcher.queue if watcher is not None else queue.Queue()
        self.notify = notify
        self.reload_settings = reload_settings
        self.make_controller = make_controller
        self.stop = stop
        self.watcher = watcher
        self.debouncer = debouncer or Debouncer()
        self.clock = clock
        self.sleep = sleep
        # Held while applying: a foreground run waits for it before stopping the stack, and the live
        # view holds it while it looks whether the stack was removed from outside.
        self.busy = threading.Lock()
        self.targets = watch_targets(controller.settings, controller)
        self._seen: dict[str, float] = {}
        self._refresh: RefreshProxy | None = None

    # -- the loop ----------------------------------------------------------

    def start(self) -> threading.Thread:
        if self.watcher is not None:
            if self.watcher.roots != self.targets.roots():
                self._watch_targets()
            else:
                self._announce_roots()
        thread = threading.Thread(target=self.run, name="devstack-applier", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - a bug must not end watching silently
                self._say("error", f"devstack failed while applying a change ({type(exc).__name__}: {exc}); "
                                   "still watching: save again to retry")

    def step(self, idle_wait: float = 1.0) -> None:
        """One turn: wait for a path (or the due time), take everything queued, apply what is due."""
        wait = self.debouncer.wait_time()
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
                self._refresh_proxy(request)
        if self.debouncer.due():
            paths = self.debouncer.take()
            seen = {p: self._seen.pop(p, time.time()) for p in paths}
            self._seen.clear()
            # Made again for each batch: an edited .dockerignore counts from the next save on.
            self.targets = watch_targets(self.controller.settings, self.controller)
            plan = classify(paths, self.targets)
            if self.watcher is not None and self.watcher.roots != self.targets.roots():
                self._watch_targets()  # a watched folder appeared or went away
            if not plan.empty:
                with self.busy:
                    if self.stop.is_set():
                        return
                    self.apply(plan, change_timeline(plan_paths(paths, plan), seen))

    def _take(self, item: Any) -> None:
        if isinstance(item, PathSeen):
            self.debouncer.add(item.path)
            self._seen[item.path] = item.at
        elif isinstance(item, RefreshProxy):
            self._refresh = item

    # -- applying one batch -------------------------------------------------

    def apply(self, plan: ChangePlan, timeline: Timeline) -> None:
        """Apply one classified batch; a failure is reported (in full) and the loop goes on."""
        self._say("change", plan.describe(), files=plan.changed_files(), steps=plan.steps())
        try:
            if not self._apply(plan, timeline):
                if not self.stop.is_set():
                    self._say("info", "nothing to apply: what runs already matches the saved files")
                return
            if self.stop.is_set():
                return
            self._say("activity", "waiting for the stack to answer through the proxy")
            recreated = any(label == "recreated" for label, _ in timeline.steps)
            self.controller.wait_ready(HEALTHY_AFTER_RECREATE_SECONDS if recreated else HEALTHY_AFTER_RELOAD_SECONDS)
        except DevstackError as exc:
            # BuildError carries the failing step and its output; NotReady the containers' last log lines.
            tail = list(getattr(exc, "tail", None) or getattr(exc, "logs", None) or [])
            self._say("error", str(exc), tail=tail, step=getattr(exc, "step", ""))
            return
        timeline.mark("healthy")
        summary = " → ".join(f"{label} {ms:.0f} ms" for label, ms in timeline.steps)
        self._say("applied", f"applied: {summary}", timeline=timeline.steps)

    def _apply(self, plan: ChangePlan, timeline: Timeline) -> bool:
        controller = self.controller
        acted = False
        if plan.settings:
            self._say("activity", f"resolving the settings again ({ENV_FILE} changed)")
            controller = self._reload(controller)
        recreated_notebook = False
        if plan.settings or plan.images:
            before = self._image_ids(controller)
            image_ids = controller.ensure_images()
            if self.stop.is_set():
                return False
            if image_ids != before:
                timeline.mark("built")
                acted = True
            pending = controller.plan_services(image_ids)
            recreated_notebook = any(a.target == "notebook" for a in pending)
            if any(a.target == "notebook" and a.verb == "recreate" for a in pending):
                self._wait_for_idle_kernels(controller)
            if self.stop.is_set():
                return False
            controller.reconcile_services(image_ids)
            if pending:
                timeline.mark("recreated")
                acted = True
        if plan.proxy:
            self._say("activity", "checking the proxy configuration (nginx -t) and reloading nginx")
            controller.describe_again()  # which of the project's EB proxy files exist now
            if controller.spec.proxy.project_files.any:
                controller.report_lint()  # findings on the project's EB files, as `up` shows them
            if controller.refresh_proxy():
                timeline.mark("reloaded")
                acted = True
        if plan.sifu and not recreated_notebook:
            self._say("activity", "restarting Sifu (supervisorctl restart sifu)")
            controller.restart_sifu()
            timeline.mark("restarted")
            acted = True
        return acted

    def _reload(self, controller: Controller) -> Controller:
        settings = self.reload_settings()
        if settings.project_name != controller.spec.project:
            raise ConfigError(f"DEVSTACK_PROJECT changed from {controller.spec.project} to {settings.project_name}: "
                              "that is another stack; stop devstack (Ctrl-C) and run `devstack up` again")
        fresh = self.make_controller(settings)
        fresh.check_ports()
        self.controller = fresh
        self.targets = watch_targets(settings, fresh)
        if self.watcher is not None:
            self._watch_targets()
        return fresh

    def _watch_targets(self) -> None:
        assert self.watcher is not None
        for folder in self.watcher.watch(self.targets.roots()):
            self._say("warning", f"not watching {folder}: no such folder")
        self._announce_roots()

    def _announce_roots(self) -> None:
        assert self.watcher is not None
        self._say("watching", "watching " + ", ".join(
            str(folder) + ("" if recursive else f" ({ENV_FILE})") for folder, recursive in self.watcher.roots),
            folders=[str(folder) for folder, _ in self.watcher.roots])

    @staticmethod
    def _image_ids(controller: Controller) -> dict[str, str]:
        ids = {}
        for image in controller.spec.images:
            found = controller.engine.image(image.tag)
            ids[image.name] = found.id if found else ""
        return ids

    def _wait_for_idle_kernels(self, controller: Controller) -> None:
        """A recreate kills the kernels; one busy executing gets up to KERNEL_IDLE_WAIT seconds to finish."""
        bound = controller.settings.kernel_idle_wait
        try:
            busy = controller.busy_kernels()
        except (DevstackError, ValueError, OSError) as exc:
            self._say("warning", f"could not ask Jupyter whether a kernel is busy ({exc}): recreating now")
            return
        if not busy:
            return
        self._say("activity", f"waiting up to {bound:.0f}s (KERNEL_IDLE_WAIT) for {len(busy)} busy kernel(s) "
                              "to finish executing before the notebook container is recreated")
        deadline = self.clock() + bound
        while busy and self.clock() < deadline and not self.stop.is_set():
            self.sleep(KERNEL_POLL_SECONDS)
            try:
                busy = controller.busy_kernels()
            except (DevstackError, ValueError, OSError):
                break
        if busy:
            self._say("warning", f"{len(busy)} kernel(s) still busy after {bound:.0f}s: recreating the notebook "
                                 "container anyway (raise KERNEL_IDLE_WAIT to wait longer)")
        else:
            self._say("info", "kernels idle: recreating the notebook container")

    def _refresh_proxy(self, request: RefreshProxy) -> None:
        try:
            self.controller.refresh_proxy()
        except DevstackError as exc:
            self._say("error", f"{request.reason}: {exc}", tail=[], step="")

    def _say(self, kind: str, message: str, **data: Any) -> None:
        redact = self.controller.redact
        if "tail" in data:  # a build's output or a container's log lines can carry a secret too
            data["tail"] = [redact(str(line)) for line in data["tail"]]
        self.notify(Event(kind, redact(message), data=data))


def plan_paths(paths: tuple[str, ...], plan: ChangePlan) -> list[str]:
    """The batch's paths that mean something (their save starts the timeline); all of them if none does."""
    ignored = set(plan.ignored)
    return [p for p in paths if p not in ignored] or list(paths)
