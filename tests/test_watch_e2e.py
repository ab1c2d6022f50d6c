"""Watching against the real engine, nginx and Jupyter: each saved change applied, and only that.

Every test watches its own copies of the proxy templates and build contexts (never the
repository's files), and a test that changes a context builds under an image tag of its own.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import pytest
import websocket
from conftest import free_port
from helpers import login, wait_for, xsrf_headers

from devstack import assets


def own_templates(project) -> str:
    shutil.copytree(assets.nginx_dir(), project.dir / "proxy-templates")
    project.write_env(PROXY_TEMPLATES="proxy-templates")
    return "proxy-templates"


def own_notebook_context(project) -> str:
    shutil.copytree(assets.compose_dir() / "notebook", project.dir / "final")
    tag = f"devstack-test/watch-{project.name}:latest"
    project.write_env(NOTEBOOK_CONTEXT="final", NOTEBOOK_IMAGE_TAG=tag)
    return tag


def remove_images(docker_client, project, tag: str, image_ids: set[str]) -> None:
    """The test's own tag, then the images its rebuilds left untagged (never one still tagged or used)."""
    project.run("down", check=False)
    for ref in (tag, *image_ids):
        try:
            docker_client.images.remove(ref)
        except Exception:  # noqa: BLE001 - shared by another tag or already gone: not ours to force
            pass


def add_to_server_block(path, line: str) -> None:
    text = path.read_text()
    path.write_text(text.replace("    location / {", f"    {line}\n    location / {{", 1))


def container(docker_client, name: str):
    found = docker_client.containers.get(name)
    return found.id, found.attrs["State"]["StartedAt"], found.attrs["RestartCount"]


def test_foreground_up_applies_a_proxy_change_without_restarting_the_sidecar(project, docker_client):
    own_templates(project)
    up = project.start("up")
    try:
        watching = up.wait_for_line("watching ", timeout=300)
        assert "proxy-templates" in watching
        before = container(docker_client, f"{project.name}-proxy")
        mark = up.mark()
        add_to_server_block(project.dir / "proxy-templates" / "sites-enabled" / "sifu.conf.j2",
                            "add_header X-Devstack-Test applied always;")
        applied = up.wait_for_line("applied: saved 0 ms", after=mark)
        assert "reloaded" in applied and "healthy" in applied
        response = httpx.get(f"{project.sifu_url}/health", trust_env=False)
        assert response.status_code == 200 and response.headers["x-devstack-test"] == "applied"
        assert container(docker_client, f"{project.name}-proxy") == before  # same container, never restarted
        assert up.count("recreate", after=mark) == 0 and up.count("build", after=mark) == 0
    finally:
        code = up.stop()
    assert code == 0, up.output()
    assert "stopping the stack" in up.output()
    states = {c.name: c.status for c in docker_client.containers.list(
        all=True, filters={"label": f"devstack.project={project.name}"})}
    assert states == {f"{project.name}-notebook": "exited", f"{project.name}-proxy": "exited"}


def test_a_broken_proxy_config_is_rejected_and_the_old_one_keeps_serving(project, docker_client):
    own_templates(project)
    project.run("up", "-d")
    current = project.dir / ".devstack" / "proxy" / "current"
    generation = current.resolve().name
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        mark = watch.mark()
        add_to_server_block(project.dir / "proxy-templates" / "sites-enabled" / "jupyter.conf.j2",
                            "no_such_directive on;")
        error = watch.wait_for_line("error:", after=mark)
        assert "nginx rejected" in error and 'unknown directive "no_such_directive"' in error
        assert "proxy-templates/sites-enabled/jupyter.conf.j2:" in error  # the file the user edits, and the line
        assert current.resolve().name == generation
        assert httpx.get(f"{project.sifu_url}/health", trust_env=False).status_code == 200
        assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200
        # `status` beside the watcher shows the same error.
        status = json.loads(project.run("status", "--json").stdout)
        assert "nginx rejected" in status["last_error"] and status["watching"]
    finally:
        watch.stop()
    assert container(docker_client, f"{project.name}-proxy")[2] == 0


def test_a_failing_build_leaves_the_old_container_serving_and_the_next_save_retries(project, docker_client):
    tag = own_notebook_context(project)
    built: set[str] = set()
    try:
        project.run("up", "-d")
        first_id, _, _ = container(docker_client, f"{project.name}-notebook")
        dockerfile = project.dir / "final" / "Dockerfile"
        original = dockerfile.read_text()
        watch = project.start("watch")
        try:
            watch.wait_for_line("watching ")
            mark = watch.mark()
            dockerfile.write_text(original + "RUN echo the-last-words-of-this-step && exit 3\n")
            error = watch.wait_for_line("error:", after=mark, timeout=300)
            assert "RUN echo the-last-words-of-this-step" in error and "non-zero code: 3" in error
            watch.wait_for_line("  | the-last-words-of-this-step", after=mark)
            assert container(docker_client, f"{project.name}-notebook")[0] == first_id
            assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200

            mark = watch.mark()
            dockerfile.write_text(original + f"RUN echo fixed-{uuid.uuid4().hex}\n")
            applied = watch.wait_for_line("applied:", after=mark, timeout=300)
            assert "built" in applied and "recreated" in applied and "healthy" in applied
            second = docker_client.containers.get(f"{project.name}-notebook")
            built.add(second.image.id)
            assert second.id != first_id
            assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200
        finally:
            watch.stop()
    finally:
        remove_images(docker_client, project, tag, built)


def test_a_burst_of_files_gives_one_build(project, docker_client):
    templates = own_templates(project)
    tag = own_notebook_context(project)
    built: set[str] = set()
    try:
        project.run("up", "-d")
        watch = project.start("watch")
        try:
            watch.wait_for_line("watching ")
            mark = watch.mark()
            burst = project.dir / "final" / "burst"
            burst.mkdir()
            for i in range(300):
                (burst / f"file-{i}.txt").write_text(f"{uuid.uuid4().hex}\n")
            watch.wait_for_line("applied:", after=mark, timeout=300)
            # A later save elsewhere, as an end marker: the applier takes changes in order, so whatever
            # the burst still had to give would come before this change's lines, or join its batch.
            after_burst = watch.mark()
            add_to_server_block(project.dir / templates / "sites-enabled" / "sifu.conf.j2",
                                "add_header X-Devstack-Test end-of-burst always;")
            watch.wait_for_line("reload nginx", after=after_burst, timeout=120)  # the marker's change line
            watch.wait_for_line("applied:", after=after_burst, timeout=120)
            assert watch.count("build notebook:", after=mark) == 1, watch.output()
            assert watch.count("changed final/", after=mark) == 1, watch.output()
            built.add(docker_client.containers.get(f"{project.name}-notebook").image.id)
        finally:
            watch.stop()
    finally:
        remove_images(docker_client, project, tag, built)


def test_an_env_port_change_is_applied(project, docker_client):
    project.run("up", "-d")
    old_port = project.sifu_port
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        mark = watch.mark()
        new_port = free_port()
        project.write_env(SIFU_PORT=str(new_port))
        watch.wait_for_line("applied:", after=mark, timeout=180)
        assert watch.count("recreate proxy", after=mark) == 1
        assert httpx.get(f"http://127.0.0.1:{new_port}/health", trust_env=False).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{old_port}/health", trust_env=False)
        # Sifu's login now sends the browser to Jupyter from the new port's Sifu.
        project.sifu_port = new_port
        assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200
    finally:
        watch.stop()


def test_a_sifu_src_change_restarts_only_sifu_and_kernels_live_on(project, docker_client):
    shutil.copytree(assets.compose_dir() / "notebook" / "sifu", project.dir / "sifu-src")
    project.write_env(SIFU_SRC="sifu-src")
    project.run("up", "-d")
    client = login(project.sifu_url)
    kernel = client.post(f"{project.jupyter_url}/api/kernels", json={"name": "python3"}, headers=xsrf_headers(client))
    assert kernel.status_code == 201
    kernel_id = kernel.json()["id"]
    before = container(docker_client, f"{project.name}-notebook")
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        mark = watch.mark()
        app = project.dir / "sifu-src" / "app.py"
        app.write_text(app.read_text().replace('"service": "sifu-standin"', '"service": "sifu-edited"'))
        applied = watch.wait_for_line("applied:", after=mark)
        assert "restarted" in applied and watch.count("build", after=mark) == 0
        assert httpx.get(f"{project.sifu_url}/health", trust_env=False).json()["service"] == "sifu-edited"
        assert container(docker_client, f"{project.name}-notebook") == before
        assert client.get(f"{project.jupyter_url}/api/kernels/{kernel_id}").status_code == 200
    finally:
        watch.stop()


def test_a_recreate_waits_for_a_busy_kernel(project, docker_client):
    project.run("up", "-d")
    client = login(project.sifu_url)
    started = client.post(f"{project.jupyter_url}/api/kernels", json={"name": "python3"},
                          headers=xsrf_headers(client))
    kernel_id = started.json()["id"]
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    ws = websocket.create_connection(
        project.jupyter_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels",
        header=[f"Cookie: {cookie}"], origin=project.jupyter_url, timeout=60)
    # The cell stays busy until the test releases it (a file in the mounted notebooks folder), not for a
    # fixed time: the recreate is asked for while it is busy however slow the machine. Bounded, so a
    # failed test leaves no kernel busy.
    release = project.notebooks / f"release-{uuid.uuid4().hex[:8]}"
    cell = (f"import os, time\ndeadline = time.monotonic() + 600\n"
            f"while not os.path.exists('/notebooks/{release.name}') and time.monotonic() < deadline:\n"
            "    time.sleep(0.1)\n'done'")
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": cell, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))
        wait_for(lambda: any(k["execution_state"] == "busy" for k in client.get(
            f"{project.jupyter_url}/api/kernels").json()), what="the kernel to be busy")
        mark = watch.mark()
        project.write_env(SOME_NEW_VARIABLE="1")  # the notebook's environment changes: it must be recreated
        waiting = watch.wait_for_line("busy kernel", after=mark)
        assert "KERNEL_IDLE_WAIT" in waiting
        assert watch.count("kernels idle", after=mark) == 0  # still waiting while the cell is busy
        release.write_text("")
        # The cell runs to its end: its result arrives before the container goes away.
        result = None
        while result is None:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == "execute_result":
                result = message["content"]["data"]["text/plain"]
        assert result == "'done'"
        watch.wait_for_line("kernels idle: recreating", after=mark)
        watch.wait_for_line("applied:", after=mark, timeout=180)
        assert watch.output().index("kernels idle") < watch.output().rindex("recreate notebook")
    finally:
        ws.close()
        watch.stop()


def test_watch_needs_a_running_stack(project):
    result = project.run("watch", check=False)
    assert result.returncode != 0
    assert f"{project.name}-notebook" in result.stderr and "devstack up -d" in result.stderr


def test_the_projects_own_eb_proxy_files_are_watched_even_when_created_while_watching(project, docker_client):
    fixtures = Path(__file__).resolve().parent / "fixtures" / "eb-al2"
    project.run("up", "-d")
    before = container(docker_client, f"{project.name}-proxy")
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        mark = watch.mark()
        shutil.copytree(fixtures / ".platform", project.dir / ".platform")  # a folder EB reads, new
        watch.wait_for_line("applied:", after=mark)
        response = httpx.get(f"{project.sifu_url}/health", trust_env=False)
        assert response.status_code == 200 and response.headers["x-platform-conf"] == "al2-fixture"

        mark = watch.mark()
        headers = project.dir / ".platform" / "nginx" / "conf.d" / "fixture-headers.conf"
        headers.write_text(headers.read_text().replace('"al2-fixture"', '"edited-while-watching"'))
        changed = watch.wait_for_line("changed ", after=mark)
        assert ".platform/nginx/conf.d/fixture-headers.conf" in changed
        watch.wait_for_line("applied:", after=mark)
        assert httpx.get(f"{project.sifu_url}/health", trust_env=False).headers["x-platform-conf"] == \
            "edited-while-watching"
        assert container(docker_client, f"{project.name}-proxy") == before
    finally:
        watch.stop()
