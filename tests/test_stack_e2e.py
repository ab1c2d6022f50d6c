"""The whole stack against the real engine: images, notebook container, EB-mimic proxy."""

from __future__ import annotations

import json
import os
import shutil
import socket

import docker
import httpx
import pytest
from conftest import NGINX_IMAGE, make_project
from helpers import login, run_cell, save_notebook

from devstack import assets

# Any local image with `sleep` serves for containers that devstack did not create.
SLEEPER_IMAGE = NGINX_IMAGE


def test_sifu_health_answers_through_the_proxy(running_stack):
    response = httpx.get(f"{running_stack.sifu_url}/health", trust_env=False)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_jupyter_without_the_cookie_is_refused_by_the_proxy(running_stack):
    response = httpx.get(f"{running_stack.jupyter_url}/api/status", trust_env=False)
    assert response.status_code == 403


def test_a_forged_cookie_is_refused_by_jupyter(running_stack):
    token = running_stack.secret("jupyter_token")
    response = httpx.get(f"{running_stack.jupyter_url}/api/status", trust_env=False,
                         cookies={"JUPYTER_AUTHORIZATION": "v1.someone.1.deadbeef"},
                         headers={"Authorization": f"token {token}"})
    assert response.status_code == 403


def test_login_then_a_cell_runs_over_the_kernel_websocket(running_stack):
    client = login(running_stack.sifu_url)
    assert run_cell(client, running_stack.jupyter_url, "1+1") == "2"


def test_login_cookie_is_http_only_and_same_site_lax(running_stack):
    response = httpx.get(f"{running_stack.sifu_url}/login", trust_env=False)
    assert response.status_code == 302
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("JUPYTER_AUTHORIZATION=")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert response.headers["location"].startswith(f"{running_stack.jupyter_url}/")
    assert "Max-Age=" in set_cookie  # the cookie expires; Jupyter refuses it once it is old


def test_saved_notebook_lands_in_the_host_folder(running_stack):
    client = login(running_stack.sifu_url)
    save_notebook(client, running_stack.jupyter_url, "saved-through-proxy.ipynb")
    saved = running_stack.notebooks / "saved-through-proxy.ipynb"
    assert saved.is_file()
    folder = running_stack.notebooks.stat()
    assert (saved.stat().st_uid, saved.stat().st_gid) == (folder.st_uid, folder.st_gid)


def test_status_json_lists_both_services_and_passing_probes(running_stack):
    result = running_stack.run("status", "--json")
    status = json.loads(result.stdout)
    states = {s["service"]: s["state"] for s in status["services"]}
    assert states == {"notebook": "running", "proxy": "running"}
    assert status["probes"] and all(p["ok"] for p in status["probes"]), status["probes"]


def test_second_up_changes_nothing(running_stack, docker_client):
    before = {c.name: c.id for c in docker_client.containers.list(
        filters={"label": f"devstack.project={running_stack.name}"})}
    result = running_stack.run("up", "-d")
    after = {c.name: c.id for c in docker_client.containers.list(
        filters={"label": f"devstack.project={running_stack.name}"})}
    assert before == after
    assert "create" not in result.stdout and "build" not in result.stdout and "reloaded" not in result.stdout


def test_logs_show_both_services_without_secrets(running_stack):
    login(running_stack.sifu_url)  # puts the token in a redirect, which must not reach any log
    result = running_stack.run("logs", "--tail", "200")
    assert "notebook |" in result.stdout and "proxy" in result.stdout
    for secret in ("jupyter_token", "sifu_secret"):
        assert running_stack.secret(secret) not in result.stdout


def test_files_jupyter_writes_belong_to_the_folder_owner_not_root(tmp_path, docker_client):
    project = make_project(tmp_path)
    project.notebooks.mkdir()
    os.chown(project.notebooks, 4321, 4321)
    try:
        project.run("up", "-d")
        client = login(project.sifu_url)
        save_notebook(client, project.jupyter_url, "owned.ipynb")
        saved = project.notebooks / "owned.ipynb"
        assert (saved.stat().st_uid, saved.stat().st_gid) == (4321, 4321)
        checkpoints = project.notebooks / ".ipynb_checkpoints"
        assert all(p.stat().st_uid == 4321 for p in [checkpoints, *checkpoints.iterdir()])
    finally:
        project.run("down", check=False)


def test_proxy_follows_the_notebook_to_a_new_ip(project, docker_client):
    """The stale-IP 502: the notebook comes back on another address; the upstream file must follow."""
    project.run("up", "-d")
    network = docker_client.networks.get(f"{project.name}_default")
    notebook = docker_client.containers.get(f"{project.name}-notebook")
    old_ip = notebook.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    notebook.stop()
    # Take the address the notebook had, so that it must come back on another one.
    squatter = docker_client.containers.run(SLEEPER_IMAGE, ["sleep", "300"], detach=True,
                                            network=network.name, entrypoint=[])
    try:
        project.run("up", "-d")
        notebook.reload()
        new_ip = notebook.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        assert new_ip != old_ip
        client = login(project.sifu_url)
        assert client.get(f"{project.jupyter_url}/api/status").status_code == 200
        upstreams = (project.dir / ".devstack" / "proxy" / "current" / "conf.d" / "upstreams.conf").read_text()
        assert f"server {new_ip}:3335;" in upstreams and "keepalive 256;" in upstreams
    finally:
        squatter.remove(force=True)


def test_recreated_notebook_is_served_and_notebooks_survive_down_up(project, docker_client):
    project.run("up", "-d")
    client = login(project.sifu_url)
    save_notebook(client, project.jupyter_url, "keep-me.ipynb")
    first_id = docker_client.containers.get(f"{project.name}-notebook").id

    # A new variable in .env changes the container's spec: it is recreated, and the proxy follows.
    project.write_env(SOME_FLAG="on")
    result = project.run("up", "-d")
    assert "recreate notebook" in result.stdout
    second = docker_client.containers.get(f"{project.name}-notebook")
    assert second.id != first_id
    assert "SOME_FLAG=on" in second.attrs["Config"]["Env"]
    assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200

    project.run("down")
    assert not docker_client.containers.list(all=True, filters={"label": f"devstack.project={project.name}"})
    assert (project.notebooks / "keep-me.ipynb").is_file()
    project.run("up", "-d")
    listing = login(project.sifu_url).get(f"{project.jupyter_url}/api/contents").json()
    assert "keep-me.ipynb" in {item["name"] for item in listing["content"]}


def test_down_leaves_what_devstack_did_not_create(project, docker_client):
    project.run("up", "-d")
    network = f"{project.name}_default"
    # A look-alike: same naming scheme, on the project's network, but not made by devstack.
    stranger = docker_client.containers.run(SLEEPER_IMAGE, ["sleep", "300"], detach=True,
                                            name=f"{project.name}-stranger", entrypoint=[])
    try:
        project.run("down")
        stranger.reload()
        assert stranger.status == "running"
        assert not docker_client.networks.list(names=[network])
    finally:
        stranger.remove(force=True)


def test_a_foreign_container_with_our_name_is_not_touched(project, docker_client):
    squatter = docker_client.containers.run(SLEEPER_IMAGE, ["sleep", "300"], detach=True,
                                            name=f"{project.name}-notebook", entrypoint=[])
    try:
        result = project.run("up", "-d", check=False)
        assert result.returncode != 0
        assert f"container {project.name}-notebook exists and was not created by devstack" in result.stderr
        squatter.reload()
        assert squatter.status == "running"
    finally:
        squatter.remove(force=True)


def test_two_projects_run_side_by_side(running_stack, tmp_path):
    other = make_project(tmp_path)
    try:
        other.run("up", "-d")
        for stack in (running_stack, other):
            assert httpx.get(f"{stack.sifu_url}/health", trust_env=False).status_code == 200
            assert login(stack.sifu_url).get(f"{stack.jupyter_url}/api/status").status_code == 200
    finally:
        other.run("down", check=False)
    assert httpx.get(f"{running_stack.sifu_url}/health", trust_env=False).status_code == 200


# -- bad input: one line naming what is wrong, non-zero exit, nothing lost -------------


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_no_daemon_says_where_it_looked(engineless_project, tmp_path):
    socket_path = tmp_path / "no-such-docker.sock"
    line = _error_line(engineless_project.run("up", "-d", check=False, env={"DOCKER_HOST": f"unix://{socket_path}"}))
    assert f"unix://{socket_path}" in line and "DOCKER_HOST" in line


def test_taken_port_is_named(project):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", project.jupyter_port))
        holder.listen()
        line = _error_line(project.run("up", "-d", check=False))
    assert f"127.0.0.1:{project.jupyter_port}" in line and "JUPYTER_PORT" in line


def test_malformed_env_line_is_named(engineless_project):
    env_file = engineless_project.dir / ".env"
    env_file.write_text(env_file.read_text() + 'BROKEN="never closed\n')
    line = _error_line(engineless_project.run("config", check=False))
    assert ".env:" in line and "BROKEN" in line


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_invalid_port_value_is_named(engineless_project, value):
    engineless_project.write_env(SIFU_PORT=value)
    line = _error_line(engineless_project.run("config", check=False))
    assert "SIFU_PORT" in line and ".env:" in line


def test_equal_ports_are_refused(engineless_project):
    engineless_project.write_env(JUPYTER_PORT=str(engineless_project.sifu_port))
    line = _error_line(engineless_project.run("config", check=False))
    assert "SIFU_PORT" in line and "JUPYTER_PORT" in line


def test_unknown_set_key_is_named(engineless_project):
    line = _error_line(engineless_project.run("--set", "NO_SUCH_SETTING=1", "config", check=False))
    assert "--set NO_SUCH_SETTING: unknown setting" in line


def test_missing_context_and_dockerfile_are_named(engineless_project, tmp_path):
    engineless_project.write_env(NOTEBOOK_CONTEXT=str(tmp_path / "nowhere"))
    line = _error_line(engineless_project.run("build", check=False))
    assert "NOTEBOOK_CONTEXT" in line and "does not exist" in line
    empty = tmp_path / "empty-context"
    empty.mkdir()
    engineless_project.write_env(NOTEBOOK_CONTEXT=str(empty))
    line = _error_line(engineless_project.run("build", check=False))
    assert "NOTEBOOK_CONTEXT" in line and "Dockerfile" in line


def test_failed_build_shows_the_step_and_its_output(project, tmp_path, docker_client):
    context = tmp_path / "failing"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo the-last-words-of-this-step && exit 3\n")
    project.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=f"devstack-test/failing-{project.name}")
    result = project.run("build", check=False)
    line = _error_line(result)
    assert "RUN echo the-last-words-of-this-step" in line and "non-zero code: 3" in line
    assert "the-last-words-of-this-step" in result.stderr.replace(line, "")
    assert not docker_client.images.list(name=f"devstack-test/failing-{project.name}")


def test_context_change_made_while_devstack_was_not_running_is_rebuilt(project, tmp_path, docker_client):
    context = tmp_path / "notebook-context"
    shutil.copytree(assets.compose_dir() / "notebook", context)
    tag = f"devstack-test/context-{project.name}"
    project.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=tag)
    project.run("up", "-d")
    first_image = docker_client.images.get(tag).id
    token = project.secret("jupyter_token")

    config = context / "jupyter_notebook_config.py"
    config.write_text(config.read_text() + "\n# edited while devstack was not running\n")
    result = project.run("up", "-d")
    assert "build notebook: its build context" in result.stdout and "build base" not in result.stdout
    assert "recreate notebook" in result.stdout
    assert docker_client.images.get(tag).id != first_image
    assert project.secret("jupyter_token") == token  # generated once, kept per project

    built = project.run("build", "notebook")
    assert "build notebook: requested" in built.stdout and "build base" not in built.stdout
    docker_client.images.remove(tag, force=True)


def test_images_that_rebuilds_replaced_are_removed_once_unused(project, tmp_path, docker_client):
    context = tmp_path / "notebook-context"
    shutil.copytree(assets.compose_dir() / "notebook", context)
    tag = f"devstack-test/replaced-{project.name}"
    kept = f"devstack-test/kept-{project.name}:mine"
    project.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=tag)
    config = context / "jupyter_notebook_config.py"

    def edit(note: str) -> None:
        config.write_text(config.read_text() + f"\n# {note}\n")

    def exists(image_id: str) -> bool:
        try:
            docker_client.images.get(image_id)
            return True
        except docker.errors.ImageNotFound:
            return False

    try:
        edit("a build of this test's own, not the shared test image the cache would give")
        project.run("up", "-d")
        first = docker_client.images.get(tag).id
        edit("rebuilt and recreated by one up")
        result = project.run("up", "-d")
        assert not exists(first) and f"remove image {first.removeprefix('sha256:')[:12]}" in result.stdout

        # `build` while the stack runs: the old image is in use and stays; the `up` that recreates removes it.
        second = docker_client.images.get(tag).id
        edit("built while running")
        project.run("build", "notebook")
        assert exists(second)
        project.run("up", "-d")
        assert not exists(second)

        # An image the user tagged is theirs now: kept.
        third = docker_client.images.get(tag)
        third.tag(kept)
        edit("after the user tagged the build")
        project.run("up", "-d")
        assert exists(third.id) and docker_client.images.get(tag).id != third.id
    finally:
        project.run("down", check=False)
        for ref in (kept, tag):
            try:
                docker_client.images.remove(ref, force=True)
            except docker.errors.ImageNotFound:
                pass


def test_everything_created_carries_project_and_service_labels(running_stack, docker_client):
    containers = docker_client.containers.list(all=True, filters={"label": f"devstack.project={running_stack.name}"})
    assert sorted(c.labels["devstack.service"] for c in containers) == ["notebook", "proxy"]
    network = docker_client.networks.get(f"{running_stack.name}_default")
    assert network.attrs["Labels"]["devstack.project"] == running_stack.name
    image = docker_client.images.get(running_stack.settings["NOTEBOOK_IMAGE_TAG"])
    assert image.labels["devstack.image"] == "notebook" and image.labels["devstack.context-hash"]
