"""The file watcher: watchdog's observer thread only queues the paths it sees, with the time it
saw them. It never calls Docker."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..spec import StackSpec
from .classify import watch_targets


@dataclass(frozen=True)
class PathSeen:
    path: str
    at: float  # wall clock (time.time()) when the watcher saw it: the timeline starts here


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


def start_watching(settings: Settings, spec: StackSpec) -> FileWatcher:
    """Watch the stack's sources from now on (changes queue up until a `ChangeLoop` takes them)."""
    watcher = FileWatcher()
    watcher.watch(watch_targets(settings, spec).roots())
    watcher.start()
    return watcher
