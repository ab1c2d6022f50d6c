"""A foreground `up` against the real engine: how it ends.

It ends on SIGINT and SIGTERM even when it was started as a script's background job is, with
SIGINT ignored.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

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
