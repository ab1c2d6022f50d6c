"""A foreground `up` against the real engine: how it ends, and what its view keeps following.

It ends by itself when its stack is removed beside it (`devstack down` in another terminal), but
not when devstack recreates a container itself; it ends on SIGINT and SIGTERM even when it
was started as a script's background job is, with SIGINT ignored; and a signal during a rebuild
cancels the build instead of waiting for it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import httpx
import pytest
from conftest import free_port
from helpers import OnTerminal, answers, wait_for

from devstack.ui.live import STOP_GRACE_SECONDS

pytestmark = pytest.mark.engine

# Only catches a hang: how long the stop takes is bench/foreground_exit.py's business.
ENDS_WITHIN_SECONDS = 120


def project_containers(docker_client, project) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"devstack.project={project.name}"})


def ignore_sigint() -> None:
    """What a non-interactive shell does to a background job (`devstack up &` in a script)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for_exit(up, timeout: float = ENDS_WITHIN_SECONDS) -> int:
    try:
        return up.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the foreground up still runs {timeout}s later; its output:\n{up.output()}") from None


@pytest.mark.parametrize("network", ["bridge", "host"])
def test_a_foreground_up_ends_by_itself_when_its_stack_is_downed_beside_it(project, docker_client, network):
    project.write_env(NETWORK_MODE=network)
    up = project.start("up")
    try:
        up.wait_for_line("watching ", timeout=300)
        # devstack's own recreate destroys containers too (a new variable for the notebook; in bridge
        # mode a new published port for the proxy, which host mode only reloads): no reason to end.
        mark = up.mark()
        project.sifu_port = free_port()
        project.write_env(SIFU_PORT=str(project.sifu_port), DEVSTACK_TEST_RECREATE="1")
        applied = up.wait_for_line("applied:", after=mark, timeout=180)
        assert "recreated" in applied
        assert up.count("recreate notebook", after=mark) == 1
        assert up.count("recreate proxy", after=mark) == (network == "bridge")
        assert up.process.poll() is None, up.output()

        mark = up.mark()
        project.run("down")
        code = wait_for_exit(up)
    finally:
        up.stop()
    output = up.output()
    assert code == 0, output
    ended = [line for line in up.lines[mark:] if "was removed from outside" in line]
    assert len(ended) == 1, output
    assert "stopped watching" in ended[0]
    assert "stopping the stack" not in output
    assert up.count("create ", after=mark) == 0 and up.count("build", after=mark) == 0
    assert not project_containers(docker_client, project)  # nothing came back after the down


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_foreground_up_started_with_sigint_ignored_ends_on_the_signal(project, docker_client, signum):
    up = project.start("up", preexec_fn=ignore_sigint)
    try:
        up.wait_for_line("watching ", timeout=300)
        assert up.process.poll() is None
        up.process.send_signal(signum)
        code = wait_for_exit(up)
    finally:
        up.stop()
    assert code == 0, up.output()
    assert "stopping the stack" in up.output()
    states = {c.name: c.status for c in project_containers(docker_client, project)}
    assert states == {f"{project.name}-notebook": "exited", f"{project.name}-proxy": "exited"}


def build_containers(docker_client, token: str) -> list:
    """The builder's containers running the step that carries `token` (they carry no label of ours)."""
    return [c for c in docker_client.containers.list(all=True, ignore_removed=True)
            if token in " ".join(c.attrs.get("Config", {}).get("Cmd") or ())]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["sigint", "sighup"])
def test_a_signal_during_a_rebuild_cancels_the_build_and_ends_devstack(project, docker_client, signum):
    from test_watch_e2e import own_notebook_context, remove_images

    tag = own_notebook_context(project)
    up = project.start("up", preexec_fn=ignore_sigint)
    try:
        up.wait_for_line("watching ", timeout=300)
        before = docker_client.images.get(tag).id
        token = f"devstack-cancel-{uuid.uuid4().hex[:8]}"
        dockerfile = project.dir / "final" / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + f"RUN sleep 600 # {token}\n")
        up.wait_for_line(token, timeout=300)  # the build's `Step N/N : RUN sleep 600 # ...` line
        wait_for(lambda: any(c.status == "running" for c in build_containers(docker_client, token)),
                 timeout=120, what="the build step's container to run")
        up.process.send_signal(signum)
        # Not a speed figure (bench/ctrl_c_rebuild.py is): less than the grace a change gets to finish
        # its step, so a build that is waited for instead of cancelled fails here.
        code = wait_for_exit(up, timeout=STOP_GRACE_SECONDS - 2)
        output = up.output()
        assert code == 0, output
        assert "stopping the stack" in output
        states = {c.name: c.status for c in project_containers(docker_client, project)}
        assert states == {f"{project.name}-notebook": "exited", f"{project.name}-proxy": "exited"}
        # The engine ended the step (its container removed) and built nothing.
        wait_for(lambda: not build_containers(docker_client, token), timeout=60,
                 what="the cancelled build's container to go")
        assert docker_client.images.get(tag).id == before
    finally:
        up.stop()
        remove_images(docker_client, project, tag, set())


def test_the_live_views_latest_logs_follow_a_container_restarted_with_the_same_id(project, docker_client):
    project.run("up", "-d")
    env = project.cli_env(COLUMNS="160", LINES="50")
    live = OnTerminal([sys.executable, "-m", "devstack", "watch"], project.dir, env)
    try:
        live.wait_for("watching", timeout=120)
        proxy = docker_client.containers.get(f"{project.name}-proxy")
        mark = live.mark()
        proxy.restart(timeout=5)
        assert docker_client.containers.get(proxy.id).id == proxy.id  # the same container, started again
        marker = f"/after-restart-{uuid.uuid4().hex[:8]}"
        # The proxy logs each request (its access log, on the container's stdout): the panel shows it.
        wait_for(lambda: answers(f"{project.sifu_url}/health"), timeout=60, what="the proxy to answer after its restart")
        httpx.get(f"{project.sifu_url}{marker}", trust_env=False)
        # Sifu logs the request too: the proxy's own line is the one that shows its logs are followed.
        wait_for(lambda: any("proxy |" in line and marker in line
                             for line in bytes(live.output[mark:]).decode(errors="replace").splitlines()),
                 timeout=30, what="the proxy's log line in the latest logs panel")
    finally:
        live.process.terminate()
        live.process.wait(timeout=60)
