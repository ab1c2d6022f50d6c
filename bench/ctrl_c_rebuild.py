"""Benchmark 7: Ctrl-C (or the terminal closed) during a rebuild the watcher started -> devstack gone.

devstack: a foreground `devstack up`, on a terminal (a pseudo-terminal: the rich live view) and
without one (plain lines), started as a script's background job is (SIGINT ignored, inherited).
Once it watches, a step that runs for 10 minutes is appended to the notebook's Dockerfile; when the
builder's container for that step runs, SIGINT (Ctrl-C) or, on the terminal, the terminal closed
(its pseudo-terminal's master closed, then SIGHUP, what the kernel sends the session when its
terminal goes), and the clock stops when the process has exited. Also recorded: whether the build
was cancelled (the step's container gone within 30 s of the exit) and the image left as it was.
A run that has not ended 60 s after the signal counts as 60 s (and gets a SIGKILL).

Each run is also split, from the engine's own events for the project's containers (`kill`, `die`,
timestamped by the daemon on the same clock): devstack's own part is the time from the signal to
the first container's stop signal plus the time from the last container's death to the exit (an
upper bound: the engine's own clean-up after a death, before its stop call returns, counts here);
the rest is the containers stopping. On a machine others load, the total swings by seconds with the
containers' stop; devstack's own part is the figure its changes move.

Beside it, in the same run: the engine's part of the stop (`docker stop` of both containers by
hand), and with `--before PYTHON` the same measurement of the devstack installed for another
interpreter (say a venv of the main branch: issue 14 measured 11.4 s for Ctrl-C and 10.6 s for a
closed terminal there: the change loop's 10 s grace waited out, then the stop).

    .venv/bin/python bench/ctrl_c_rebuild.py [--runs 3] [--before /tmp/venv-main/bin/python]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import DOCKER, docker, make_project, median, report
from project import PROJECT_LABEL
from helpers import Background, OnTerminal  # the tests' harness; _common put tests/ on the path

GIVE_UP_SECONDS = 60.0
STEP = "RUN sleep 600 # {token}"


def ignore_sigint() -> None:
    """What a non-interactive shell does to `devstack up &`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def step_containers(token: str) -> list[str]:
    """The builder's containers for the step carrying `token` (running or not)."""
    out = docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}")
    return [line.split()[0] for line in out.splitlines() if token in line]


def wait_until(predicate, timeout: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def stop_span(project, since: float, until: float) -> tuple[float, float] | None:
    """When the engine first signalled one of the project's containers and when the last one died, in
    its events between these times (None: it stopped none)."""
    out = docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "type=container",
                 "--filter", f"label={PROJECT_LABEL}={project.name}", "--format", "{{.Action}} {{.TimeNano}}")
    kills = [int(t) / 1e9 for action, t in (line.split() for line in out.splitlines()) if action == "kill"]
    deaths = [int(t) / 1e9 for action, t in (line.split() for line in out.splitlines()) if action == "die"]
    return (min(kills), max(deaths)) if kills and deaths else None


def one_run(project, python: str, terminal: bool, hang_up: bool, dockerfile: Path, original: str,
            tag: str) -> tuple[float, float, bool]:
    """Seconds from the signal to devstack's exit, devstack's own part of them, and whether the build
    was cancelled."""
    dockerfile.write_text(original)  # the image is up to date: `up` builds nothing at start
    argv = [python, "-m", "devstack", "up"]
    if terminal:
        env = project.cli_env(COLUMNS="160", LINES="50")
        env.pop("NO_COLOR", None)
        shown = OnTerminal(argv, project.dir, env, preexec_fn=ignore_sigint)
        shown.wait_for("watching")
        process = shown.process
    else:
        process = subprocess.Popen(argv, cwd=project.dir, env=project.cli_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, preexec_fn=ignore_sigint)
        Background(process).wait_for_line("watching ", timeout=300)
    image_before = docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
    token = uuid.uuid4().hex[:10]
    dockerfile.write_text(original + STEP.format(token=token) + "\n")
    if not wait_until(lambda: bool(step_containers(token)), timeout=300):
        raise SystemExit("the rebuild's long step never started")
    time.sleep(1)  # well inside the step
    start, sent = time.perf_counter(), time.time()
    if hang_up:
        os.close(shown.master)  # the terminal goes away...
        process.send_signal(signal.SIGHUP)  # ...and the kernel hangs up its session
    else:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=GIVE_UP_SECONDS)
        seconds = time.perf_counter() - start
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        seconds = GIVE_UP_SECONDS
    exited = time.time()
    span = stop_span(project, sent - 1, exited + 1)
    own = seconds if span is None else max(0.0, span[0] - sent) + max(0.0, exited - span[1])
    cancelled = wait_until(lambda: not step_containers(token), timeout=30)
    kept = docker("image", "inspect", "--format", "{{.Id}}", tag).strip() == image_before
    for container in step_containers(token):  # not cancelled: end it ourselves (ours: it carries our token)
        docker("rm", "-f", container, check=False)
    return seconds, own, cancelled and kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="also measure the devstack of this Python interpreter (a venv's python)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    project = make_project(root, "ctrlc")
    project.own_templates()
    context = project.own_notebook_context()  # its own tag: the tests' images are never rebuilt
    tag = project.image_tags[0]
    dockerfile = context / "Dockerfile"
    original = dockerfile.read_text()
    project.run("up", "-d")
    subjects = [("devstack", sys.executable)] + ([("before", args.before)] if args.before else [])
    results: dict[str, list[float]] = {}
    own_parts: dict[str, list[float]] = {}
    cancelled: dict[str, list[bool]] = {}
    try:
        for run in range(args.runs):
            for name, python in subjects:
                for terminal, hang_up in ((True, False), (True, True), (False, False)):
                    label = f"{name}: {'terminal closed (SIGHUP)' if hang_up else 'Ctrl-C (SIGINT)'}, " \
                            f"{'terminal' if terminal else 'no terminal'}"
                    seconds, own, was_cancelled = one_run(project, python, terminal, hang_up, dockerfile,
                                                          original, tag)
                    results.setdefault(label, []).append(seconds)
                    own_parts.setdefault(f"{label}: devstack's own part", []).append(own)
                    cancelled.setdefault(label, []).append(was_cancelled)
                    print(f"  run {run}: {label}: {seconds:.3f} s (devstack's own part {own:.3f} s), "
                          f"build cancelled: {was_cancelled}", flush=True)
            dockerfile.write_text(original)
            project.run("up", "-d")
            start = time.perf_counter()
            subprocess.run([DOCKER, "stop", f"{project.name}-notebook", f"{project.name}-proxy"],
                           capture_output=True, check=True)
            results.setdefault("baseline: docker stop of both containers", []).append(time.perf_counter() - start)
    finally:
        dockerfile.write_text(original)
        project.down()
    report("ctrl_c_rebuild", "Benchmark 7: Ctrl-C or terminal closed during a watcher's rebuild -> devstack exited",
           [(label, values, "s") for label, values in {**results, **own_parts}.items()],
           {"build_cancelled": {label: values for label, values in cancelled.items()},
            "gave_up_after_s": GIVE_UP_SECONDS,
            "issue_14_before_s": {"Ctrl-C": 11.4, "terminal closed": 10.6},
            "target_s": 2.0,
            "target_met": all(median(v) <= 2.0 for k, v in results.items() if k.startswith("devstack:"))},
           command="python bench/ctrl_c_rebuild.py --runs {}{}".format(
               args.runs, f" --before {args.before}" if args.before else ""))


if __name__ == "__main__":
    main()
