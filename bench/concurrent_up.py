"""Benchmark 7: commands started together in one project folder (issue 14, "one `up` at a time").

Per trial, from a removed stack: two `devstack up -d` started at the same moment; then, on the
running stack, `up -d` and `down` started together. Counted: the networks of the project's name
after the two `up -d` (goal: 1 in every trial), the runs that did not exit 0 or printed a raw
engine error or a traceback (goal: 0), and the wall time of each command (the second `up -d`
waits for the first: its time is the first one's plus its own no-op check).

    .venv/bin/python bench/concurrent_up.py [--trials 6] [--name concurrent_up]

The baseline is devstack without the lock: the same script run by a venv with an older devstack
installed (`--name concurrent_up-before`); run from outside the checkout, so that it imports that one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import docker, make_project, report

RAW = ("Traceback", "is ambiguous", "Conflict", "No such container", "No such network", "APIError")


def together(project, *commands: tuple[str, ...]) -> list[tuple[int, str, float]]:  # noqa: ANN001
    """(exit code, output, seconds) of each command, all started at once."""
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "devstack", *args], cwd=project.dir, env=project.cli_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for args in commands]
    results: list[tuple[int, str, float]] = [(0, "", 0.0)] * len(processes)

    def finish(index: int, process: subprocess.Popen) -> None:  # each clocked when it ends, not in turn
        out, _ = process.communicate(timeout=900)
        results[index] = (process.returncode, out, time.perf_counter() - started)

    threads = [threading.Thread(target=finish, args=item) for item in enumerate(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def networks(project) -> int:  # noqa: ANN001
    name = f"{project.name}_default"
    return sum(1 for line in docker("network", "ls", "--filter", f"name={name}", "--format", "{{.Name}}").split()
               if line == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--name", default="concurrent_up", help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        project = make_project(Path(root), "conc")
        try:
            project.run("up", "-d")  # the images, built once, outside the trials
            project.run("down")
            counts, first, second, up_with_down, down_with_up = [], [], [], [], []
            bad: list[str] = []
            waited = 0
            for trial in range(args.trials):
                runs = together(project, ("up", "-d"), ("up", "-d"))
                counts.append(networks(project))
                (a, b) = sorted(runs, key=lambda r: r[2])
                first.append(a[2])
                second.append(b[2])
                waited += sum("waiting for pid" in out for _, out, _ in runs)
                bad += [f"trial {trial} up -d: exit {code}" for code, out, _ in runs
                        if code != 0 or any(raw in out for raw in RAW)]
                (up, down) = together(project, ("up", "-d"), ("down",))
                up_with_down.append(up[2])
                down_with_up.append(down[2])
                bad += [f"trial {trial} {what}: exit {code}" for what, (code, out, _) in (("up", up), ("down", down))
                        if code != 0 or any(raw in out for raw in RAW)]
                project.run("down")
        finally:
            project.down()
    report(args.name, "Commands started together in one project folder", [
        ("networks after two up -d", counts, "networks"),
        ("up -d that ran first", first, "s"),
        ("up -d that waited", second, "s"),
        ("up -d beside down", up_with_down, "s"),
        ("down beside up -d", down_with_up, "s"),
    ], {"trials": args.trials, "runs that failed or printed a raw engine error": bad,
        "runs that said whom they waited for": waited},
        command=f"{sys.executable} bench/concurrent_up.py --trials {args.trials} --name {args.name}")


if __name__ == "__main__":
    main()
