"""The production repository as it is, on the real engine: `devstack up` in a checkout shaped like
`proversity-org/jupyter-server` builds its own base and final images (offline: Debian's Jupyter,
Ruby, puma, mysql2), runs its Ruby Sifu and Jupyter under its supervisord.conf, behind OpenResty
and the cookie gate, on a local RDS that the build-time migration reached."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
from conftest import TEST_NOTEBOOK_TAG, free_port
from helpers import login, run_cell, xsrf_headers

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "jupyter-server"
TOKEN = (FIXTURE / "base-image" / ".deployment_token").read_text().strip()
RDS_PASSWORD = "fixture-rds-pass'word-4e1f"  # the fixture's overrides.yml (a quote: SQL and shells get it escaped)
ECR = "353198996426.dkr.ecr.us-west-2.amazonaws.com/proversity-docker-jupyter:latest"


@pytest.fixture
def production(project):
    shutil.copytree(FIXTURE, project.dir, dirs_exist_ok=True)
    # The test harness's own tag for the final image; the base gets the final FROM's name, as production's.
    project.write_env(NOTEBOOK_IMAGE_TAG=f"{TEST_NOTEBOOK_TAG}-production", DEPLOYMENT_TOKEN=TOKEN,
                      HTTP_PORT=str(free_port()))  # resources.config's listener on 80: the default server
    yield project
    project.run("down", "--volumes", check=False)


def outputs(*results) -> str:
    return "\n".join(r.stdout + r.stderr for r in results)


def test_the_production_repository_runs_as_eb_runs_it(production, docker_client):
    project = production
    first = project.run("up", "-d", timeout=1800)
    assert "images: the project's own: final from Dockerfile (FROM " + ECR in first.stdout
    assert "base from base-image/Dockerfile, tagged with that name here, never pulled" in first.stdout
    assert f"{project.dir / 'base-image/Dockerfile'}:19: this instruction would put DEPLOYMENT_TOKEN" in first.stdout

    # Sifu (Ruby, on puma) reads the database through the proxy: the build-time migration's row is there.
    assert httpx.get(f"{project.sifu_url}/", trust_env=False).status_code == 404  # production's Sifu at /
    assert httpx.get(f"{project.sifu_url}/notes", trust_env=False).json() == ["migrated at build time"]
    # Port 80 is the platform's default server beside production's files: to the container's first port, Sifu's.
    http_url = f"http://127.0.0.1:{project.settings['HTTP_PORT']}"
    assert httpx.get(f"{http_url}/notes", trust_env=False).json() == ["migrated at build time"]

    # A kernel runs through the cookie gate; a notebook lands in the host folder.
    assert httpx.get(f"{project.jupyter_url}/api/status", trust_env=False).status_code == 403
    client = login(project.sifu_url)
    assert client.get(f"{project.jupyter_url}/tree").status_code == 200  # as the browser opens it: its _xsrf cookie
    assert run_cell(client, project.jupyter_url, "6 * 7") == "42"
    saved = client.put(f"{project.jupyter_url}/api/contents/from-the-test.ipynb",
                       json={"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4,
                                                              "nbformat_minor": 5}},
                       headers=xsrf_headers(client))
    assert saved.status_code in (200, 201), saved.text
    assert (project.dir / "notebooks" / "from-the-test.ipynb").is_file()

    # The token is found nowhere: no layer, history entry, image config, container, or output.
    for ref in (ECR, f"{TEST_NOTEBOOK_TAG}-production"):
        image = docker_client.images.get(ref)
        assert TOKEN not in json.dumps(image.attrs) and TOKEN not in json.dumps(image.history())
    notebook = docker_client.containers.get(f"{project.name}-notebook")
    assert TOKEN not in json.dumps(notebook.attrs)
    code, content = notebook.exec_run(["cat", "/tmp/.deployment_token"])
    assert code == 0 and content == b""
    code, listing = notebook.exec_run(["sh", "-c", "cat /tmp/docker_envs"])
    assert TOKEN.encode() not in listing

    # Data survive `down` and `up`.
    database = docker_client.containers.get(f"{project.name}-rds")
    code, out = database.exec_run(["mysql", "-uroot", f"-p{RDS_PASSWORD}", "production",
                                   "-e", "INSERT INTO notes (body) VALUES ('written before down')"])
    assert code == 0, out
    down = project.run("down")
    again = project.run("up", "-d", timeout=900)
    assert httpx.get(f"{project.sifu_url}/notes", trust_env=False).json() == [
        "migrated at build time", "written before down"]

    # A supervisord.conf change rebuilds the final image only.
    conf = project.dir / "supervisord.conf"
    conf.write_text(conf.read_text() + "\n; saved by the test\n")
    rebuilt = project.run("up", "-d", timeout=900)
    assert "build notebook:" in rebuilt.stdout and "build base:" not in rebuilt.stdout

    # No layer holds a database password that works: the final build's docker_envs has the builds' one.
    final = docker_client.images.get(f"{TEST_NOTEBOOK_TAG}-production")
    layer_envs = docker_client.containers.run(final.id, ["cat", "/tmp/docker_envs"], entrypoint=[], remove=True)
    assert RDS_PASSWORD.encode() not in layer_envs and _value(layer_envs, "RDS_PASSWORD") != RDS_PASSWORD
    database = docker_client.containers.get(f"{project.name}-rds")  # created anew by the `up` after `down`
    code, _ = database.exec_run(["sh", "-c", "mysql -uroot -p\"$0\" -e 'SELECT 1'",
                                 _value(layer_envs, "RDS_PASSWORD")])
    assert code != 0  # refused once the build is over

    # The secrets reached no output.
    everything = outputs(first, down, again, rebuilt)
    assert TOKEN not in everything and RDS_PASSWORD not in everything


def test_a_supervisor_program_name_that_supervisor_4_refuses_stops_up_within_seconds(production):
    project = production
    shutil.copy(project.dir / "traps" / "supervisord.conf", project.dir / "supervisord.conf")
    report = json.loads(project.run("doctor", "--json", check=False).stdout)
    [trap] = [c for c in report["checks"] if c["check"] == "app lint" and "Invalid name" in c["detail"]]
    assert trap["status"] == "fail" and trap["detail"].startswith(f"{project.dir / 'supervisord.conf'}:8:")
    started = time.monotonic()
    result = project.run("up", "-d", check=False, timeout=1800)
    assert result.returncode != 0
    assert "Error: Invalid name: 'jupyter notebook' because of character: ' '" in result.stdout + result.stderr
    assert "not ready after" not in result.stderr  # supervisor's message, not a readiness timeout
    assert time.monotonic() - started < 900  # bounded; the build dominates (the images may be new)


def test_a_final_from_that_nothing_builds_or_pulls_is_one_line(project, docker_client):
    (project.dir / "Dockerfile").write_text("# a project without base-image/\nFROM registry.invalid/team/app:1\n"
                                            "CMD [\"sleep\", \"60\"]\n")
    result = project.run("up", "-d", check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr
    assert f"{project.dir / 'Dockerfile'}:2: FROM registry.invalid/team/app:1 is not built here" in errors[0]
    assert docker_client.containers.list(all=True, filters={"label": f"devstack.project={project.name}"}) == []


def _value(docker_envs: bytes, key: str) -> str:
    import shlex

    for line in docker_envs.decode().splitlines():
        if line.startswith(f"export {key}="):
            return shlex.split(line.split("=", 1)[1])[0]
    raise AssertionError(f"{key} not in docker_envs")
