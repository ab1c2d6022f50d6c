"""Fixtures for tests against a real Docker Engine, real nginx and real Jupyter.

A missing engine is a failure, not a skip. Every project a test makes has a
unique name and free ports, and is removed by label at the end.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import ensure_seed_images  # noqa: E402

# One id per test run, so that parallel runs (and leftovers of a killed run) never collide.
RUN_ID = uuid.uuid4().hex[:6]
# Test images get their own tags: a developer's real proversity/* images are never replaced,
# and two checkouts testing different image definitions on one engine never retag each other's.
_CHECKOUT = hashlib.sha1(str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:8]
TEST_BASE_TAG = f"devstack-test/base-notebook:{_CHECKOUT}"
TEST_NOTEBOOK_TAG = f"devstack-test/notebook:{_CHECKOUT}"
NGINX_IMAGE = os.environ.get("NGINX_IMAGE", "nginx:stable")
PROJECT_LABEL = "devstack.project"

_counter = iter(range(1, 10_000))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Project:
    """A project folder with its own name, ports and `.env`, driven through the real CLI."""

    dir: Path
    name: str
    sifu_port: int
    jupyter_port: int
    settings: dict[str, str] = field(default_factory=dict)

    def write_env(self, **extra: str) -> None:
        self.settings.update(extra)
        lines = [f"{key}={value}" for key, value in self.settings.items()]
        (self.dir / ".env").write_text("\n".join(lines) + "\n")

    def run(self, *args: str, check: bool = True, timeout: float = 900, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed devstack CLI in the project folder."""
        full_env = {k: v for k, v in os.environ.items() if k not in self.settings}
        full_env.update(env or {})
        full_env["NO_COLOR"] = "1"
        result = subprocess.run([sys.executable, "-m", "devstack", *args], cwd=self.dir, env=full_env,
                                capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"devstack {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def start(self, *args: str):  # noqa: ANN201 - helpers.Background
        """Start the installed devstack CLI in the background (stdout is a pipe: plain lines)."""
        from helpers import Background

        full_env = {k: v for k, v in os.environ.items() if k not in self.settings}
        full_env.update({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        process = subprocess.Popen([sys.executable, "-m", "devstack", *args], cwd=self.dir, env=full_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return Background(process)

    @property
    def sifu_url(self) -> str:
        return f"http://127.0.0.1:{self.sifu_port}"

    @property
    def jupyter_url(self) -> str:
        return f"http://127.0.0.1:{self.jupyter_port}"

    @property
    def notebooks(self) -> Path:
        return self.dir / "notebooks"

    def secret(self, name: str) -> str:
        return (self.dir / ".devstack" / "secrets" / name).read_text()


@pytest.fixture(scope="session")
def docker_client():
    """The real engine, with the public base images seeded when no registry answers."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"these tests need a running Docker Engine ({exc}); .ci/run starts one", pytrace=False)
    ensure_seed_images(nginx_tag=NGINX_IMAGE)
    yield client
    _remove_by_label(client, f"dst{RUN_ID}", prefix=True)
    client.close()


def _remove_by_label(client, name: str, prefix: bool = False) -> None:
    """Leftovers of a project (or, with `prefix`, of this run's projects): found by label, as devstack
    finds its own."""

    def matches(project: str) -> bool:
        return project.startswith(name) if prefix else project == name

    # Other test runs share the engine: a container of theirs may vanish between listing and inspecting.
    for container in client.containers.list(all=True, filters={"label": PROJECT_LABEL}, ignore_removed=True):
        if matches(container.labels.get(PROJECT_LABEL, "")):
            container.remove(force=True)
    for network in client.networks.list(filters={"label": PROJECT_LABEL}):
        if matches(network.attrs.get("Labels", {}).get(PROJECT_LABEL, "")):
            network.remove()


def make_project(base_dir: Path, **settings: str) -> Project:
    name = f"dst{RUN_ID}p{next(_counter)}"
    folder = base_dir / name
    folder.mkdir(parents=True)
    project = Project(folder, name, free_port(), free_port())
    project.settings = {
        "DEVSTACK_PROJECT": name,
        "SIFU_PORT": str(project.sifu_port),
        "JUPYTER_PORT": str(project.jupyter_port),
        "BASE_IMAGE_TAG": TEST_BASE_TAG,
        "NOTEBOOK_IMAGE_TAG": TEST_NOTEBOOK_TAG,
        "NGINX_IMAGE": NGINX_IMAGE,
        **settings,
    }
    project.write_env()
    return project


@pytest.fixture
def project(tmp_path, docker_client):
    made = make_project(tmp_path)
    yield made
    made.run("down", check=False, timeout=120)
    _remove_by_label(docker_client, made.name)


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory, docker_client):
    """One stack brought up with `up -d` and shared by the read-only checks of a module."""
    made = make_project(tmp_path_factory.mktemp("stack"))
    made.run("up", "-d")
    yield made
    made.run("down", check=False, timeout=120)
    _remove_by_label(docker_client, made.name)
