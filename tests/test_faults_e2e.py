"""Faults a QA run found (issue 14), on the real engine: one `up` at a time, nothing half-started,
one line for every bad input, and `down --rmi` between projects. The inputs that never reach the
engine are checked through the CLI with no engine at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from conftest import make_project

from devstack import __version__

# What a user must never see: a raw engine error or a traceback.
RAW = ("Traceback", "is ambiguous", "Conflict", "No such container", "No such network", "APIError", "404 Client Error")


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    assert not any(raw in result.stderr + result.stdout for raw in RAW), result.stderr
    return lines[0]


def _network_ids(docker_client, project) -> list[str]:
    return [n["Id"] for n in docker_client.api.networks(names=[f"{project.name}_default"])
            if n["Name"] == f"{project.name}_default"]


def _containers(docker_client, project) -> list[str]:
    found = docker_client.containers.list(all=True, filters={"label": f"devstack.project={project.name}"})
    return sorted(c.name for c in found)


def _together(project, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Start the commands at the same moment, in one folder; their results once all have ended."""
    processes = [subprocess.Popen([sys.executable, "-m", "devstack", *args], cwd=project.dir, env=project.cli_env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in commands]
    results = []
    for args, process in zip(commands, processes):
        out, err = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return results


# -- one `up` at a time ------------------------------------------------------------------------


def test_two_up_d_together_make_one_network_and_both_end_well(project, docker_client):
    waited = []
    for trial in range(2):  # bench/concurrent_up.py runs more trials; the suite's time is budgeted
        first, second = _together(project, ("up", "-d"), ("up", "-d"))
        for result in (first, second):
            assert result.returncode == 0, f"trial {trial}: {result.stdout}\n{result.stderr}"
            assert not any(raw in result.stdout + result.stderr for raw in RAW), result.stderr
        assert len(_network_ids(docker_client, project)) == 1, f"trial {trial}"
        waited += [line for result in (first, second) for line in result.stdout.splitlines()
                   if line.startswith("waiting for pid")]
        project.run("down")
    # The one that came second said whom it waited for: a devstack `up -d` and its pid.
    assert waited and all("(`devstack up -d`, since " in line for line in waited), waited


def test_up_d_and_down_together_end_well_with_no_raw_engine_error(project, docker_client):
    project.run("up", "-d")
    up, down = _together(project, ("up", "-d"), ("down",))
    for result in (up, down):
        assert result.returncode == 0, f"{result.args}: {result.stdout}\n{result.stderr}"
        assert not any(raw in result.stdout + result.stderr for raw in RAW), result.stderr
    # Whichever took the stack second found a whole stack or none: never half of one.
    assert _containers(docker_client, project) in ([], [f"{project.name}-notebook", f"{project.name}-proxy"])
    assert len(_network_ids(docker_client, project)) == (1 if _containers(docker_client, project) else 0)


def test_a_command_that_waits_too_long_names_the_process_that_holds_the_stack(engineless_project):
    """The lock is taken before the engine is asked anything: this needs no engine."""
    hold = ("import sys, time\nfrom pathlib import Path\nsys.argv = ['devstack', 'build', '--no-cache']\n"
            "from devstack.lock import project_lock\n"
            f"with project_lock(Path({str(engineless_project.dir / '.devstack')!r})).held():\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = engineless_project.run("--lock-wait", "1", "down", check=False)
        assert time.monotonic() - started < 20
        line = _error_line(result)
        assert f"pid {process.pid} (`devstack build --no-cache`" in line and "stop that process" in line
        assert f"waiting for pid {process.pid}" in result.stdout
    finally:
        process.kill()
        process.wait()


def test_a_duplicate_network_is_named_by_doctor_and_repaired_by_up(running_stack, docker_client):
    name = f"{running_stack.name}_default"
    duplicate = docker_client.api.create_network(name, driver="bridge", check_duplicate=False,
                                                 labels={"devstack.project": running_stack.name})["Id"]
    try:
        doctor = running_stack.run("doctor", check=False)
        (row,) = [line for line in doctor.stdout.splitlines() if f"network {name}" in line]
        assert doctor.returncode == 1 and row.startswith("fail") and duplicate[:12] in row and "devstack up" in row
        result = running_stack.run("up", "-d")
        assert f"an empty duplicate ({duplicate[:12]})" in result.stdout
        assert duplicate not in _network_ids(docker_client, running_stack)
        assert len(_network_ids(docker_client, running_stack)) == 1
        assert "pass  network" in running_stack.run("doctor", check=False).stdout
    finally:
        try:
            docker_client.api.remove_network(duplicate)
        except Exception:  # noqa: BLE001 - removed by `up`, as it should be
            pass


# -- nothing half-started -------------------------------------------------------------------------


def test_a_missing_nginx_image_leaves_no_network_and_no_container(project, docker_client):
    project.write_env(NGINX_IMAGE=f"devstack-test/no-such-nginx-{project.name}:1")
    line = _error_line(project.run("up", "-d", check=False))
    assert "NGINX_IMAGE=" in line and "no-such-nginx" in line
    assert _containers(docker_client, project) == [] and _network_ids(docker_client, project) == []


def test_a_failure_after_something_started_removes_what_this_up_created(project, tmp_path, docker_client):
    """The notebook container cannot start (its entrypoint does not exist) after the network and the
    container were created: `up` removes both again."""
    context = tmp_path / "nostart"
    context.mkdir()
    (context / "Dockerfile").write_text('ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nENTRYPOINT ["/no/such/entrypoint"]\n')
    project.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=f"devstack-test/nostart-{project.name}")
    result = project.run("up", "-d", check=False)
    line = _error_line(result)
    assert f"container {project.name}-notebook" in line
    assert f"removed container {project.name}-notebook again" in result.stdout
    assert f"removed network {project.name}_default again" in result.stdout
    assert _containers(docker_client, project) == [] and _network_ids(docker_client, project) == []


def test_values_the_container_could_not_start_with_stop_up_before_anything_starts(engineless_project):
    env_file = engineless_project.dir / ".env"
    env_file.write_bytes(env_file.read_bytes() + b"GREETING=hel\x00lo\n")
    line = _error_line(engineless_project.run("up", "-d", check=False))
    assert ".env:" in line and "GREETING holds a NUL byte" in line
    engineless_project.write_env()  # the NUL line is gone again
    engineless_project.write_env(HUGE="x" * 200_000)
    line = _error_line(engineless_project.run("up", "-d", check=False))
    assert "HUGE" in line and "could not start" in line and "xxxxxxxxxx" not in line


def test_values_production_would_refuse_are_warned_by_key(engineless_project):
    engineless_project.write_env(LONG_VALUE="v" * 300)
    result = engineless_project.run("up", "-d", check=False)
    (warning,) = [line for line in result.stdout.splitlines() if "LONG_VALUE" in line]
    assert "Elastic Beanstalk" in warning and "production would refuse it" in warning and "v" * 20 not in warning


# -- one line for every bad input ----------------------------------------------------------------


@pytest.mark.parametrize("data", [b"NAME=caf\xe9\n", bytes(range(128, 256)) + b"\n"], ids=["latin-1", "random-bytes"])
def test_an_env_file_that_is_not_utf8_is_one_line(engineless_project, data):
    env_file = engineless_project.dir / ".env"
    env_file.write_bytes(env_file.read_bytes() + data)
    line = _error_line(engineless_project.run("up", "-d", check=False))
    lines = len(engineless_project.settings) + 1
    assert f".env:{lines}:" in line and "UTF-8" in line


@pytest.mark.parametrize("value", ["5²", "３３３４"])
def test_a_port_of_non_ascii_digits_is_one_line_naming_the_key(engineless_project, value):
    engineless_project.write_env(SIFU_PORT=value)
    line = _error_line(engineless_project.run("up", "-d", check=False))
    assert "SIFU_PORT=" in line and ".env:" in line


def test_notebooks_dir_that_is_a_file_is_one_line_at_up(engineless_project):
    (engineless_project.dir / "notes.txt").write_text("my notes\n")
    engineless_project.write_env(NOTEBOOKS_DIR="notes.txt")
    line = _error_line(engineless_project.run("up", "-d", check=False))
    assert "NOTEBOOKS_DIR=" in line and "is a file, not a folder" in line
    assert (engineless_project.dir / "notes.txt").read_text() == "my notes\n"


def test_a_notebooks_folder_its_owner_cannot_write_is_warned_before_anything_starts(engineless_project):
    folder = engineless_project.notebooks
    folder.mkdir()
    if os.getuid() == 0:
        os.chown(folder, 4321, 4321)  # Jupyter runs as the folder's owner: root would write anyway
    folder.chmod(0o555)
    result = engineless_project.run("up", "-d", check=False)
    before_engine = result.stdout.split("\n")
    (warning,) = [line for line in before_engine if "NOTEBOOKS_DIR=" in line]
    assert "cannot write it" in warning and f"chmod u+rwx {folder}" in warning and "ready" not in result.stdout
    doctor = engineless_project.run("doctor", check=False)
    (row,) = [line for line in doctor.stdout.splitlines() if line.startswith("fail  notebooks folder")]
    assert f"chmod u+rwx {folder}" in row and "chown" not in row


def test_down_works_while_the_env_file_is_invalid(project, docker_client):
    project.run("up", "-d")
    env_file = project.dir / ".env"
    env_file.write_bytes(env_file.read_bytes() + b"SIFU_PORT=caf\xe9\n")
    result = project.run("down")
    assert "removing project" in result.stdout and f"remove container {project.name}-notebook" in result.stdout
    assert _containers(docker_client, project) == [] and _network_ids(docker_client, project) == []
    assert "--rmi" in _error_line(project.run("down", "--rmi", check=False))


def test_version_prints_the_version(engineless_project):
    result = engineless_project.run("--version")
    assert result.stdout.strip() == f"devstack {__version__}"


# -- down --rmi between projects -------------------------------------------------------------------


def test_down_rmi_removes_only_the_images_no_other_stack_uses(running_stack, tmp_path, docker_client):
    """A second project with the running stack's base tag and a final tag of its own: its `down --rmi`
    removes its own final image and keeps the base, from which the running stack's image is built."""
    own_tag = f"devstack-test/rmi-{running_stack.name}:own"
    other = make_project(tmp_path, BASE_IMAGE_TAG=running_stack.settings["BASE_IMAGE_TAG"], NOTEBOOK_IMAGE_TAG=own_tag)
    other.run("build", "notebook")
    result = other.run("down", "--rmi")
    assert f"remove image {own_tag}" in result.stdout
    # Named for the first container found built from it: the running stack's, or another run's on this engine.
    assert f"kept image {running_stack.settings['BASE_IMAGE_TAG']}: project " in result.stdout
    assert not docker_client.images.list(name=own_tag)
    assert docker_client.images.list(name=running_stack.settings["BASE_IMAGE_TAG"])
    # The same tags as the running stack: both kept, and it still answers.
    same = make_project(tmp_path, BASE_IMAGE_TAG=running_stack.settings["BASE_IMAGE_TAG"],
                        NOTEBOOK_IMAGE_TAG=running_stack.settings["NOTEBOOK_IMAGE_TAG"])
    kept = [line for line in same.run("down", "--rmi").stdout.splitlines() if line.startswith("warning: kept image")]
    assert len(kept) == 2
    assert httpx.get(f"{running_stack.sifu_url}/health", trust_env=False).status_code == 200
