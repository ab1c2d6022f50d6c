"""Fixtures for tests against a real Docker Engine, real nginx and real Jupyter.

A missing engine is a failure, not a skip. Every project a test makes has a
unique name and free ports, and is removed by label at the end.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Re-exported: the test modules import the harness from here.
from project import (  # noqa: E402, F401
    NGINX_IMAGE, PROJECT_LABEL, TEST_BASE_TAG, TEST_NOTEBOOK_TAG, Project, free_port, new_project)
from seed import ensure_seed_images  # noqa: E402

# One id per test run, so that parallel runs (and leftovers of a killed run) never collide.
RUN_ID = uuid.uuid4().hex[:6]

_counter = iter(range(1, 10_000))


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
    return new_project(base_dir, f"dst{RUN_ID}p{next(_counter)}", **settings)


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
