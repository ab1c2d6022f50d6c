"""Benchmark 3: 1,000 files written within a second -> how many rebuilds (target: exactly 1).

devstack: `devstack watch` on a stack whose final-image context receives 1,000 new files in
under a second (a checkout, an unpacked archive); the rebuilds are counted from its output.
Then the same burst while the resulting build runs, followed by another 1,000 files: changes
during a rebuild must give exactly one follow-up (2 builds in all). Baseline, in the same run:
the file-system events an independent watchdog observer sees for the same burst, which is the
number of builds a watcher that acts on each event (no coalescing) would start.

    .venv/bin/python bench/burst.py [--runs 3] [--files 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _common import docker, make_project, median, report


class EventCounter:
    """A plain watchdog observer on the same folder: every create/modify/move/delete counted."""

    def __init__(self, folder: Path):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        self.count = 0
        lock = threading.Lock()
        outer = self

        class Count(FileSystemEventHandler):
            def on_any_event(self, event):  # noqa: ANN001
                if event.event_type in ("created", "modified", "moved", "deleted") and not event.is_directory:
                    with lock:
                        outer.count += 1

        self.observer = Observer()
        self.observer.schedule(Count(), str(folder), recursive=True)
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join()


def write_burst(folder: Path, files: int) -> float:
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(files):
        (folder / f"file-{i}.txt").write_text(f"{uuid.uuid4().hex}\n")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    project = make_project(root, "burst")
    context = project.own_notebook_context()
    project.run("up", "-d")
    watch = project.start("watch")
    counter = EventCounter(context)
    single_builds, events, burst_seconds, follow_up_builds, built = [], [], [], [], set()

    def notebook_image() -> str:
        return docker("inspect", "-f", "{{.Image}}", f"{project.name}-notebook").strip()

    try:
        watch.wait_for_line("watching ")
        for run in range(args.runs):
            # One burst.
            mark, counted = watch.mark(), counter.count
            burst_seconds.append(write_burst(context / f"burst-{run}", args.files))
            watch.wait_for_line("applied:", after=mark, timeout=600)
            time.sleep(3)  # anything still to come would have shown by now (quiet period 0.1 s)
            single_builds.append(watch.count("build notebook:", after=mark))
            events.append(counter.count - counted)
            built.add(notebook_image())

            # A burst, then another while the build it caused runs: one follow-up, not more.
            mark = watch.mark()
            write_burst(context / f"during-{run}-a", args.files)
            watch.wait_for_line("build notebook:", after=mark, timeout=600)
            write_burst(context / f"during-{run}-b", args.files)
            first = watch.wait_for_line("applied:", after=mark, timeout=600)
            watch.wait_for_line("applied:", after=watch.lines.index(first, mark) + 1, timeout=600)
            time.sleep(3)
            follow_up_builds.append(watch.count("build notebook:", after=mark))
            built.add(notebook_image())
            print(f"  run {run}: burst of {args.files} -> {single_builds[-1]} build(s) ({events[-1]} file events); "
                  f"burst during a build -> {follow_up_builds[-1]} builds in all", flush=True)
    finally:
        counter.stop()
        watch.stop()
        project.down()
        for image_id in built:
            docker("rmi", image_id, check=False)
    report("burst", f"Benchmark 3: {args.files} files written within a second -> rebuilds", [
        ("devstack: builds for one burst", [float(n) for n in single_builds], "builds"),
        ("baseline: file events (one build each without coalescing)", [float(n) for n in events], "events"),
        ("devstack: builds for a burst + a burst during its build", [float(n) for n in follow_up_builds], "builds"),
        ("seconds to write each burst", burst_seconds, "s"),
    ], {"target": "exactly 1 build per burst, exactly 1 follow-up for changes during a build",
        "target_met": all(n == 1 for n in single_builds) and all(n == 2 for n in follow_up_builds),
        "ratio_builds_to_events": round(median([float(n) for n in single_builds]) / max(median(events), 1), 5)},
        command=f"python bench/burst.py --runs {args.runs} --files {args.files}")


if __name__ == "__main__":
    main()
