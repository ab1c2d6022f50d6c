"""Benchmark 7: what the coupled RDS adds to `devstack up -d`.

devstack: a project whose `overrides.yml` names RDS_* (so devstack runs RDS_IMAGE and waits until it
accepts the project's login before the final build): its first `up` (the database initialises a fresh
volume), an `up` after `down` (the volume's data kept), and a no-op `up` (everything runs already).
Baseline, in the same run: the same three for a project without RDS_*. The images are the tests'
(already built); each run's projects are removed, their volumes with them.

    .venv/bin/python bench/rds_up.py [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import make_project, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from seed import ensure_rds_image  # noqa: E402

OVERRIDES = "RDS_DB_NAME: production\nRDS_USERNAME: root\nRDS_PORT: 3306\n"


def timed_up(project) -> float:  # noqa: ANN001 - BenchProject
    start = time.perf_counter()
    project.run("up", "-d", timeout=600)
    return time.perf_counter() - start


def one_run(root: Path, with_rds: bool) -> tuple[float, float, float]:
    project = make_project(root, "rds" if with_rds else "plain")
    if with_rds:
        (project.dir / "overrides.yml").write_text(OVERRIDES)
    try:
        first = timed_up(project)
        project.run("down", timeout=300)
        again = timed_up(project)
        noop = timed_up(project)
        return first, again, noop
    finally:
        project.run("down", "--volumes", check=False, timeout=300)
        subprocess.run(["docker", "volume", "rm", "-f", f"{project.name}_rds-data"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_rds_image()
    results: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="devstack-bench-rds-") as tmp:
        for _ in range(args.runs):
            for with_rds in (False, True):
                results[with_rds].append(one_run(Path(tmp), with_rds))
    rows = []
    for with_rds, label in ((False, "without RDS"), (True, "with the coupled RDS")):
        for index, what in enumerate(("first up", "up after down", "no-op up")):
            rows.append((f"{label}: {what}", [run[index] for run in results[with_rds]], "s"))
    report("rds_up", "devstack up -d, without and with the coupled RDS (seconds)", rows,
           {"runs": args.runs}, "bench/rds_up.py")


if __name__ == "__main__":
    main()
