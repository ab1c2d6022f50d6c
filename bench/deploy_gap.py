"""Benchmark: requests during a rebuild of the final image, as a browser sees them: how many fail, and the
longest time between two answers.

Three sides, each its own project with its own final-image context, in the same run; each run adds a
`RUN` line to the Dockerfile (a real build step, the same on every side), then replaces the notebook:
- remove-then-start by hand, what devstack did before (and still does with EXTRA_PORTS or host mode):
  `docker build`, `docker rm -f`, `docker run`, the new IP into the upstream file, `nginx -s reload`;
- devstack, one instance: `devstack up -d`, which rebuilds then does the staging flip;
- devstack, two instances (INSTANCES=2, HTTP listeners with stickiness, EB's minimal health check
  timings): `devstack up -d`, a rolling deployment, one instance at a time;
- the same with `DeploymentPolicy: Immutable`: each instance's new container beside its old one, the
  instance never out of the rotation.
A logged-in client requests Sifu's /health and Jupyter's /api/status through the stack's ports every
20 ms from before the change until the stack is replaced.

    .venv/bin/python bench/deploy_gap.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

from _common import REPO, docker, make_project, median, report
from final_rebuild import add_step, by_hand

from helpers import RequestLoop, login  # noqa: E402  (the tests' harness)


def measured(project, change) -> tuple[int, float, int]:  # noqa: ANN001
    """(failed requests, longest gap in seconds, requests sent) while `change` runs."""
    with closing(login(project.sifu_url)) as client, \
            RequestLoop(client, [f"{project.sifu_url}/health", f"{project.jupyter_url}/api/status"]) as loop:
        time.sleep(1.0)
        change()
        time.sleep(1.0)
    return len(loop.failures), loop.longest_gap, loop.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    hand, one = make_project(root, "hand"), make_project(root, "one")
    two, immutable = make_project(root, "two", INSTANCES="2"), make_project(root, "imm", INSTANCES="2")
    for project in (two, immutable):
        shutil.copytree(REPO / "tests" / "fixtures" / "lb-sticky", project.dir, dirs_exist_ok=True)
    (immutable.dir / ".ebextensions" / "zz-deploy.config").write_text(
        "option_settings:\n  aws:elasticbeanstalk:command:\n    DeploymentPolicy: Immutable\n")
    sides = [hand, one, two, immutable]
    contexts = {p.name: p.own_notebook_context() for p in sides}
    originals = {name: (ctx / "Dockerfile").read_text() for name, ctx in contexts.items()}
    results: dict[str, dict[str, list[float]]] = {p.name: {"failed": [], "gap": [], "sent": []} for p in sides}
    built = set()
    try:
        for project in sides:
            project.run("up", "-d")
        for run in range(args.runs):
            nonce = uuid.uuid4().hex
            for project in sides:
                dockerfile = contexts[project.name] / "Dockerfile"

                def change(project=project, dockerfile=dockerfile) -> None:  # noqa: ANN001
                    add_step(dockerfile, originals[project.name], nonce)
                    if project is hand:
                        by_hand(project, contexts[project.name], project.image_tags[0])
                    else:
                        project.run("up", "-d", timeout=600)

                failed, gap, sent = measured(project, change)
                for key, value in (("failed", failed), ("gap", gap), ("sent", sent)):
                    results[project.name][key].append(value)
                built.add(docker("inspect", "-f", "{{.Image}}", f"{project.name}-notebook"
                                 + ("-1" if project in (two, immutable) else "")).strip())
                print(f"  run {run} {project.name}: {failed} failed of {sent}, longest gap {gap:.3f} s", flush=True)
                time.sleep(3)
    finally:
        for project in sides:
            project.down()
        for image_id in built:
            docker("rmi", image_id, check=False)
    labels = {hand.name: "remove-then-start (by hand, before)", one.name: "devstack, one instance (staging flip)",
              two.name: "devstack, two instances (rolling)", immutable.name: "devstack, two instances (Immutable)"}
    rows = []
    for project in sides:
        rows.append((f"{labels[project.name]}: failed requests", results[project.name]["failed"], "requests"))
        rows.append((f"{labels[project.name]}: longest gap", results[project.name]["gap"], "s"))
    report("deploy_gap", "Requests during a rebuild of the final image: failures and the longest gap", rows,
           {"requests_sent_median": {labels[p.name]: median(results[p.name]["sent"]) for p in sides},
            "target": "zero failed requests with devstack",
            "target_met": all(v == 0 for p in (one, two, immutable) for v in results[p.name]["failed"])},
           command=f"python bench/deploy_gap.py --runs {args.runs}")


if __name__ == "__main__":
    main()
