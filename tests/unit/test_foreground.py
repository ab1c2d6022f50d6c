"""The foreground run's parts that need no engine (a fake of the engine seam), and a CLI that does
nothing when imported."""

import subprocess
import sys
import threading
from types import SimpleNamespace

from devstack.live import REMOVAL_WINDOW_SECONDS, RemovalCheck


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


class FakeEngine:
    """What RemovalCheck asks the engine seam (reconcile's Controller.down removes these two kinds)."""

    def __init__(self, containers=("notebook", "proxy"), networks=("default",)):
        self.left_containers = list(containers)
        self.left_networks = list(networks)

    def containers(self, project):  # noqa: ARG002
        return list(self.left_containers)

    def networks(self, project):  # noqa: ARG002
        return list(self.left_networks)


def fake_applier(engine, network_mode="bridge"):
    spec = SimpleNamespace(project="p", network_mode=network_mode)
    return SimpleNamespace(controller=SimpleNamespace(spec=spec, engine=engine), busy=threading.Lock())


DESTROY = {"Type": "container", "Action": "destroy", "Actor": {"Attributes": {"devstack.service": "notebook"}}}


def test_the_stack_counts_as_removed_once_its_containers_and_network_are_gone():
    now = [0.0]
    check, stop = RemovalCheck(clock=lambda: now[0]), threading.Event()
    engine = FakeEngine()
    applier = fake_applier(engine)
    assert check.wait_time() is None and not check.check(applier, stop)  # nothing destroyed yet
    check.on_engine_event(DESTROY)
    engine.left_containers = ["proxy"]
    assert not check.check(applier, stop)  # the proxy is left: a recreate of the notebook, say
    assert check.wait_time() is None
    check.on_engine_event(DESTROY)
    engine.left_containers = []
    assert not check.check(applier, stop) and check.wait_time() is not None  # the network goes next
    engine.left_networks = []
    assert check.check(applier, stop) and check.removed and stop.is_set()


def test_a_destroy_while_devstack_applies_a_change_is_looked_at_after_it():
    check, stop = RemovalCheck(clock=lambda: 0.0), threading.Event()
    applier = fake_applier(FakeEngine(containers=(), networks=()))
    check.on_engine_event(DESTROY)
    with applier.busy:  # the applier recreating the notebook container
        assert not check.check(applier, stop) and not stop.is_set()
    assert check.check(applier, stop)


def test_containers_removed_by_hand_with_the_network_kept_are_not_the_stack_removed():
    now = [0.0]
    check, stop = RemovalCheck(clock=lambda: now[0]), threading.Event()
    applier = fake_applier(FakeEngine(containers=()))
    check.on_engine_event(DESTROY)
    assert not check.check(applier, stop)
    now[0] += REMOVAL_WINDOW_SECONDS
    assert not check.check(applier, stop) and check.wait_time() is None and not stop.is_set()


def test_in_host_mode_no_container_left_is_the_stack_removed():
    check, stop = RemovalCheck(clock=lambda: 0.0), threading.Event()
    check.on_engine_event(DESTROY)
    assert check.check(fake_applier(FakeEngine(containers=(), networks=()), network_mode="host"), stop)
