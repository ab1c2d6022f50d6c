"""What the watch benchmarks share: projects of their own, the CLI in the background, medians, the table.

Benchmarks are scripts, not tests: each measures devstack side by side with its baseline in the
same run, repeats, and reports medians and ratios (a table on stdout, JSON in bench/results/).
They need the engine and the seeded images, as the end-to-end tests do, and leave nothing behind
but the JSON: their projects are removed by label and their images by tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import Background, wait_for  # noqa: E402  (the tests' harness for a CLI running in the background)

RESULTS = REPO / "bench" / "results"
# The tests' image tags for this checkout: already built, so a benchmark starts without a long build.
_CHECKOUT = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
BASE_TAG = f"devstack-test/base-notebook:{_CHECKOUT}"
NOTEBOOK_TAG = f"devstack-test/notebook:{_CHECKOUT}"
NGINX_IMAGE = os.environ.get("NGINX_IMAGE", "nginx:stable")
# The docker CLI without BuildKit: the same classic builder devstack drives through the API.
DOCKER = shutil.which("docker") or "docker"
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BenchProject:
    dir: Path
    name: str
    sifu_port: int
    jupyter_port: int
    settings: dict[str, str] = field(default_factory=dict)
    image_tags: list[str] = field(default_factory=list)  # built by this benchmark, removed at the end

    def write_env(self, **extra: str) -> None:
        self.settings.update(extra)
        (self.dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self.settings}
        env.update({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        return env

    def run(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "devstack", *args], cwd=self.dir, env=self._env(),
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"devstack {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, *args: str) -> Background:
        process = subprocess.Popen([sys.executable, "-m", "devstack", *args], cwd=self.dir, env=self._env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return Background(process)

    def secret(self, name: str) -> str:
        return (self.dir / ".devstack" / "secrets" / name).read_text()

    @property
    def sifu_url(self) -> str:
        return f"http://127.0.0.1:{self.sifu_port}"

    @property
    def jupyter_url(self) -> str:
        return f"http://127.0.0.1:{self.jupyter_port}"

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
        subprocess.run([sys.executable, "-m", "devstack", "down"], cwd=self.dir, env=self._env(),
                       capture_output=True, timeout=300)
        for tag in self.image_tags:
            subprocess.run([DOCKER, "rmi", tag], capture_output=True)


def make_project(root: Path, label: str, **settings: str) -> BenchProject:
    name = f"bench{label}{uuid.uuid4().hex[:6]}"
    folder = root / name
    folder.mkdir(parents=True)
    project = BenchProject(folder, name, free_port(), free_port())
    project.settings = {"DEVSTACK_PROJECT": name, "SIFU_PORT": str(project.sifu_port),
                        "JUPYTER_PORT": str(project.jupyter_port), "BASE_IMAGE_TAG": BASE_TAG,
                        "NOTEBOOK_IMAGE_TAG": NOTEBOOK_TAG, "NGINX_IMAGE": NGINX_IMAGE, **settings}
    project.write_env()
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
    from devstack.reconcile import host_ids
    from devstack.settings import load_settings
    from devstack.stack import describe_stack

    settings = load_settings(project.dir, environ={})
    spec = describe_stack(settings, *host_ids(settings.notebooks_path))
    probes = stack_probes(spec, project.secret("sifu_secret"), project.secret("jupyter_token"))
    return all(result.ok for result in check_once(probes, timeout=2))
