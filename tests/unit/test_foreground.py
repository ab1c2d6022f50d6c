"""The foreground run's parts that need no engine (the real Stack on the in-memory engine), and a CLI
that does nothing when imported."""

import subprocess
import sys
import threading
from types import SimpleNamespace

from memory_engine import MemoryEngine

from devstack.events import EngineEvent
from devstack.reconcile import Stack
from devstack.settings import load_settings
from devstack.watch.removal import REMOVAL_WINDOW_SECONDS, RemovalCheck


def test_importing_the_cli_reads_no_terminal_and_makes_no_console():
    shown = subprocess.run(
        [sys.executable, "-c", "import devstack.cli as cli, devstack.foreground;"
                               "print(cli.console.cache_info().currsize, cli.err_console.cache_info().currsize)"],
        capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["0", "0"]


def test_the_piped_width_is_read_when_a_console_is_made(monkeypatch):
    from devstack import cli

    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli._piped_width() == (None if sys.stdout.isatty() else 200)
    monkeypatch.setenv("COLUMNS", "90")
    assert cli._piped_width() is None


def made_stack(tmp_path, mode="bridge"):
    """A stack made by the real Stack on the in-memory engine, and what the removal check looks through."""
    (tmp_path / ".env").write_text(f"DEVSTACK_PROJECT=p\nSIFU_PORT=43334\nJUPYTER_PORT=43335\nNETWORK_MODE={mode}\n")
    memory = MemoryEngine({"nginx:stable": {}})
    stack = Stack(load_settings(tmp_path, environ={}), connect=lambda: memory)
    stack.converge()
    return memory, stack, SimpleNamespace(stack=stack, busy=threading.Lock())


def remove(memory, name):
    memory.remove(memory.container(name).id, name)


DESTROY = EngineEvent("container", "destroy", "p-notebook", "notebook")


def test_the_stack_counts_as_removed_once_its_containers_and_network_are_gone(tmp_path):
    now = [0.0]
    check, stop = RemovalCheck(clock=lambda: now[0]), threading.Event()
    memory, stack, changes = made_stack(tmp_path)
    assert check.wait_time() is None and not check.check(changes, stop)  # nothing destroyed yet
    check.on_engine_event(DESTROY)
    remove(memory, "p-notebook")
    assert not check.check(changes, stop)  # the proxy is left: a recreate of the notebook, say
    assert check.wait_time() is None
    check.on_engine_event(DESTROY)
    remove(memory, "p-proxy")
    assert not check.check(changes, stop) and check.wait_time() is not None  # the network goes next
    memory.remove_network(memory.network("p_default").id)
    assert check.check(changes, stop) and check.removed and stop.is_set()


def test_a_destroy_while_devstack_applies_a_change_is_looked_at_after_it(tmp_path):
    check, stop = RemovalCheck(clock=lambda: 0.0), threading.Event()
    memory, stack, changes = made_stack(tmp_path)
    stack.down()
    check.on_engine_event(DESTROY)
    with changes.busy:  # the change loop recreating the notebook container
        assert not check.check(changes, stop) and not stop.is_set()
    assert check.check(changes, stop)


def test_containers_removed_by_hand_with_the_network_kept_are_not_the_stack_removed(tmp_path):
    now = [0.0]
    check, stop = RemovalCheck(clock=lambda: now[0]), threading.Event()
    memory, stack, changes = made_stack(tmp_path)
    remove(memory, "p-notebook")
    remove(memory, "p-proxy")
    check.on_engine_event(DESTROY)
    assert not check.check(changes, stop)
    now[0] += REMOVAL_WINDOW_SECONDS
    assert not check.check(changes, stop) and check.wait_time() is None and not stop.is_set()


def test_in_host_mode_no_container_left_is_the_stack_removed(tmp_path):
    check, stop = RemovalCheck(clock=lambda: 0.0), threading.Event()
    memory, stack, changes = made_stack(tmp_path, mode="host")
    remove(memory, "p-notebook")
    remove(memory, "p-proxy")
    check.on_engine_event(DESTROY)
    assert check.check(changes, stop)


def test_a_second_signal_ends_the_ends_wait_for_another_devstack_and_leaves_the_stack_as_it_is(tmp_path):
    import fcntl
    import os
    import signal

    import pytest

    from devstack.foreground import ForegroundRun
    from devstack.lock import StackBusy

    memory, stack, _ = made_stack(tmp_path)
    before = signal.getsignal(signal.SIGINT)
    other = os.open(stack.lock.path, os.O_RDWR)  # another devstack holds the project's lock
    fcntl.flock(other, fcntl.LOCK_EX)
    memory.ops.clear()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))  # the user's second Ctrl-C
    timer.start()
    try:
        with pytest.raises(StackBusy, match="the stack is left as it is; `devstack stop` ends it"):
            ForegroundRun(stack).end(stack)
    finally:
        timer.cancel()
        os.close(other)
    assert memory.ops == [] and all(c.running for c in memory.containers("p"))
    assert signal.getsignal(signal.SIGINT) is before
    ForegroundRun(stack).end(stack)  # the lock free: the stack is stopped
    assert sorted(memory.ops) == ["stop p-notebook", "stop p-proxy"]
