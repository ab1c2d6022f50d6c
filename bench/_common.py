"""What the watch benchmarks share: projects of their own, the CLI in the background, medians, the table.

Benchmarks are scripts, not tests: each measures devstack side by side with its baseline in the
same run, repeats, and reports medians and ratios (a table on stdout, JSON in bench/results/).
They need the engine and the seeded images, as the end-to-end tests do, and leave nothing behind
but the JSON: their projects are removed by label and their images by tag.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import wait_for  # noqa: E402  (the tests' harness)
from project import TEST_BASE_TAG as BASE_TAG, Project, new_project  # noqa: E402, F401

RESULTS = REPO / "bench" / "results"
# The docker CLI without BuildKit: the same classic builder devstack drives through the API.
DOCKER = shutil.which("docker") or "docker"
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


class BenchProject(Project):
    """The tests' project, plus what a benchmark changes: its own proxy templates or final image."""

    image_tags: list[str]  # built by this benchmark, removed at the end

    def own_templates(self) -> Path:
        from devstack import assets

        shutil.copytree(assets.nginx_dir(), self.dir / "proxy-templates")
        self.write_env(PROXY_TEMPLATES="proxy-templates")
        return self.dir / "proxy-templates"

    def own_notebook_context(self) -> Path:
        from devstack import assets

        shutil.copytree(assets.compose_dir() / "notebook", self.dir / "final")
        tag = f"devstack-bench/{self.name}:latest"
        self.image_tags.append(tag)
        self.write_env(NOTEBOOK_CONTEXT="final", NOTEBOOK_IMAGE_TAG=tag)
        return self.dir / "final"

    def down(self) -> None:
        self.run("down", check=False, timeout=300)
        for tag in self.image_tags:
            subprocess.run([DOCKER, "rmi", tag], capture_output=True)


def make_project(root: Path, label: str, **settings: str) -> BenchProject:
    """A project of the benchmark's own, on the tests' already built images (no long first build)."""
    project = new_project(root, f"bench{label}{uuid.uuid4().hex[:6]}", BenchProject, **settings)
    project.image_tags = []
    return project


def wait_until(predicate: Callable[[], Any], timeout: float = 120.0, interval: float = 0.005,
               what: str = "condition") -> Any:
    """The tests' `wait_for` with a benchmark's defaults: a long bound, and a tight poll, since the
    moment the condition holds is what is measured."""
    return wait_for(predicate, timeout=timeout, interval=interval, what=what)


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=DOCKER_ENV)
    if check and done.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(name: str, title: str, rows: list[tuple[str, list[float], str]], extra: dict[str, Any],
           command: str) -> None:
    """Print a table (label, median, runs) and write bench/results/<name>.json."""
    print(f"\n{title}")
    width = max(len(label) for label, _, _ in rows)
    for label, values, unit in rows:
        shown = " ".join(f"{v:.3f}" if unit == "s" else f"{v:.2f}" if "%" in unit else f"{v:g}" for v in values)
        print(f"  {label.ljust(width)}  median {median(values):9.3f} {unit}   runs: {shown}")
    for key, value in extra.items():
        print(f"  {key}: {value}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name, "title": title, "command": command,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "rows": [{"label": label, "unit": unit, "median": median(values), "runs": values}
                 for label, values, unit in rows],
        **extra,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"  written: {path.relative_to(REPO)}")


def stack_answers(project) -> bool:  # noqa: ANN001 - BenchProject
    """Sifu, Jupyter's gate and Jupyter with the cookie all answer through the proxy (devstack's own probes)."""
    from devstack.probes import check_once, stack_probes
    from devstack.settings import load_settings
    from devstack.spec import load_stack

    settings = load_settings(project.dir, environ={})
    spec = load_stack(settings)
    probes = stack_probes(spec, project.secret("sifu_secret"), project.secret("jupyter_token"))
    return all(result.ok for result in check_once(probes, timeout=2))


def set_header(files: list[Path], header: str, value: str) -> None:
    """Give every server of these nginx files `add_header HEADER VALUE always;`: a change that shows on
    each answer, so that a probe can tell which configuration answered."""
    for path in files:
        text = path.read_text()
        if header in text:
            text = re.sub(rf"{header} \S+ always;", f"{header} {value} always;", text)
        else:
            text = text.replace("    location / {", f"    add_header {header} {value} always;\n    location / {{", 1)
        path.write_text(text)
