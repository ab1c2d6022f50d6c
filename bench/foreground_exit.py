"""Benchmark 6: a signal to a foreground `devstack up` -> devstack gone, its stack stopped.

devstack: `devstack up` in the foreground, started as a script's background job is (SIGINT
ignored, inherited), on a terminal (a pseudo-terminal: the rich live view) and without one
(plain lines); once it watches, SIGTERM or SIGINT, and the clock stops when the process has
exited. A run that has not ended 60 s after the signal counts as 60 s (and gets a SIGKILL).
Optionally (--kernel) a kernel's websocket is held open through the proxy meanwhile, as a
browser tab with a notebook does. Baseline, in the same run: `docker stop` of the same two
containers by hand (the engine's part of the stop: what devstack cannot do faster).

    .venv/bin/python bench/foreground_exit.py [--runs 3] [--kernel]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DOCKER, make_project, median, report
from helpers import OnTerminal  # the tests' harness; _common put tests/ on the path

GIVE_UP_SECONDS = 60.0


def ignore_sigint() -> None:
    """What a non-interactive shell does to `devstack up &`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def time_to_exit(process: subprocess.Popen, signum: int) -> float:
    start = time.perf_counter()
    process.send_signal(signum)
    try:
        process.wait(timeout=GIVE_UP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return GIVE_UP_SECONDS
    return time.perf_counter() - start


def open_kernel(project):  # noqa: ANN001, ANN201 - a websocket held open through the proxy
    import websocket
    from helpers import login, start_kernel  # the tests' harness; _common put tests/ on the path

    client = login(project.sifu_url)
    kernel = start_kernel(client, project.jupyter_url)
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    url = project.jupyter_url.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels"
    return websocket.create_connection(url, header=[f"Cookie: {cookie}"], origin=project.jupyter_url, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernel", action="store_true", help="hold a kernel's websocket open through the proxy")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    project = make_project(root, "exit")
    project.own_templates()  # watched like any project's; never the repository's files
    project.run("up", "-d")  # built and created once: each run below only starts and stops
    env = project.cli_env(COLUMNS="160", LINES="50")
    argv = [sys.executable, "-m", "devstack", "up"]
    results: dict[str, list[float]] = {}
    try:
        for run in range(args.runs):
            for terminal in (True, False):
                for signum in (signal.SIGTERM, signal.SIGINT):
                    if terminal:
                        shown = OnTerminal(argv, project.dir, env, preexec_fn=ignore_sigint)
                        shown.wait_for("watching")
                        process = shown.process
                    else:
                        background = project.start("up", preexec_fn=ignore_sigint)
                        background.wait_for_line("watching ", timeout=300)
                        process = background.process
                    held = open_kernel(project) if args.kernel else None
                    time.sleep(2)  # past start-up: the view idles between its ticks
                    seconds = time_to_exit(process, signum)
                    if held is not None:
                        held.close()
                    label = f"{signal.Signals(signum).name}, {'terminal' if terminal else 'no terminal'}"
                    results.setdefault(label, []).append(seconds)
                    print(f"  run {run}: {label}: {seconds:.3f} s (exit code {process.returncode})", flush=True)
            project.run("up", "-d")
            held = open_kernel(project) if args.kernel else None
            start = time.perf_counter()
            subprocess.run([DOCKER, "stop", f"{project.name}-notebook", f"{project.name}-proxy"],
                           capture_output=True, check=True)
            results.setdefault("baseline: docker stop of both containers", []).append(time.perf_counter() - start)
            if held is not None:
                held.close()
    finally:
        project.down()
    kernel = " with a kernel websocket open" if args.kernel else ""
    report("foreground_exit" + ("_kernel" if args.kernel else ""),
           f"Benchmark 6: signal -> foreground up exited, stack stopped{kernel} (SIGINT ignored at start)",
           [(label, values, "s") for label, values in results.items()],
           {"gave_up_after_s": GIVE_UP_SECONDS},
           command=f"python bench/foreground_exit.py --runs {args.runs}" + (" --kernel" if args.kernel else ""))


if __name__ == "__main__":
    main()
