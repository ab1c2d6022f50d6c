"""Fixtures for tests against a real Docker Engine, real nginx and real Jupyter.

A missing engine is a failure, not a skip. Every project a test makes has a
unique name and free ports, and is removed by label at the end.

Two tiers: every test that uses the engine (the `docker_client` fixture, directly or through
`project`, `running_stack` and the like) is marked `engine` here, so `pytest -m "not engine"` runs
exactly the tests that need no daemon.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Re-exported: the test modules import the harness from here.
from project import (  # noqa: E402, F401
    LB_IMAGE, NGINX_IMAGE, OPENRESTY_IMAGE, PROJECT_LABEL, RDS_IMAGE, TEST_BASE_TAG, TEST_NOTEBOOK_TAG, Project,
    free_port, new_project)
from seed import ensure_rds_image, ensure_seed_images  # noqa: E402

# One id per test run, so that parallel runs (and leftovers of a killed run) never collide.
RUN_ID = uuid.uuid4().hex[:6]

_counter = iter(range(1, 10_000))

# Where the engineless projects' CLI looks for an engine: nothing answers there.
NO_ENGINE = "unix:///nonexistent/devstack-tests-no-engine.sock"


def pytest_collection_modifyitems(config, items):
    """The `engine` marker follows from the fixtures: a test needs the engine exactly when
    `docker_client` is among the fixtures it uses, however indirectly."""
    for item in items:
        if "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def docker_client():
    """The real engine, with the public base images seeded when no registry answers."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"these tests need a running Docker Engine ({exc}); .ci/run starts one", pytrace=False)
    ensure_seed_images(nginx_tag=NGINX_IMAGE, openresty_tag=OPENRESTY_IMAGE, lb_tag=LB_IMAGE)
    yield client
    _remove_by_label(client, f"dst{RUN_ID}", prefix=True)
    _remove_run_image_tags(client)
    client.close()


def _remove_run_image_tags(client) -> None:
    """The image tags this run's tests gave their own projects' images (`devstack-test/<what>-<project>`,
    say a failing or a replaced final image): each is named for a project of this run, so no other
    run's tag and no developer's image is touched. Never forced: the engine deletes an image only when
    no other tag names it and no container uses it. The checkout's shared tags (TEST_BASE_TAG,
    TEST_NOTEBOOK_TAG) are not the run's: every run of this checkout reuses them instead of building."""
    import docker

    for image in client.images.list(name="devstack-test/*"):
        for tag in image.tags:
            if f"dst{RUN_ID}" in tag:
                try:
                    client.images.remove(tag)
                except docker.errors.APIError as exc:  # shared with a run still going: say so, do not fail
                    print(f"kept image tag {tag}: {exc}", file=sys.stderr)


@pytest.fixture(scope="session")
def rds_image(docker_client) -> str:
    """RDS_IMAGE's default, seeded from Debian's MariaDB when it cannot be pulled (only the tests that run a
    coupled database need it)."""
    ensure_rds_image(RDS_IMAGE)
    return RDS_IMAGE


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
    # A coupled database's data (`down` keeps it).
    for volume in client.volumes.list(filters={"label": PROJECT_LABEL}):
        if matches((volume.attrs.get("Labels") or {}).get(PROJECT_LABEL, "")):
            volume.remove(force=True)


def make_project(base_dir: Path, kind: type[Project] = Project, **settings: str) -> Project:
    return new_project(base_dir, f"dst{RUN_ID}p{next(_counter)}", kind, **settings)


class EnginelessProject(Project):
    """A project whose CLI finds no engine (DOCKER_HOST points at nothing): for what devstack must refuse
    before it talks to Docker. Such a test proves that it does, and needs no daemon."""

    def cli_env(self, **extra: str) -> dict[str, str]:
        return super().cli_env(**{"DOCKER_HOST": NO_ENGINE, **extra})


@pytest.fixture
def engineless_project(tmp_path):
    """A project for configuration errors: nothing is created, so nothing needs removing."""
    return make_project(tmp_path, EnginelessProject)


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
