"""Restarting the Docker daemon for a test, the way this machine runs it, and always leaving it running.

Other test runs share the engine: a restart is done only while holding the exclusive lock on
ENGINE_LOCK (every other run holds it shared), and whatever happens the daemon answers again before
the lock is released. systemd's unit is restarted when systemd runs dockerd; otherwise dockerd is
the process `scripts/setup` started (`nohup dockerd >LOG 2>&1 &`), and it is started again the same
way, with the command line it had.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ENGINE_LOCK = "/tmp/devstack-engine.lock"
DOCKERD_LOG = "/var/log/devstack-dockerd.log"  # where scripts/setup sends dockerd's output
PIDFILE = Path("/var/run/docker.pid")


def _inherited_lock() -> int | None:
    """A descriptor of ENGINE_LOCK this process inherited (the run was started as `flock -s LOCK pytest`)."""
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd) == ENGINE_LOCK:
                return int(fd.name)
    return None


@contextlib.contextmanager
def exclusive_engine(timeout: float = 900) -> Iterator[None]:
    """The engine to ourselves: no other run is in the middle of using it. A run started under
    `flock -s` holds the lock shared already: that very lock is converted to exclusive and back (a
    second, exclusive lock of our own would wait for ourselves). Polled, so a run that holds the lock
    shared for long is a clear failure, not a hang."""
    inherited = _inherited_lock()
    fd = inherited if inherited is not None else os.open(ENGINE_LOCK, os.O_RDONLY | os.O_CREAT, 0o666)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not lock {ENGINE_LOCK} for {timeout:.0f}s: another run holds it")
                time.sleep(0.5)
        yield
    finally:
        if inherited is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)  # as the run was started
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _as_root(argv: list[str]) -> list[str]:
    return argv if os.geteuid() == 0 else ["sudo", "-n", *argv]


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def wait_until_engine_answers(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not engine_answers():
        if time.monotonic() > deadline:
            raise AssertionError(f"the Docker daemon does not answer {timeout:.0f}s after its restart; "
                                 f"see {DOCKERD_LOG}")
        time.sleep(0.5)


def _dockerd_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
        if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "dockerd":
                    return int(entry.name)
    return None


def _systemd_runs_docker() -> bool:
    return shutil.which("systemctl") is not None and subprocess.run(
        ["systemctl", "is-active", "--quiet", "docker"], capture_output=True).returncode == 0


def _start_dockerd(argv: list[str]) -> None:
    command = " ".join(shlex.quote(arg) for arg in argv)
    subprocess.run(_as_root(["sh", "-c", f"nohup {command} >>{DOCKERD_LOG} 2>&1 &"]), check=True, cwd="/")


def restart_dockerd(stop_timeout: float = 60) -> None:
    """Stop the daemon with SIGTERM (what `systemctl stop` sends: its containers stop with it) and start
    it again; returns once it answers. Call it inside `exclusive_engine()`."""
    if _systemd_runs_docker():
        subprocess.run(_as_root(["systemctl", "restart", "docker"]), check=True)
        wait_until_engine_answers()
        return
    pid = _dockerd_pid()
    if pid is None:
        raise AssertionError("no dockerd process to restart")
    argv = [arg for arg in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if arg]
    try:
        subprocess.run(_as_root(["kill", "-TERM", str(pid)]), check=True)
        deadline = time.monotonic() + stop_timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            subprocess.run(_as_root(["kill", "-KILL", str(pid)]), check=False)
            time.sleep(1)
    finally:
        if not engine_answers():
            _start_dockerd(argv or ["dockerd"])
        wait_until_engine_answers()


def ensure_engine_runs() -> None:
    """Whatever a test did: a daemon that does not answer is started as scripts/setup starts it."""
    if engine_answers():
        return
    if _systemd_runs_docker() or _dockerd_pid() is not None:
        wait_until_engine_answers()
        return
    _start_dockerd(["dockerd"])
    wait_until_engine_answers()

