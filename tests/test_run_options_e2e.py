"""The seed's `docker run` options, the devstack way, against the real engine:
no notebooks mount, extra published ports, the seed's container name, `shell`/`exec`, `up --rm`."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from conftest import NGINX_IMAGE, PROJECT_LABEL, free_port, make_project
from helpers import login, save_notebook, wait_for


def run_in_pty(argv: list[str], cwd, env: dict[str, str], typed: bytes, timeout: float = 60) -> tuple[int, str]:
    """Run a command on a real terminal (a pty), type `typed` once it has printed something
    (its prompt), and return its exit code and everything it showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    shown = b""
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 0.2)
            if readable:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last holder of the terminal closed it
                    break
                if not data:
                    break
                shown += data
                if not sent:
                    os.write(master, typed)
                    sent = True
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"{argv} did not finish within {timeout}s; it showed:\n{shown.decode(errors='replace')}")
        return proc.wait(timeout=30), shown.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def project_containers(docker_client, project) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project.name}"})


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- one stack with the seed's options: its container name, extra ports, a notebooks folder
#    owned by someone other than root --------------------------------------------------------


@pytest.fixture(scope="module")
def seedlike(tmp_path_factory, docker_client):
    extra, flagged = free_port(), free_port()
    made = make_project(tmp_path_factory.mktemp("seedlike"), EXTRA_PORTS=f"{extra}:8888")
    made.write_env(NOTEBOOK_CONTAINER_NAME=f"proversity.jupyter.cont-{made.name}")
    made.notebooks.mkdir()
    os.chown(made.notebooks, 4321, 4321)
    made.extra_port, made.flagged_port = extra, flagged
    made.container = f"proversity.jupyter.cont-{made.name}"
    made.run("up", "-d", "-p", f"{flagged}:8889")
    yield made
    made.run("down", check=False, timeout=120)
    for container in project_containers(docker_client, made):
        container.remove(force=True)


def test_the_seeds_container_name_works_with_plain_docker_exec(seedlike, docker_client):
    container = docker_client.containers.get(seedlike.container)
    assert container.labels[PROJECT_LABEL] == seedlike.name
    result = subprocess.run(["docker", "exec", seedlike.container, "bash", "-c", "echo $((6*7)) in $PWD"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42 in /notebooks"


def test_the_seeds_docker_exec_it_bash_gets_a_terminal(seedlike):
    code, shown = run_in_pty(["docker", "exec", "-it", seedlike.container, "bash"], seedlike.dir,
                             dict(os.environ), b"test -t 0 && echo on-a-tty-$((6*7)); exit 5\n")
    assert "on-a-tty-42" in shown
    assert code == 5


def test_extra_ports_answer_from_a_process_in_the_notebook_container(seedlike):
    for port in (8888, 8889):
        seedlike.run("exec", "--", "sh", "-c",
                     f"nohup python3 -m http.server {port} --directory /etc >/dev/null 2>&1 &")
    for host_port in (seedlike.extra_port, seedlike.flagged_port):
        def answers(url=f"http://127.0.0.1:{host_port}/"):
            try:
                return httpx.get(url, trust_env=False, timeout=2)
            except httpx.TransportError:
                return None

        response = wait_for(answers, timeout=30, what=f"the server behind host port {host_port}")
        assert response.status_code == 200 and "passwd" in response.text
    # Only on BIND_ADDRESS (127.0.0.1), as the proxy's ports.
    ports = seedlike.run("status", "--json").stdout
    assert f"127.0.0.1:{seedlike.extra_port}->8888/tcp" in ports
    assert f"127.0.0.1:{seedlike.flagged_port}->8889/tcp" in ports


def test_exec_passes_the_exit_code_and_keeps_stdout_and_stderr_apart(seedlike):
    result = seedlike.run("exec", "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3", check=False)
    assert result.returncode == 3
    assert result.stdout == "to-stdout\n"
    assert result.stderr == "to-stderr\n"
    proxy = seedlike.run("exec", "proxy", "--", "nginx", "-t", "-c", "/etc/devstack-proxy/current/nginx.conf")
    assert "syntax is ok" in proxy.stderr


def test_exec_streams_output_as_it_comes(seedlike):
    # The command prints its second line only once the test has seen the first: output held back
    # until the command ends would never arrive, and the bounded wait below fails.
    release = f"/tmp/release-{uuid.uuid4().hex[:8]}"
    command = seedlike.start("exec", "--", "sh", "-c",
                             f"echo first; while [ ! -e {release} ]; do sleep 0.1; done; echo second")
    try:
        command.wait_for_line("first", timeout=120)
        assert command.count("second") == 0
        seedlike.run("exec", "--", "touch", release)
        command.wait_for_line("second", timeout=120)
        assert command.process.wait(timeout=60) == 0
        assert command.lines == ["first", "second"]
    finally:
        command.stop()


def test_exec_runs_as_the_notebooks_owner_unless_told(seedlike):
    assert seedlike.run("exec", "--", "id", "-u").stdout.strip() == "4321"
    assert seedlike.run("exec", "-u", "root", "notebook", "--", "id", "-u").stdout.strip() == "0"
    seedlike.run("exec", "--", "touch", "/notebooks/made-by-exec.txt")
    made = seedlike.notebooks / "made-by-exec.txt"
    assert (made.stat().st_uid, made.stat().st_gid) == (4321, 4321)


def test_shell_opens_bash_on_a_terminal(seedlike):
    code, shown = run_in_pty([sys.executable, "-m", "devstack", "shell"], seedlike.dir, seedlike.cli_env(),
                             b"test -t 0 && echo on-a-tty; echo shell-is-$0 uid-$(id -u); exit 7\n")
    assert "on-a-tty" in shown
    assert "shell-is-bash uid-4321" in shown
    assert code == 7


def test_shell_without_a_terminal_reads_stdin_and_splits_the_streams(seedlike):
    # Large output crosses many socket reads, so frames split mid-header: the demuxer must cope.
    script = "seq 1 20000; echo to-stderr >&2; exit 4\n"
    result = seedlike.run("shell", check=False, input=script)
    assert result.returncode == 4
    assert result.stdout.split() == [str(n) for n in range(1, 20001)]
    assert result.stderr == "to-stderr\n"


def test_exec_never_enters_a_foreign_container_with_the_seeds_name(tmp_path, docker_client):
    project = make_project(tmp_path)
    name = f"proversity.jupyter.cont-{project.name}"
    project.write_env(NOTEBOOK_CONTAINER_NAME=name)
    squatter = docker_client.containers.run(NGINX_IMAGE, ["sleep", "300"], detach=True, name=name, entrypoint=[])
    try:
        line = _error_line(project.run("exec", "--", "true", check=False))
        assert f"container {name} exists and was not created by devstack" in line
        line = _error_line(project.run("up", "-d", check=False))
        assert f"container {name} exists and was not created by devstack" in line
        assert "NOTEBOOK_CONTAINER_NAME" in line
        squatter.reload()
        assert squatter.status == "running"
        assert not project_containers(docker_client, project)
    finally:
        squatter.remove(force=True)
        project.run("down", check=False)


def test_renaming_the_notebook_container_replaces_the_old_one(project, docker_client):
    project.run("up", "-d")
    client = login(project.sifu_url)
    save_notebook(client, project.jupyter_url, "before-rename.ipynb")
    seed_name = f"proversity.jupyter.cont-{project.name}"
    project.write_env(NOTEBOOK_CONTAINER_NAME=seed_name)
    result = project.run("up", "-d")
    assert f"remove {project.name}-notebook" in result.stdout
    names = {c.name for c in project_containers(docker_client, project)}
    assert names == {seed_name, f"{project.name}-proxy"}
    listing = login(project.sifu_url).get(f"{project.jupyter_url}/api/contents").json()
    assert "before-rename.ipynb" in {item["name"] for item in listing["content"]}


# -- no notebooks mount -----------------------------------------------------------------------


def test_without_the_mount_notebooks_live_in_the_container_only(project, docker_client):
    result = project.run("up", "-d", "--no-notebooks-mount")
    assert result.stdout.count("notebooks live only in container") == 1
    container = docker_client.containers.get(f"{project.name}-notebook")
    assert "/notebooks" not in {m["Destination"] for m in container.attrs["Mounts"]}

    client = login(project.sifu_url)
    save_notebook(client, project.jupyter_url, "inside-only.ipynb")
    code, output = container.exec_run(["stat", "-c", "%u", "/notebooks/inside-only.ipynb"])
    assert code == 0, output
    # Without a folder to take the owner from, Jupyter runs as the user who ran devstack.
    assert output.decode().strip() == str(os.getuid())
    assert not project.notebooks.exists()
    assert {p.name for p in project.dir.iterdir()} == {".env", ".devstack"}

    # Up again: nothing to do, and the notebook is still in the container.
    again = project.run("up", "-d", "--no-notebooks-mount")
    assert "recreate" not in again.stdout.replace("or a recreate", "") and "create notebook" not in again.stdout
    assert again.stdout.count("notebooks live only in container") == 1
    listing = login(project.sifu_url).get(f"{project.jupyter_url}/api/contents").json()
    assert "inside-only.ipynb" in {item["name"] for item in listing["content"]}

    # NOTEBOOKS_DIR set empty in .env: the same stack as the flag (a devstack setting is not the
    # container's environment), so nothing is recreated and the notebook is still there.
    project.write_env(NOTEBOOKS_DIR="")
    emptied = project.run("up", "-d")
    assert "recreate notebook" not in emptied.stdout
    assert emptied.stdout.count("notebooks live only in container") == 1
    listing = login(project.sifu_url).get(f"{project.jupyter_url}/api/contents").json()
    assert "inside-only.ipynb" in {item["name"] for item in listing["content"]}

    # A variable of the user's own reaches the container's environment, so it is recreated, and the
    # notebook is lost with the old one, as `up` warned.
    project.write_env(FEATURE_FLAG="on")
    recreated = project.run("up", "-d")
    assert "recreate notebook" in recreated.stdout
    container = docker_client.containers.get(f"{project.name}-notebook")
    assert "/notebooks" not in {m["Destination"] for m in container.attrs["Mounts"]}
    listing = login(project.sifu_url).get(f"{project.jupyter_url}/api/contents").json()
    assert "inside-only.ipynb" not in {item["name"] for item in listing["content"]}
    assert not project.notebooks.exists()


# -- up --rm ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_rm_removes_the_stack_when_the_foreground_run_ends(project, docker_client, signum):
    project.notebooks.mkdir()
    (project.notebooks / "mine.txt").write_text("keep me")
    proc = subprocess.Popen([sys.executable, "-m", "devstack", "up", "--rm"], cwd=project.dir,
                            env=project.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        # Ready as devstack sees it: it prints the URL to open once its own probes pass.
        wait_for(lambda: any(line.startswith("open http") for line in lines), timeout=300, interval=0.2,
                 what="`up --rm` to say the stack is ready")
        save_notebook(login(project.sifu_url), project.jupyter_url, "saved-before-ctrl-c.ipynb")
        assert project_containers(docker_client, project)
        proc.send_signal(signum)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "removing the stack" in output
    assert not project_containers(docker_client, project)
    assert not docker_client.networks.list(names=[f"{project.name}_default"])
    assert (project.notebooks / "mine.txt").read_text() == "keep me"
    assert (project.notebooks / "saved-before-ctrl-c.ipynb").is_file()
    assert docker_client.images.get(project.settings["NOTEBOOK_IMAGE_TAG"])


def test_closing_the_terminal_ends_a_foreground_up_like_ctrl_c(project, docker_client):
    """The terminal's window closed: the kernel hangs up on `up` (SIGHUP), whose output now fails with EIO."""
    project.notebooks.mkdir()
    (project.notebooks / "mine.txt").write_text("keep me")
    master, slave = pty.openpty()

    # As a shell runs a command: in a session of its own, whose controlling terminal is the pty
    # (util-linux's setsid execs in place, so proc.pid is devstack's).
    proc = subprocess.Popen(["setsid", "--ctty", sys.executable, "-m", "devstack", "up", "--rm"], cwd=project.dir,
                            env=project.cli_env(), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown = bytearray()

    def read_terminal():
        with contextlib.suppress(OSError):  # EIO once the terminal is gone
            while chunk := os.read(master, 65536):
                shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        wait_for(lambda: b"open http" in shown, timeout=300, interval=0.2, what="`up` on a terminal to be ready")
        assert project_containers(docker_client, project)
        os.close(master)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert not project_containers(docker_client, project)
    assert (project.notebooks / "mine.txt").read_text() == "keep me"


def test_up_rm_removes_a_stack_that_fails_to_come_up(project, docker_client):
    project.notebooks.mkdir()
    (project.notebooks / "mine.txt").write_text("keep me")
    # Far too short for Jupyter to start: the readiness wait fails, and --rm cleans up.
    result = project.run("up", "--rm", "--timeout", "0.5", check=False)
    line = _error_line(result)
    assert "not ready after" in line
    assert "removing the stack" in result.stdout
    assert not project_containers(docker_client, project)
    assert (project.notebooks / "mine.txt").read_text() == "keep me"


# -- bad port specs: one line naming the port ---------------------------------------------------


@pytest.mark.parametrize(("extra_ports", "expected"), [
    ("8888", "'8888' is not a port mapping"),
    ("88x8:8888", "host port '88x8' is not a number"),
    ("70000:8888", "host port 70000 is out of range"),
    ("8888:0", "container port 0 is out of range"),
    ("8888:8888,8888:9999", "host port 8888 is published twice"),
    ("{sifu}:8888", "host port {sifu} (EXTRA_PORTS from {env}:{line}) is the proxy's SIFU_PORT"),
    ("{jupyter}:8888", "host port {jupyter} (EXTRA_PORTS from {env}:{line}) is the proxy's JUPYTER_PORT"),
    ("9000:3335", "container port 3335"),
])
def test_each_bad_extra_ports_value_gives_its_error(engineless_project, extra_ports, expected):
    project = engineless_project
    project.write_env(EXTRA_PORTS=extra_ports.format(sifu=project.sifu_port, jupyter=project.jupyter_port))
    line = _error_line(project.run("config", check=False))
    env_line = list(project.settings).index("EXTRA_PORTS") + 1
    assert expected.format(sifu=project.sifu_port, jupyter=project.jupyter_port, env=project.dir / ".env",
                           line=env_line) in line
    assert "EXTRA_PORTS" in line


def test_bad_p_flag_gives_its_error_before_anything_runs(engineless_project):
    # No engine answers: the port error, not "no Docker Engine", shows it comes before any Docker call.
    project = engineless_project
    line = _error_line(project.run("up", "-d", "-p", "8888:8888", "-p", "8888:9000", check=False))
    assert "host port 8888 is published twice (-p 8888:8888 and -p 8888:9000)" in line
    line = _error_line(project.run("up", "-d", "-p", f"{project.jupyter_port}:80", check=False))
    assert f"host port {project.jupyter_port} (-p {project.jupyter_port}:80) is the proxy's JUPYTER_PORT" in line


def test_extra_port_in_use_is_named(project, docker_client):
    # Needs the engine: a port this project's own containers hold is not "in use".
    port = free_port()
    project.write_env(EXTRA_PORTS=f"{port}:8888")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        line = _error_line(project.run("up", "-d", check=False))
    assert f"host port 127.0.0.1:{port} (EXTRA_PORTS from {project.dir / '.env'}:" in line
    assert "is already in use" in line
    assert not project_containers(docker_client, project)


def test_rm_with_detach_is_refused(engineless_project):
    line = _error_line(engineless_project.run("up", "-d", "--rm", check=False))
    assert "--rm" in line and "-d" in line


def test_invalid_container_name_is_named(engineless_project):
    engineless_project.write_env(NOTEBOOK_CONTAINER_NAME="proversity jupyter")
    line = _error_line(engineless_project.run("config", check=False))
    assert "NOTEBOOK_CONTAINER_NAME='proversity jupyter' is not a container name" in line
