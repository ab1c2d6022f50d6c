"""EB parity and a local Open edX, against the real engine, real nginx, real Jupyter and a real
headless Chromium: the project's own proxy files, host networking, the iframe, `devstack doctor`."""

from __future__ import annotations

import json
import shutil
import socket
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import free_port, make_project, _remove_by_label
from edx import EdxServer, chromium
from helpers import login, run_cell, wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OTHER_SITE = "localhost"  # EDX_HOSTNAME below says 127.0.0.1: for a browser, another site


def with_fixture(project, fixture: str) -> None:
    shutil.copytree(FIXTURES / fixture, project.dir, dirs_exist_ok=True)


def doctor(project, **env) -> tuple[int, dict]:
    result = project.run("doctor", "--json", check=False, env=env)
    return result.returncode, json.loads(result.stdout)


def rows(report: dict, status: str | None = None) -> list[dict]:
    return [c for c in report["checks"] if status is None or c["status"] == status]


def exec_in(docker_client, container: str, *cmd: str) -> tuple[int, str]:
    code, output = docker_client.containers.get(container).exec_run(list(cmd))
    return code, output.decode()


FETCH = ("import sys, urllib.request\n"
         "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())")


@pytest.fixture
def edx_on_all_interfaces():
    """The developer's Open edX: a real server on the host's 0.0.0.0:<free port>."""
    with EdxServer("0.0.0.0", free_port(), marker=f"open-edx-{uuid.uuid4().hex[:8]}") as server:
        yield server


# -- the project's own EB files ------------------------------------------------------------


def test_seed_style_ebextensions_files_load_and_proxy(project, docker_client):
    with_fixture(project, "eb-al1")
    result = project.run("up", "-d")
    # The lint ran first and said what would misbehave, with the user's file and line.
    jupyter_file = project.dir / ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-jupyter-proxy.conf"
    assert f"{jupyter_file}:31" in result.stdout and "proxy_set_header Host $http_host" in result.stdout

    served = httpx.get(f"{project.sifu_url}/fixture-al1", trust_env=False)
    assert served.status_code == 200 and "project's own sifu proxy file" in served.text
    assert httpx.get(f"{project.sifu_url}/health", trust_env=False).json()["status"] == "ok"
    assert httpx.get(f"{project.jupyter_url}/api/status", trust_env=False).status_code == 403
    assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200

    # Loaded unchanged, beside the upstream file the deploy hook writes.
    current = project.dir / ".devstack/proxy/current"
    assert (current / "sites-enabled/elasticbeanstalk-nginx-jupyter-proxy.conf").read_text() == jupyter_file.read_text()
    upstreams = (current / "conf.d/elasticbeanstalk-nginx-docker-upstream.conf").read_text()
    # The IP trap: the hook's .NetworkSettings.IPAddress is empty on a user-defined network.
    notebook = docker_client.containers.get(f"{project.name}-notebook")
    assert notebook.attrs["NetworkSettings"]["IPAddress"] == ""
    ip = notebook.attrs["NetworkSettings"]["Networks"][f"{project.name}_default"]["IPAddress"]
    for name, port in (("docker", 3334), ("jupyter", 3335), ("sifu", 3334)):
        assert f"upstream {name} {{\n    server {ip}:{port};\n    keepalive 256;\n}}" in upstreams
    # What EB's host has: healthd logs written by nginx's workers.
    code, listing = exec_in(docker_client, f"{project.name}-proxy", "sh", "-c", "ls /var/log/nginx/healthd")
    assert code == 0 and "application.log." in listing


def test_al2_platform_conf_d_files_are_included(project, docker_client):
    with_fixture(project, "eb-al2")
    project.write_env(HTTP_PORT=str(free_port()))  # publishes the default server's port 80
    project.run("up", "-d")
    response = httpx.get(f"{project.sifu_url}/health", trust_env=False)
    assert response.status_code == 200 and response.headers["x-platform-conf"] == "al2-fixture"
    default = httpx.get(f"http://127.0.0.1:{project.settings['HTTP_PORT']}/fixture-al2", trust_env=False)
    assert (default.status_code, default.text) == (200, "served by a location in the default server\n")
    # The elasticbeanstalk/ location sits inside the default server, as AL2's nginx.conf includes it; and
    # `nginx -T` typed in the sidecar with no -c shows it where the EB host has it.
    code, dump = exec_in(docker_client, f"{project.name}-proxy", "nginx", "-T")
    assert code == 0
    assert "# configuration file /etc/nginx/conf.d/elasticbeanstalk/10_fixture.conf:" in dump
    assert "location = /fixture-al2" in dump


def test_doctor_warns_of_swapped_upstream_ports_in_the_unloaded_hosts_file(project):
    with_fixture(project, "eb-al1-swapped")
    code, report = doctor(project)
    assert code == 0 and report["ok"] is True, report  # nothing loads hosts.conf: a warning, not a failure
    hosts = project.dir / ".ebextensions/.nginx/hosts/hosts.conf"
    warned = [c for c in rows(report, "warn") if c["check"] == "proxy lint" and c["detail"].startswith(str(hosts))]
    assert [c["detail"].split(": ")[0] for c in warned] == [f"{hosts}:2", f"{hosts}:6"]
    assert "upstream jupyter points at port 3334, which is Sifu's port" in warned[0]["detail"]
    assert "not loaded" in warned[0]["detail"]
    assert warned[0]["fix"] == "write `server 172.17.0.2:3335;` in upstream jupyter, or remove the file"


# -- doctor ----------------------------------------------------------------------------------


def test_doctor_fails_naming_the_fix_when_a_port_is_taken(project):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", project.jupyter_port))
        holder.listen()
        code, report = doctor(project)
    assert code == 1
    (taken,) = rows(report, "fail")
    assert taken["check"] == f"port 127.0.0.1:{project.jupyter_port}"
    assert "JUPYTER_PORT" in taken["fix"] and "in use" in taken["detail"]


def test_doctor_fails_naming_the_fix_when_the_daemon_is_unreachable(engineless_project, tmp_path):
    socket_path = tmp_path / "no-such-docker.sock"
    code, report = doctor(engineless_project, DOCKER_HOST=f"unix://{socket_path}")
    assert code == 1
    (engine,) = rows(report, "fail")
    assert engine["check"] == "Docker Engine" and str(socket_path) in engine["detail"]
    assert "start dockerd" in engine["fix"] and "DOCKER_HOST" in engine["fix"]
    # What needs no engine is still checked.
    assert {c["check"] for c in rows(report, "pass")} >= {"notebooks folder", "proxy lint"}


# -- Open edX on the host ----------------------------------------------------------------------


def test_host_open_edx_is_reached_from_the_notebook_in_host_mode(project, docker_client, edx_on_all_interfaces):
    edx = edx_on_all_interfaces
    project.write_env(NETWORK_MODE="host", EDX_HOSTNAME=f"127.0.0.1:{edx.server.server_port}")
    result = project.run("up", "-d", "-p", f"{free_port()}:8888")
    assert "EXTRA_PORTS/-p" in result.stdout and "have no effect" in result.stdout  # host mode publishes nothing
    notebook = f"{project.name}-notebook"
    assert docker_client.containers.get(notebook).attrs["HostConfig"]["NetworkMode"] == "host"
    code, output = exec_in(docker_client, notebook, "python3", "-c", FETCH, f"http://127.0.0.1:{edx.server.server_port}/")
    assert (code, output.strip()) == (0, edx.marker)
    # nginx serves the host ports itself, the notebook's processes sit on loopback ports of their own.
    assert httpx.get(f"{project.sifu_url}/health", trust_env=False).status_code == 200
    assert run_cell(login(project.sifu_url), project.jupyter_url, "6*7") == "42"
    container_env = dict(v.split("=", 1) for v in docker_client.containers.get(notebook).attrs["Config"]["Env"])
    jupyter_listen_port = int(container_env["JUPYTER_LISTEN_PORT"])
    assert jupyter_listen_port != project.jupyter_port
    upstreams = (project.dir / ".devstack/proxy/current/conf.d/upstreams.conf").read_text()
    assert f"server 127.0.0.1:{jupyter_listen_port};" in upstreams
    code, report = doctor(project)
    assert code == 0, report
    (edx_row,) = [c for c in report["checks"] if c["check"] == "Open edX from the notebook"]
    assert edx_row["status"] == "pass" and "host network" in edx_row["detail"]


@pytest.fixture(scope="module")
def framed_stack(tmp_path_factory, docker_client):
    """A bridge-mode stack whose EDX_HOSTNAME is a real server on the host, with docker_envs asked for."""
    edx_port = free_port()
    with EdxServer("0.0.0.0", edx_port, marker=f"open-edx-{uuid.uuid4().hex[:8]}") as edx:
        made = make_project(tmp_path_factory.mktemp("framed"), EDX_HOSTNAME=f"127.0.0.1:{edx_port}",
                            DOCKER_ENVS_FILE="/tmp/docker_envs", GREETING="it's here",
                            DEPLOYMENT_TOKEN="ghp_notarealtoken0123456789")
        made.run("up", "-d")
        made.edx = edx
        yield made
        made.run("down", check=False, timeout=120)
        _remove_by_label(docker_client, made.name)


def test_host_open_edx_is_reached_from_the_notebook_in_bridge_mode(framed_stack, docker_client):
    edx = framed_stack.edx
    code, output = exec_in(docker_client, f"{framed_stack.name}-notebook", "python3", "-c", FETCH,
                           f"http://host.docker.internal:{edx.server.server_port}/")
    assert (code, output.strip()) == (0, edx.marker)


def test_doctor_passes_on_a_healthy_stack(framed_stack):
    code, report = doctor(framed_stack)
    assert code == 0 and report["ok"], report
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["Open edX from the notebook"]["status"] == "pass"
    assert "host.docker.internal" in checks["Open edX from the notebook"]["detail"]
    assert checks[f"port 127.0.0.1:{framed_stack.sifu_port}"]["detail"].endswith("held by this project")
    assert checks["nginx -t"]["status"] == "pass"
    assert "ghp_notarealtoken0123456789" not in json.dumps(report)


def test_docker_envs_is_mounted_read_only_without_secrets(framed_stack, docker_client):
    notebook = f"{framed_stack.name}-notebook"
    code, output = exec_in(docker_client, notebook, "sh", "-c", ". /tmp/docker_envs && echo \"$GREETING|$EDX_ORIGIN\"")
    assert (code, output.strip()) == (0, f"it's here|http://127.0.0.1:{framed_stack.edx.server.server_port}")
    code, content = exec_in(docker_client, notebook, "cat", "/tmp/docker_envs")
    assert "DEPLOYMENT_TOKEN" not in content and "ghp_notarealtoken" not in content
    assert framed_stack.secret("jupyter_token") not in content
    mounts = {m["Destination"]: m for m in docker_client.containers.get(notebook).attrs["Mounts"]}
    assert mounts["/tmp/docker_envs"]["RW"] is False


def course_page(stack, title: str) -> str:
    """An edX unit that frames a notebook through Sifu's login, as the edX side does."""
    (stack.notebooks / "framed.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ""}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return (f"<!doctype html><title>{title}</title><h1>A course unit</h1>"
            f'<iframe id="notebook" width="1200" height="800" '
            f'src="http://127.0.0.1:{stack.sifu_port}/login?next=/notebooks/framed.ipynb"></iframe>')


def test_edx_page_frames_the_notebook_and_a_cell_runs_in_chromium(framed_stack, tmp_path):
    edx = framed_stack.edx
    edx.pages["/courses/demo"] = course_page(framed_stack, "Open edX")
    browser = chromium(tmp_path / "chromium-profile")
    try:
        browser.get(f"http://127.0.0.1:{edx.server.server_port}/courses/demo")
        assert browser.title == "Open edX"
        browser.switch_to.frame("notebook")
        connected = ("return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel "
                     "&& Jupyter.notebook.kernel.is_connected())")
        wait_for(lambda: browser.execute_script(connected), timeout=90, what="the framed notebook's kernel")
        assert browser.execute_script("return location.href") == \
            f"http://127.0.0.1:{framed_stack.jupyter_port}/notebooks/framed.ipynb"
        browser.execute_script("var cell = Jupyter.notebook.get_cell(0); cell.set_text('6*7'); cell.execute();")
        result = ("var outputs = Jupyter.notebook.get_cell(0).output_area.outputs;"
                  "return outputs.length ? (outputs[0].data || {})['text/plain'] : null;")
        assert wait_for(lambda: browser.execute_script(result), timeout=60, what="the cell's result") == "42"
    finally:
        browser.quit()


def test_a_page_on_another_site_cannot_show_the_framed_notebook(framed_stack, tmp_path):
    """The same page opened as localhost (EDX_HOSTNAME says 127.0.0.1): another site for the browser,
    so frame-ancestors and the SameSite=Lax cookie keep the notebook out of the frame."""
    edx = framed_stack.edx
    edx.pages["/courses/elsewhere"] = course_page(framed_stack, "Elsewhere")
    browser = chromium(tmp_path / "chromium-profile")
    try:
        browser.get(f"http://{OTHER_SITE}:{edx.server.server_port}/courses/elsewhere")
        assert browser.title == "Elsewhere"
        browser.switch_to.frame("notebook")
        with pytest.raises(AssertionError, match="timed out"):
            wait_for(lambda: browser.execute_script("return !!window.Jupyter"), timeout=15, what="Jupyter in the frame")
    finally:
        browser.quit()
