"""Benchmark 4: a saved change in SIFU_SRC -> Sifu answering again with it; Jupyter's kernels alive.

devstack: `devstack watch` on a stack with SIFU_SRC (a Sifu checkout mounted over /opt/sifu);
the stand-in's /health is edited to report a new version and the clock stops when it does.
Baseline, in the same run, on a second stack with the same mount: the same edit, then
`docker exec <notebook> supervisorctl restart sifu` by hand (both sides polled from the save on). On both, a kernel holding `x = 42`
is asked for `x` after all the runs: alive means it still answers 42.

    .venv/bin/python bench/sifu_restart.py [--runs 10]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from _common import DOCKER, make_project, median, report, wait_until


def set_version(app: Path, version: str) -> None:
    text = app.read_text()
    if '"version"' in text:
        text = re.sub(r'"version": "[^"]*"', f'"version": "{version}"', text)
    else:
        text = text.replace('"service": "sifu-standin"', f'"service": "sifu-standin", "version": "{version}"')
    app.write_text(text)


def answers(project, version: str) -> bool:  # noqa: ANN001
    try:
        return httpx.get(f"{project.sifu_url}/health", trust_env=False, timeout=2).json().get("version") == version
    except (httpx.HTTPError, ValueError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from helpers import execute, login, start_kernel  # the tests' harness; _common put tests/ on the path

    from devstack import assets

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    watched, manual = make_project(root, "sifuw"), make_project(root, "sifuh")
    kernels = {}
    for project in (watched, manual):
        shutil.copytree(assets.compose_dir() / "notebook" / "sifu", project.dir / "sifu-src")
        project.write_env(SIFU_SRC="sifu-src")
        project.run("up", "-d")
        client = login(project.sifu_url)
        kernel = start_kernel(client, project.jupyter_url)
        assert execute(client, project.jupyter_url, kernel, "x = 42; x") == "42"
        kernels[project.name] = (client, kernel)
    watch = watched.start("watch")
    devstack, hand = [], []
    try:
        watch.wait_for_line("watching ")
        for run in range(args.runs):
            mark = watch.mark()
            start = time.perf_counter()
            set_version(watched.dir / "sifu-src" / "app.py", f"w{run}")
            wait_until(lambda v=f"w{run}": answers(watched, v), interval=0.01, what="devstack's Sifu restart")
            devstack.append(time.perf_counter() - start)
            watch.wait_for_line("applied:", after=mark)

            start = time.perf_counter()
            set_version(manual.dir / "sifu-src" / "app.py", f"h{run}")
            # Polled while the command runs, as devstack's side is: supervisorctl itself returns only
            # after startsecs (1 s), and the new Sifu may answer before that.
            restart = subprocess.Popen([DOCKER, "exec", f"{manual.name}-notebook", "supervisorctl", "restart", "sifu"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda v=f"h{run}": answers(manual, v), interval=0.01, what="the restart by hand")
            hand.append(time.perf_counter() - start)
            restart.wait(timeout=60)
            time.sleep(0.5)
        alive = {}
        for project in (watched, manual):
            client, kernel = kernels[project.name]
            try:
                alive[project.name] = execute(client, project.jupyter_url, kernel, "x") == "42"
            except (AssertionError, OSError):  # the kernel (or its websocket) is gone
                alive[project.name] = False
        builds = watch.count("build ")
    finally:
        watch.stop()
        for project in (watched, manual):
            project.down()
    report("sifu_restart", "Benchmark 4: SIFU_SRC saved -> Sifu answering again; kernels alive", [
        ("devstack watch (save -> new Sifu answering)", devstack, "s"),
        ("baseline: docker exec supervisorctl restart sifu by hand", hand, "s"),
    ], {"ratio_devstack_to_by_hand": round(median(devstack) / median(hand), 3),
        "kernel_alive_after_all_runs_devstack": alive[watched.name],
        "kernel_alive_after_all_runs_by_hand": alive[manual.name],
        "images_built_by_devstack": builds},
        command=f"python bench/sifu_restart.py --runs {args.runs}")


if __name__ == "__main__":
    main()
