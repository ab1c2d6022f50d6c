"""A foreground `up` against the real engine: how it ends.

It ends by itself when its stack is removed beside it (`devstack down` in another terminal), but
not when devstack recreates a container itself; and it ends on SIGINT and SIGTERM even when it
was started as a script's background job is, with SIGINT ignored.
"""

from __future__ import annotations

import signal
import subprocess

import pytest
from conftest import free_port

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
