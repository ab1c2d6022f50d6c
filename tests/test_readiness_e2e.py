"""Ready means ready: failures name the hop, the URL and show the container's last lines;
the foreground run stops the stack on Ctrl-C; config and --help need no daemon."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import httpx
from conftest import make_project
from helpers import wait_for

from devstack import assets


def copy_notebook_context(tmp_path, sifu_source: str):
    """The bundled final-image context with another Sifu stand-in."""
    context = tmp_path / "notebook-context"
    shutil.copytree(assets.compose_dir() / "notebook", context)
    (context / "sifu" / "app.py").write_text(sifu_source)
    return context


UNHEALTHY_SIFU = '''
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        print("unhealthy-sifu-was-asked", self.path, flush=True)
        self.send_response(500)
        self.end_headers()

ThreadingHTTPServer(("0.0.0.0", 3334), Handler).serve_forever()
'''


def test_timeout_names_the_hop_the_url_and_shows_logs(project, tmp_path):
    context = copy_notebook_context(tmp_path, UNHEALTHY_SIFU)
    project.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=f"devstack-test/unhealthy-{project.name}")
    result = project.run("up", "-d", "--timeout", "8", check=False)
    assert result.returncode != 0
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert "Sifu through the proxy" in error[0]
    assert f"http://127.0.0.1:{project.sifu_port}/health" in error[0] and "answered 500" in error[0]
    assert "unhealthy-sifu-was-asked" in result.stderr  # the container's last log lines


def test_a_program_that_keeps_crashing_fails_fast_with_its_logs(project, tmp_path):
    context = copy_notebook_context(tmp_path, 'raise SystemExit("sifu-broken-on-purpose")\n')
    project.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=f"devstack-test/crashing-{project.name}")
    result = project.run("up", "-d", "--timeout", "170", check=False)
    assert result.returncode != 0
    # Failing fast is which error ends the wait: supervisor's give-up, raised only before the deadline,
    # never the probes' "not ready after 170s".
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "supervisor gave up on sifu" in error and "not ready after" not in result.stderr
    assert "sifu-broken-on-purpose" in result.stderr


def test_foreground_up_stops_the_stack_on_ctrl_c(project, docker_client):
    process = subprocess.Popen([sys.executable, "-m", "devstack", "up"], cwd=project.dir,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _healthy(project.sifu_url), timeout=300, what="the stack to answer")
        wait_for(lambda: process.poll() is None, timeout=5, what="foreground up to keep running")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert "stopping the stack" in output
    containers = docker_client.containers.list(all=True, filters={"label": f"devstack.project={project.name}"})
    assert {c.name for c in containers} == {f"{project.name}-notebook", f"{project.name}-proxy"}
    assert all(c.status == "exited" for c in containers)
    assert project.notebooks.is_dir()


def _healthy(sifu_url: str) -> bool:
    try:
        return httpx.get(f"{sifu_url}/health", trust_env=False, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_config_and_help_work_without_a_daemon(tmp_path):
    project = make_project(tmp_path, DEPLOYMENT_TOKEN="ghp_canary_in_config")
    no_daemon = {"DOCKER_HOST": "unix:///tmp/no-such-docker.sock"}
    shown = project.run("config", env=no_daemon)
    assert "upstream jupyter" in shown.stdout and "keepalive 256;" in shown.stdout
    assert "ghp_canary_in_config" not in shown.stdout and "DEPLOYMENT_TOKEN=********" in shown.stdout
    assert project.run("--help", env=no_daemon).returncode == 0
    assert project.run("up", "--help", env=no_daemon).returncode == 0
