"""Benchmark 7: `devstack up -d` in a checkout of the deployment (the project's own images, its RDS)
beside the same with devstack's bundled images: the first `up` (images built from nothing) and a
no-op `up` (everything already as described).

Both projects get image tags of their own, removed before the first `up` and at the end, so the
first `up` builds base and final in both. apt inside the builds reaches the Debian mirror; its
speed weighs on the first `up` of both alike.

    .venv/bin/python bench/project_up.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from _common import REPO, docker, make_project, median, report

FIXTURE = REPO / "tests" / "fixtures" / "jupyter-server"


def timed_up(project) -> float:  # noqa: ANN001
    start = time.perf_counter()
    project.run("up", "-d", timeout=1800)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="no-op `up`s per project")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    nonce = uuid.uuid4().hex[:8]
    production = make_project(root, "prod", NOTEBOOK_IMAGE_TAG=f"devstack-bench/prod-final:{nonce}")
    shutil.copytree(FIXTURE, production.dir, dirs_exist_ok=True)
    production.write_env()  # the fixture has no .env: keep the project's own
    # The base build is tagged with the final FROM's name: a tag of its own per run, by a FROM of its own.
    dockerfile = production.dir / "Dockerfile"
    ecr = f"353198996426.dkr.ecr.us-west-2.amazonaws.com/devstack-bench-base:{nonce}"
    dockerfile.write_text(dockerfile.read_text().replace(dockerfile.read_text().splitlines()[0], f"FROM {ecr}", 1))
    bundled = make_project(root, "bundled", BASE_IMAGE_TAG=f"devstack-bench/base:{nonce}",
                           NOTEBOOK_IMAGE_TAG=f"devstack-bench/final:{nonce}")
    production.image_tags = [ecr, f"devstack-bench/prod-final:{nonce}"]
    bundled.image_tags = [f"devstack-bench/final:{nonce}", f"devstack-bench/base:{nonce}"]
    first: dict[str, float] = {}
    noop: dict[str, list[float]] = {"prod": [], "bundled": []}
    try:
        for label, project in (("prod", production), ("bundled", bundled)):
            first[label] = timed_up(project)
            noop[label] = [timed_up(project) for _ in range(args.runs)]
    finally:
        for project in (production, bundled):
            project.run("down", "--volumes", check=False, timeout=300)
            for tag in project.image_tags:
                docker("rmi", tag, check=False)
    report("project_up", "Benchmark 7: `up -d` with the project's own images and RDS, beside devstack's bundled", [
        ("first up, the project's own images (base, RDS, final with its migration)", [first["prod"]], "s"),
        ("first up, devstack's bundled images", [first["bundled"]], "s"),
        ("no-op up, the project's own", noop["prod"], "s"),
        ("no-op up, bundled", noop["bundled"], "s"),
    ], {"ratio_first_project_to_bundled": round(first["prod"] / first["bundled"], 3),
        "ratio_noop_project_to_bundled": round(median(noop["prod"]) / median(noop["bundled"]), 3)},
        command=f"python bench/project_up.py --runs {args.runs}")


if __name__ == "__main__":
    main()
