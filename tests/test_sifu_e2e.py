"""A private Sifu built into the final image, against the real engine, with a canary token found nowhere.

The git server runs on loopback and refuses every request without the canary
token; it serves a repository this module creates, holding a Sifu of its own
whose /health says "test-sifu" and a version. The tests run in order: build
and run it, the refusals (wrong, missing token; unknown repository; unreachable
host; a token file), the branch moving upstream, the server gone (offline);
then every place the token could have gone is scanned for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import TEST_NOTEBOOK_TAG, _remove_by_label, free_port, make_project
from gitserver import GitServer, SifuRepository

from devstack import assets

CANARY = "ghp_CANARY" + uuid.uuid4().hex  # token-shaped, and found only where it was put
WRONG = "ghp_WRONGTOKEN" + uuid.uuid4().hex
NEEDLES = (CANARY.encode(), WRONG.encode())
# What the test's Sifu does hold: each scan finds it where it is, so a scan that finds no canary has looked.
SIFU_MARK = (b"test-sifu",)
# Versions unique to this run, so that each build makes layers of its own (not cache hits of an earlier run).
RUN = uuid.uuid4().hex[:8]
# The final image of these tests has a tag of its own: other tests' stand-in image is left alone.
SIFU_TAG = TEST_NOTEBOOK_TAG.replace("/notebook:", "/notebook-sifu:")


class CommandLineWatcher:
    """Reads every process's command line, over and over, while devstack runs."""

    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.git_seen: set[str] = set()
        self.control = f"control-{uuid.uuid4().hex}".encode()
        self.control_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> CommandLineWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                if self.control in cmdline:
                    self.control_seen = True
                if any(needle in cmdline for needle in NEEDLES):
                    self.leaks.append(cmdline.replace(b"\0", b" ").decode("utf-8", "replace")[:300])
                words = cmdline.split(b"\0")
                if words and words[0].endswith(b"git") and b"-c" in words:
                    verb = next((w for w in words[1:] if w in (b"ls-remote", b"fetch")), None)
                    if verb:
                        self.git_seen.add(verb.decode())
                elif words and b"git-remote-http" in words[0]:
                    self.git_seen.add("git-remote-http")
            time.sleep(0.002)


@dataclass
class PrivateSifu:
    root: Path
    repo: SifuRepository
    server: GitServer
    project: object
    images_before: set[str]
    tmp_entries_before: set[str]
    tmpdir: Path
    started: float = field(default_factory=time.time)
    watcher: CommandLineWatcher = field(default_factory=CommandLineWatcher)
    outputs: list[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None):
        """The CLI, with every word it prints kept for the scan and every process watched."""
        result = self.project.run(*args, check=check, env={"TMPDIR": str(self.tmpdir), **(env or {})})
        self.outputs.append(result.stdout + result.stderr)
        return result

    def health(self) -> dict:
        return httpx.get(f"{self.project.sifu_url}/health", trust_env=False, timeout=5).json()


@pytest.fixture(scope="module")
def sifu(tmp_path_factory, docker_client):
    root = tmp_path_factory.mktemp("private-sifu")
    repo = SifuRepository.create(root, "sifu", version=f"1-{RUN}")
    # A slow server keeps git's processes alive long enough for the command-line watcher to see them.
    server = GitServer(root / "served", CANARY, delay=0.3).start()
    tmpdir = root / "tmp"
    tmpdir.mkdir()
    project = make_project(root, SIFU_REPO=server.url("sifu"), DEPLOYMENT_TOKEN=CANARY, NOTEBOOK_IMAGE_TAG=SIFU_TAG)
    state = PrivateSifu(root, repo, server, project,
                        images_before={image.id for image in docker_client.images.list(all=True)},
                        tmp_entries_before=set(os.listdir("/tmp")), tmpdir=tmpdir)
    with state.watcher:
        yield state
        state.run("down", check=False)
    _remove_by_label(docker_client, project.name)
    server.stop()


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0, result.stdout
    assert len(lines) == 1, result.stderr
    return lines[0]


def notebook_state(sifu, docker_client) -> dict[str, str]:
    ids = {c.name: f"{c.id} {c.status}" for c in docker_client.containers.list(
        all=True, filters={"label": f"devstack.project={sifu.project.name}"})}
    ids["image"] = docker_client.images.get(SIFU_TAG).id
    return ids


def set_token(sifu, value: str | None) -> None:
    if value is None:
        sifu.project.settings.pop("DEPLOYMENT_TOKEN", None)
        sifu.project.write_env()
    else:
        sifu.project.write_env(DEPLOYMENT_TOKEN=value)


# -- the build and the running stack ------------------------------------------------


def test_build_and_up_run_the_private_sifu_through_the_proxy(sifu):
    built = sifu.run("build")
    commit = _head(sifu)
    assert f"Sifu: SIFU_REPO={sifu.server.url('sifu')} at main (default branch), commit {commit[:12]}" in built.stdout
    assert "fetched on the host" in built.stdout
    up = sifu.run("up", "-d")
    assert "stand-in" not in up.stdout
    assert f"commit {commit[:12]}" in up.stdout and "unchanged since the last fetch" in up.stdout
    health = sifu.health()
    assert health == {"status": "ok", "service": "test-sifu", "version": f"1-{RUN}"}
    assert sifu.server.authorized_requests > 0  # the canary is the token that opened the repository


def test_a_wrong_token_fails_before_anything_changes(sifu, docker_client):
    before = notebook_state(sifu, docker_client)
    set_token(sifu, WRONG)
    try:
        for command in (("up", "-d"), ("build",)):
            line = error_line(sifu.run(*command, check=False))
            assert f"SIFU_REPO={sifu.server.url('sifu')}" in line and "authentication failed" in line
            assert "DEPLOYMENT_TOKEN" in line
        assert notebook_state(sifu, docker_client) == before  # no image tagged, no container touched
        assert sifu.health()["service"] == "test-sifu"
    finally:
        set_token(sifu, CANARY)


def test_a_missing_token_says_which_setting_to_provide(sifu, docker_client):
    before = notebook_state(sifu, docker_client)
    set_token(sifu, None)
    try:
        line = error_line(sifu.run("up", "-d", check=False, env={"DEPLOYMENT_TOKEN": ""}))
        assert "SIFU_REPO=" in line and "set DEPLOYMENT_TOKEN" in line
        assert notebook_state(sifu, docker_client) == before
    finally:
        set_token(sifu, CANARY)


def test_an_unknown_repository_and_an_unreachable_host_are_named(sifu, docker_client):
    before = notebook_state(sifu, docker_client)
    closed = f"http://127.0.0.1:{free_port()}/sifu.git"
    try:
        sifu.project.write_env(SIFU_REPO=sifu.server.url("no-such-repo"))
        line = error_line(sifu.run("build", check=False))
        assert f"SIFU_REPO={sifu.server.url('no-such-repo')}" in line and "repository not found" in line
        sifu.project.write_env(SIFU_REPO=closed)
        line = error_line(sifu.run("build", check=False))
        assert f"SIFU_REPO={closed}" in line and "cannot reach" in line
        assert notebook_state(sifu, docker_client) == before
    finally:
        sifu.project.write_env(SIFU_REPO=sifu.server.url("sifu"))


def test_a_deployment_token_file_is_read_and_never_sent_into_a_build(sifu, docker_client, tmp_path):
    token_file = sifu.project.dir / ".deployment_token"
    context = tmp_path / "notebook-context"
    set_token(sifu, None)
    token_file.write_text(CANARY + "\n")
    try:
        result = sifu.run("build", "notebook", env={"DEPLOYMENT_TOKEN": ""})
        assert "built " in result.stdout
        shown = sifu.run("config", env={"DEPLOYMENT_TOKEN": ""}).stdout
        assert re.search(r"DEPLOYMENT_TOKEN=\*+ +# .*\.deployment_token", shown), shown

        # A context that carries the token file along (production's Dockerfile COPYs it) is refused.
        shutil.copytree(assets.compose_dir() / "notebook", context)
        shutil.copy(token_file, context / ".deployment_token")
        before = notebook_state(sifu, docker_client)
        sifu.project.write_env(NOTEBOOK_CONTEXT=str(context))
        line = error_line(sifu.run("build", "notebook", check=False, env={"DEPLOYMENT_TOKEN": ""}))
        assert str(context / ".deployment_token") in line and "holds DEPLOYMENT_TOKEN" in line
        assert notebook_state(sifu, docker_client) == before
    finally:
        token_file.unlink(missing_ok=True)
        shutil.rmtree(context, ignore_errors=True)
        sifu.project.settings.pop("NOTEBOOK_CONTEXT", None)
        set_token(sifu, CANARY)


def test_the_branch_moving_upstream_rebuilds_the_final_image(sifu, docker_client):
    first_image = docker_client.images.get(SIFU_TAG).id
    second = sifu.repo.commit_version(f"2-{RUN}")
    built = sifu.run("build", "notebook")
    assert f"commit {second[:12]}" in built.stdout and "fetched on the host" in built.stdout
    assert docker_client.images.get(SIFU_TAG).id != first_image
    assert "recreate notebook" in sifu.run("up", "-d").stdout
    assert sifu.health()["version"] == f"2-{RUN}"

    # Without `build`: `up` notices by itself, rebuilds and recreates; the next `up` changes nothing.
    third = sifu.repo.commit_version(f"3-{RUN}")
    up = sifu.run("up", "-d")
    assert f"commit {third[:12]}" in up.stdout and "build notebook" in up.stdout and "recreate notebook" in up.stdout
    assert sifu.health()["version"] == f"3-{RUN}"
    again = sifu.run("up", "-d")
    assert "build notebook" not in again.stdout and "recreate" not in again.stdout
    cached = sorted(p.name for p in (sifu.project.dir / ".devstack" / "sifu").iterdir())
    assert cached == sorted([third, "last-resolved.json"])  # the old commits are gone


def test_offline_build_and_up_use_the_commit_last_resolved(sifu):
    """The laptop goes offline: the git server stops (for good: the scans below need no server)."""
    head = _head(sifu)
    sifu.server.stop()
    for args in (("build", "notebook"), ("up", "-d")):
        result = sifu.run(*args)
        shown = result.stdout + result.stderr
        assert f"SIFU_REPO={sifu.server.url('sifu')}: cannot reach" in shown, shown
        assert f"commit {head[:12]}, the last commit resolved for this SIFU_REF" in shown
        assert "may be behind upstream" in shown
    assert sifu.health()["version"] == f"3-{RUN}"


def _head(sifu) -> str:
    from gitserver import git

    return git("rev-parse", "HEAD", cwd=sifu.repo.workdir)


# -- where the token must never be -------------------------------------------------


def contains_canary(data: bytes, needles=NEEDLES) -> bool:
    return any(needle in data for needle in needles)


def stream_has_canary(chunks, needles=NEEDLES) -> bool:
    overlap = max(len(n) for n in needles)
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        if contains_canary(window, needles):
            return True
        tail = window[-overlap:]
    return False


def files_with_canary(folder: Path, skip=lambda path: False, newer_than: float = 0.0, needles=NEEDLES) -> list[str]:
    found = []
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                info = path.lstat()
                if not path.is_file() or path.is_symlink() or info.st_mtime < newer_than or skip(path):
                    continue
                with open(path, "rb") as handle:
                    if stream_has_canary(iter(lambda: handle.read(1 << 20), b""), needles):
                        found.append(str(path))
            except OSError:
                continue
    return found


def test_no_command_line_carried_the_token(sifu):
    assert sifu.watcher.leaks == []
    subprocess.run(["sh", "-c", "sleep 0.2", sifu.watcher.control.decode()], check=True)
    assert sifu.watcher.control_seen  # a short-lived process's arguments are seen
    # The watcher did see git at work: the check above looked at the right processes.
    assert {"ls-remote", "fetch"} <= sifu.watcher.git_seen, sifu.watcher.git_seen


def test_no_layer_history_or_config_of_the_images_holds_the_token(sifu, docker_client):
    base_tag = sifu.project.settings["BASE_IMAGE_TAG"]
    assert stream_has_canary(docker_client.images.get(SIFU_TAG).save(chunk_size=1 << 20), SIFU_MARK)
    for tag in (base_tag, SIFU_TAG):
        image = docker_client.images.get(tag)
        assert not stream_has_canary(image.save(chunk_size=1 << 20)), f"docker save {tag}"
        assert not contains_canary(json.dumps(image.history()).encode()), f"docker history {tag}"
        assert not contains_canary(json.dumps(image.attrs).encode()), f"docker inspect {tag}"
    # And the image does run the repository's code, as files: no .git came along.
    listing = docker_client.containers.run(SIFU_TAG, ["ls", "-A", "/opt/sifu"], entrypoint=[], remove=True)
    assert listing.decode().split() == ["README.md", "app.py"]


def test_no_image_or_build_cache_the_builds_left_holds_the_token(sifu, docker_client):
    new_images = [image for image in docker_client.images.list(all=True) if image.id not in sifu.images_before]
    assert new_images  # the classic builder's intermediate images are among them
    layers_read = layers_with_sifu = 0
    for image in new_images:
        assert not contains_canary(json.dumps(image.attrs).encode()), image.id
        assert not contains_canary(json.dumps(image.history()).encode()), image.id
        # Each image's own layer, read where the engine keeps it; else the whole image.
        upper = (image.attrs.get("GraphDriver", {}).get("Data") or {}).get("UpperDir", "")
        if upper and os.path.isdir(upper):
            assert files_with_canary(Path(upper)) == [], image.id
            layers_read += 1
            layers_with_sifu += bool(files_with_canary(Path(upper), needles=SIFU_MARK))
        else:
            assert not stream_has_canary(image.save(chunk_size=1 << 20)), image.id
    # The image in use holds the test Sifu in a layer of its own (those of the builds it replaced were
    # removed by devstack): finding it shows the layers were really read.
    assert not layers_read or layers_with_sifu >= 1, (layers_read, layers_with_sifu)
    assert not contains_canary(json.dumps(docker_client.df().get("BuildCache") or []).encode())


def test_the_running_containers_hold_no_token(sifu, docker_client):
    for container in docker_client.containers.list(filters={"label": f"devstack.project={sifu.project.name}"}):
        assert not contains_canary(json.dumps(container.attrs).encode()), container.name
    notebook = docker_client.containers.get(f"{sifu.project.name}-notebook")
    # Every process's environment, and the files Sifu and the entrypoint may have written.
    # The pattern is written so that grep's own command line (seen by the watcher) does not hold the canary.
    pattern = f"{CANARY[:4]}[{CANARY[4]}]{CANARY[5:]}"
    code, output = notebook.exec_run(["sh", "-c", "cat /proc/[0-9]*/environ; env; "
                                      f"grep -rlE '{pattern}|test-sif[u]' /opt /etc /run /home /root /tmp "
                                      "/notebooks; true"])
    assert not contains_canary(output), output[-500:]
    assert b"/opt/sifu/app.py" in output  # grep did read the files


def test_nothing_devstack_printed_holds_the_token(sifu):
    for args in (("config",), ("config", "--format", "json"), ("status", "--json"), ("logs", "--tail", "all")):
        sifu.run(*args)
    assert len(sifu.outputs) >= 12
    for output in sifu.outputs:
        assert CANARY not in output and WRONG not in output, output


def test_no_file_left_behind_holds_the_token(sifu):
    started = sifu.started - 1
    # The project folder (its .env is where the user put the token), the bundled build context,
    # the temporary folders devstack and git used, the engine's own temporary folder.
    assert files_with_canary(sifu.project.dir) == [str(sifu.project.dir / ".env")]  # and nothing else
    assert files_with_canary(assets.compose_dir()) == []
    assert files_with_canary(sifu.tmpdir) == []
    for entry in set(os.listdir("/tmp")) - sifu.tmp_entries_before:
        assert files_with_canary(Path("/tmp") / entry, newer_than=started) == [], entry
    if os.access("/var/lib/docker/tmp", os.R_OK):
        assert files_with_canary(Path("/var/lib/docker/tmp")) == []
    home = Path.home()
    for name in (".git-credentials", ".config/git/credentials", ".gitconfig"):
        path = home / name
        if path.is_file():
            assert not contains_canary(path.read_bytes()), path
    assert not list((sifu.project.dir / ".devstack").rglob(".git"))
