"""The pure parts of issue 14's faults: the project lock, duplicate networks, what a failed `up`
removes again, the limits on `.env` values, the inputs that get one line, `down --rmi` between
projects. What the engine does with them is tested in tests/test_faults_e2e.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from memory_engine import MemoryEngine

from devstack.docker.engine import NetworkInfo
from devstack.envlimits import environment_problems
from devstack.errors import ConfigError, ConflictError, EngineError
from devstack.lock import StackBusy, holder_command, parse_holder, project_lock
from devstack.reconcile import Stack, Verb
from devstack.reconcile.plan import duplicates_to_remove
from devstack.reconcile.preflight import notebooks_problem
from devstack.settings import is_number, load_settings, project_name_only, read_env_file
from devstack.spec import LABEL_IMAGE, LABEL_PROJECT, LABEL_SERVICE

NGINX = "nginx:stable"


def stack_on(engine, folder, events=None, **kwargs) -> Stack:
    return Stack(load_settings(folder, environ={}), notify=(events.append if events is not None else lambda e: None),
                 connect=lambda: engine, **kwargs)


# -- the lock ---------------------------------------------------------------------------------

HOLD = """
import sys, time
sys.argv = ["devstack", "up", "-d", "--set", "DEPLOYMENT_TOKEN=ghp_canary"]
from pathlib import Path
from devstack.lock import project_lock
with project_lock(Path({state!r})).held():
    print("held", flush=True)
    time.sleep(30)
"""


def hold_in_another_process(state_dir):
    process = subprocess.Popen([sys.executable, "-c", HOLD.format(state=str(state_dir))], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_waits_then_names_the_holder_without_its_secrets(tmp_path):
    state = tmp_path / ".devstack"
    holder = hold_in_another_process(state)
    try:
        told = []
        started = time.monotonic()
        with pytest.raises(StackBusy) as error:
            with project_lock(state).held(told.append, timeout=0.5):
                pass
        assert 0.5 <= time.monotonic() - started < 5
        message = str(error.value)
        assert f"pid {holder.pid}" in message and "`devstack up -d --set DEPLOYMENT_TOKEN=…`" in message
        assert "ghp_canary" not in message
        assert [h.pid for h in told] == [holder.pid]  # told once who it waits for
    finally:
        holder.kill()
        holder.wait()
    with project_lock(state).held(timeout=5):  # the kernel released the dead holder's lock
        pass


def test_every_command_that_changes_the_stack_waits_for_the_lock(project):
    holder = hold_in_another_process(project / ".devstack")
    try:
        engine = MemoryEngine({NGINX: {}})
        stack = stack_on(engine, project, lock_wait=0.2)
        for command in (lambda: stack.build({"base"}), lambda: stack.up(ready_timeout=1), stack.stop, stack.down,
                        stack.converge):
            with pytest.raises(StackBusy, match=f"pid {holder.pid}"):
                command()
        assert engine.ops == [] and not stack.up_began
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_reentrant_and_shared_by_the_threads_of_one_process(tmp_path):
    lock = project_lock(tmp_path / ".devstack")
    assert lock is project_lock(tmp_path / "x" / ".." / ".devstack")
    with lock.held(), lock.held():  # `up` holds it and converges, which takes it again
        assert parse_holder(lock.path.read_text()).pid == os.getpid()
    cancelled = []
    import threading

    with lock.held():
        waiter = threading.Thread(target=lambda: cancelled.append(_try(lock, cancelled=lambda: True)))
        waiter.start()
        waiter.join(5)
    assert cancelled == ["busy"]


def _try(lock, **kwargs) -> str:
    try:
        with lock.held(**kwargs):
            return "held"
    except StackBusy:
        return "busy"


def test_holder_command_hides_every_set_value():
    assert holder_command(["--set", "A=1", "-s", "B=2", "--set=C=3", "-sD=4", "up", "-d"]) == \
        "devstack --set A=… -s B=… --set=C=… -sD=… up -d"


# -- duplicate networks -------------------------------------------------------------------------


def net(name_id: str, created: str, containers: int = 0) -> NetworkInfo:
    return NetworkInfo(name_id, "demo_default", {LABEL_PROJECT: "demo"}, created, containers)


def test_of_duplicate_networks_the_one_in_use_is_kept_else_the_oldest():
    old, new, used = net("a", "1"), net("b", "2"), net("c", "3", containers=2)
    assert duplicates_to_remove(old, (new, used)) == [old, new]
    assert duplicates_to_remove(old, (new,)) == [new]
    assert duplicates_to_remove(old, ()) == []
    with pytest.raises(ConflictError, match="2 of them hold containers: run `devstack down`"):
        duplicates_to_remove(used, (replace(old, containers=1),))


def test_up_removes_an_empty_duplicate_of_its_network(project):
    engine = MemoryEngine({NGINX: {}})
    stack = stack_on(engine, project)
    stack.converge()
    engine.create_network("demo_default", {LABEL_PROJECT: "demo"})
    plan = stack.plan()
    assert [(s.verb, s.target) for s in plan.steps] == [(Verb.REMOVE_NETWORK, "demo_default")]
    stack.converge()
    assert len(engine.networks_named("demo_default")) == 1 and not stack.plan()


def test_a_foreign_network_of_our_name_among_duplicates_is_a_conflict(project):
    engine = MemoryEngine({NGINX: {}})
    stack_on(engine, project).converge()
    engine.create_network("demo_default", {})
    with pytest.raises(ConflictError, match="not created by devstack for project demo"):
        stack_on(engine, project).plan()


# -- a failed up leaves the stack as it was ---------------------------------------------------------


def test_a_failed_up_removes_what_it_created_and_keeps_what_was_there(project):
    engine = MemoryEngine()  # NGINX_IMAGE missing, and its pull fails
    engine.pull = lambda ref: (_ for _ in ()).throw(EngineError("no registry"))
    with pytest.raises(EngineError, match="NGINX_IMAGE=nginx:stable is not on this machine"):
        stack_on(engine, project).up(ready_timeout=1)
    assert engine.ops == []  # pulled first: nothing was built, created or started

    engine = MemoryEngine({NGINX: {}})
    bystander = engine.add_container("bystander", {LABEL_PROJECT: "demo-other", LABEL_SERVICE: "notebook"})
    real_create = engine.create_container

    def create(service, network, labels):  # noqa: ANN001
        if service.name == "proxy":
            raise EngineError("container demo-proxy: refused")
        return real_create(service, network, labels)

    engine.create_container = create
    events = []
    with pytest.raises(EngineError, match="refused"):
        stack_on(engine, project, events).up(ready_timeout=1)
    assert engine.containers("demo") == [] and engine.networks("demo") == []
    assert engine.container(bystander.id) is not None
    assert any("removed container demo-notebook again" in e.message for e in events)


# -- .env values ---------------------------------------------------------------------------------


def test_eb_limits_warn_by_key_and_the_kernels_refuse():
    assert environment_problems({"A": "x" * 256, "B" * 128: "1"}) == []
    problems = environment_problems({"LONG": "x" * 300, "K" * 129: "1"}, {"LONG": "overrides.yml:4"})
    assert [(p.key, p.fatal) for p in problems] == [("LONG", False), ("K" * 129, False)]
    assert "production would refuse it" in problems[0].message and "256" in problems[0].message
    assert problems[0].message.startswith("LONG in overrides.yml:4 ")  # where it was set, whichever layer
    (total,) = environment_problems({f"V{i}": "x" * 250 for i in range(20)})
    assert "4096" in total.message and not total.fatal
    huge = environment_problems({"HUGE": "x" * 200_000})
    assert huge[0].fatal and "HUGE" in huge[0].message and "x" * 20 not in huge[0].message


@pytest.mark.parametrize("data,line", [(b"A=1\nNAME=caf\xe9\n", 2), (b"A=\x80\x81\xfe\xff\n", 1)])
def test_an_env_file_that_is_not_utf8_is_one_line_naming_the_line(tmp_path, data, line):
    (tmp_path / ".env").write_bytes(data)
    with pytest.raises(ConfigError) as error:
        read_env_file(tmp_path / ".env")
    assert f".env:{line}:" in str(error.value) and "UTF-8" in str(error.value) and "\n" not in str(error.value)


def test_a_nul_byte_names_the_key_and_line(tmp_path):
    (tmp_path / ".env").write_bytes(b"A=1\nSECRETISH=ab\x00cd\n")
    with pytest.raises(ConfigError, match=r"\.env:2: SECRETISH holds a NUL byte") as error:
        read_env_file(tmp_path / ".env")
    assert "abcd" not in str(error.value)


@pytest.mark.parametrize("value", ["5²", "３３３４", "٣٣٣٤"])
def test_non_ascii_digits_are_not_a_port(tmp_path, value):
    assert not is_number(value)
    (tmp_path / ".env").write_text(f"SIFU_PORT={value}\n")
    with pytest.raises(ConfigError, match="SIFU_PORT="):
        load_settings(tmp_path, environ={})


def test_the_project_name_is_found_while_the_rest_is_invalid(tmp_path):
    (tmp_path / ".env").write_bytes(b"SIFU_PORT=caf\xe9\nDEVSTACK_PROJECT=mine\n")
    assert project_name_only(tmp_path, environ={}) == "mine"
    assert project_name_only(tmp_path, {"DEVSTACK_PROJECT": "flagged"}, environ={}) == "flagged"
    (tmp_path / ".env").write_text("SIFU_PORT=x\n")
    assert project_name_only(tmp_path, environ={}) == load_settings(tmp_path, environ={"SIFU_PORT": "1"}).project_name
    (tmp_path / ".env").write_text("DEVSTACK_PROJECT=Bad Name\n")
    with pytest.raises(ConfigError, match="DEVSTACK_PROJECT"):
        project_name_only(tmp_path, environ={})


def test_a_folder_its_owner_cannot_write_is_a_problem_whose_fix_is_chmod(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    if os.getuid() == 0:
        os.chown(folder, 4321, 4321)
    owner = folder.stat().st_uid
    assert notebooks_problem(folder) is None
    folder.chmod(0o555)
    problem = notebooks_problem(folder, uid=owner)
    assert problem is not None and problem.fix == f"chmod u+rwx {folder}" and "403" in problem.message
    assert notebooks_problem(folder, uid=owner + 1).fix == f"sudo chmod u+rwx {folder}"


# -- down --rmi between projects ----------------------------------------------------------------


def test_down_rmi_keeps_the_images_another_projects_container_uses(project, tmp_path):
    engine = MemoryEngine({NGINX: {}})
    stack_on(engine, project).converge()
    other = tmp_path / "other"
    other.mkdir()
    (other / ".env").write_text("DEVSTACK_PROJECT=other\nSIFU_PORT=44334\nJUPYTER_PORT=44335\n")
    stack_on(engine, other).converge()  # the same default tags: one image for both
    final = engine.image("proversity/notebook")
    base = engine.image("proversity/base-notebook")
    engine.image_records[final.id] = replace(final, parent=base.id)
    events = []
    stack_on(engine, project, events).down(remove_images=True)
    assert engine.image("proversity/notebook") is not None and engine.image("proversity/base-notebook") is not None
    kept = [e.message for e in events if e.message.startswith("kept image")]
    assert len(kept) == 2 and all("project other's container other-notebook uses it" in m for m in kept)
    stack_on(engine, other).down(remove_images=True)
    assert engine.image("proversity/notebook") is None and engine.image("proversity/base-notebook") is None
    assert all(LABEL_IMAGE not in i.labels for i in engine.image_records.values())


def test_doctor_names_each_value_production_would_refuse(project):
    from devstack.doctor import FAIL, PASS, WARN, Doctor, check_environment

    def rows():
        doctor = Doctor(load_settings(project, environ={}), connect=lambda: (_ for _ in ()).throw(EngineError("no")))
        return [(r.status, r.detail) for r in check_environment(doctor)]

    assert [status for status, _ in rows()] == [PASS]
    (project / ".env").write_text((project / ".env").read_text() + f"LONG={'v' * 300}\nHUGE={'x' * 140_000}\n")
    statuses = rows()
    assert [s for s, _ in statuses] == [WARN, FAIL, WARN]  # LONG, HUGE, and all of them together
    assert "LONG" in statuses[0][1] and "HUGE" in statuses[1][1] and "4096" in statuses[2][1]


def test_the_limits_read_every_layer_of_the_environment_with_its_line(project):
    """A value production would refuse is named where it is set, overrides.yml as well as .env."""
    from devstack.reconcile.preflight import env_problems
    from devstack.spec import load_stack

    (project / "overrides.yml").write_text("A: 1\nFROM_OVERRIDES: " + "o" * 300 + "\n")
    (project / ".env").write_text((project / ".env").read_text() + "FROM_ENV=" + "e" * 300 + "\n")
    spec = load_stack(load_settings(project, environ={}), (1000, 1000))
    messages = {p.key: p.message for p in env_problems(spec)}
    assert "overrides.yml:2 has a value of 300 characters" in messages["FROM_OVERRIDES"]
    assert ".env:4 has a value of 300 characters" in messages["FROM_ENV"]
