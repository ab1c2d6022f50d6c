"""Benchmark 5: CPU used by an idle foreground `devstack up` (live view and watching), over 60 s.

devstack: `devstack up` in the foreground on a terminal (a pseudo-terminal here), so the rich
live view runs, with the watcher, the engine's event stream and the log followers; nothing is
saved meanwhile. Also measured: `devstack watch` without a terminal (plain lines). Baseline, in
the same windows: the by-hand way of keeping a stack in view, `watch -n 2 docker ps` (its
children's CPU included). CPU time is read from /proc/<pid>/stat (user + system, all threads).

    .venv/bin/python bench/idle_cpu.py [--runs 3] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import make_project, median, report
from helpers import OnTerminal  # the tests' harness; _common put tests/ on the path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + ((cutime + cstime) if children else 0)) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    project = make_project(root, "idle")
    project.own_templates()  # watched like any project's; never the repository's files
    project.run("up", "-d")
    env = project.cli_env(COLUMNS="160", LINES="50")
    env.pop("NO_COLOR", None)
    live = OnTerminal([sys.executable, "-m", "devstack", "up"], project.dir, env)
    plain = project.start("watch")
    baseline = OnTerminal(["watch", "-n", "2", "docker", "ps", "--filter", f"label=devstack.project={project.name}"],
                          project.dir, env)
    live_cpu, plain_cpu, baseline_cpu = [], [], []
    try:
        live.wait_for("watching")
        plain.wait_for_line("watching ")
        time.sleep(5)  # past start-up
        for run in range(args.runs):
            before = (cpu_seconds(live.process.pid), cpu_seconds(plain.process.pid),
                      cpu_seconds(baseline.process.pid, children=True))
            start = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - start
            after = (cpu_seconds(live.process.pid), cpu_seconds(plain.process.pid),
                     cpu_seconds(baseline.process.pid, children=True))
            for values, b, a in zip((live_cpu, plain_cpu, baseline_cpu), before, after):
                values.append(100 * (a - b) / elapsed)
            print(f"  window {run}: live {live_cpu[-1]:.2f} %, plain {plain_cpu[-1]:.2f} %, "
                  f"watch docker ps {baseline_cpu[-1]:.2f} %", flush=True)
    finally:
        plain.stop()
        baseline.process.terminate()
        live.process.terminate()  # SIGTERM: the foreground up stops the stack, as on Ctrl-C
        live.process.wait(timeout=120)
        project.down()
    report("idle_cpu", f"Benchmark 5: CPU of an idle foreground up with the live view, {args.seconds:.0f} s windows", [
        ("devstack up (foreground, live view on a terminal)", live_cpu, "% of one core"),
        ("devstack watch (no terminal: plain lines)", plain_cpu, "% of one core"),
        ("baseline: watch -n 2 docker ps", baseline_cpu, "% of one core"),
    ], {"ratio_live_to_baseline": round(median(live_cpu) / max(median(baseline_cpu), 1e-9), 3),
        "target": "< 2 % of one core", "target_met": median(live_cpu) < 2.0},
        command=f"python bench/idle_cpu.py --runs {args.runs} --seconds {args.seconds:g}")


if __name__ == "__main__":
    main()
