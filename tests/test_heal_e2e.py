"""A stack that heals, against the real engine: a killed notebook or proxy is started again while
devstack watches, a crash loop is given up with its reason, a saved change repairs a stack whose proxy
is down (the busy-kernel check does not go through the proxy), and the view says what happened."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers import login
from seed import DEBIAN_TAG as SEED_IMAGE

pytestmark = pytest.mark.engine

# Only catches a stack that never heals: how fast it does is for bench/, not a timed test.
RESTORED_WITHIN_SECONDS = 60


def answers(project) -> None:
    """Sifu, and Jupyter behind the cookie gate, answer through the proxy (Jupyter's own answer, 200)."""
    assert httpx.get(f"{project.sifu_url}/health", trust_env=False, timeout=10).status_code == 200
    assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200


def ip_of(docker_client, name: str, network: str) -> str:
    return docker_client.containers.get(name).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def state(docker_client, name: str) -> str:
    return docker_client.containers.get(name).status


def test_killed_containers_are_restored_until_a_crash_loop_is_given_up_then_a_change_repairs_it(project, docker_client):
    notebook, proxy = f"{project.name}-notebook", f"{project.name}-proxy"
    squatter = None
    up = project.start("up")
    try:
        up.wait_for_line("watching ", timeout=300)
        # The notebook killed, as the OOM killer or a `docker kill` does: started again, upstream rewritten.
        # Another container takes its address meanwhile (the engine hands out the lowest free one), so
        # that it comes back on a new IP, as after a daemon restart.
        network = docker_client.networks.get(f"{project.name}_default")
        old_ip = ip_of(docker_client, notebook, network.name)
        squatter = docker_client.containers.run(SEED_IMAGE, ["sleep", "300"], detach=True,
                                                name=f"{project.name}-squatter")
        mark = up.mark()
        docker_client.containers.get(notebook).kill()
        network.connect(squatter)
        restoring = up.wait_for_line("starting it again", after=mark, timeout=RESTORED_WITHIN_SECONDS)
        assert f"{notebook} (exited (137))" in restoring
        up.wait_for_line(f"restored {notebook} in ", after=mark, timeout=RESTORED_WITHIN_SECONDS)
        answers(project)
        new_ip = ip_of(docker_client, notebook, network.name)
        assert new_ip != old_ip, "the notebook came back on its old address: this test proves nothing"
        served = (project.dir / ".devstack" / "proxy" / "current" / "conf.d" / "upstreams.conf").read_text()
        assert f"server {new_ip}:3335" in served and old_ip not in served
        status = json.loads(project.run("status", "--json").stdout)
        assert f"restored {notebook}" in status["recovery"]

        # The proxy killed: restored too, up to the bound; one death more and devstack says why it stops.
        for attempt in range(1, 4):
            mark = up.mark()
            docker_client.containers.get(proxy).kill()
            up.wait_for_line(f"restored {proxy} in ", after=mark, timeout=RESTORED_WITHIN_SECONDS)
            answers(project)
        mark = up.mark()
        docker_client.containers.get(proxy).kill()
        gave_up = up.wait_for_line("stopped restoring it", after=mark, timeout=RESTORED_WITHIN_SECONDS)
        assert proxy in gave_up and "crash loop" in gave_up
        up.wait_for_line("  | proxy | ", after=mark)  # its last log lines, below the reason
        assert "devstack-probe" not in "\n".join(up.lines[mark:])  # devstack's own probes are not the reason
        assert state(docker_client, proxy) == "exited"
        status = json.loads(project.run("status", "--json").stdout)
        assert "stopped restoring it" in status["last_error"] and "stopped restoring it" in status["recovery"]

        # With the proxy down, a saved .env that recreates the notebook is applied all the same (the
        # busy-kernel check asks Jupyter itself, not through the proxy) and starts the proxy again.
        mark = up.mark()
        project.write_env(DEVSTACK_TEST_HEAL="1")
        applied = up.wait_for_line("applied:", after=mark, timeout=180)
        assert "recreated" in applied
        after = "\n".join(up.lines[mark:])
        assert "ConnectError" not in after and "error:" not in after, after
        assert "could not ask Jupyter" not in after, after  # it asked Jupyter, and Jupyter answered
        assert state(docker_client, proxy) == "running"
        answers(project)
    finally:
        code = up.stop()
        if squatter is not None:
            squatter.remove(force=True)
    assert code == 0, up.output()


def test_a_daemon_restart_is_survived_and_the_stack_restored(project, docker_client):
    from daemon import ensure_engine_runs, exclusive_engine, restart_dockerd

    up = project.start("up")
    try:
        up.wait_for_line("watching ", timeout=300)
        mark = up.mark()
        with exclusive_engine():  # no other run is using the engine meanwhile
            try:
                restart_dockerd()
            finally:
                ensure_engine_runs()  # never leave the engine down, whatever happened
        up.wait_for_line("lost the Docker Engine's event stream", after=mark, timeout=RESTORED_WITHIN_SECONDS)
        up.wait_for_line("the Docker Engine answers again", after=mark, timeout=RESTORED_WITHIN_SECONDS)
        up.wait_for_line(f"restored {project.name}-notebook, {project.name}-proxy in ", after=mark,
                         timeout=RESTORED_WITHIN_SECONDS)
        answers(project)
        served = (project.dir / ".devstack" / "proxy" / "current" / "conf.d" / "upstreams.conf").read_text()
        ip = ip_of(docker_client, f"{project.name}-notebook", f"{project.name}_default")
        assert f"server {ip}:3335" in served
        assert up.process.poll() is None
    finally:
        code = up.stop()
    assert code == 0, up.output()
