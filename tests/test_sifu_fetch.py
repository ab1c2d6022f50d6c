"""Fetching Sifu on the host with real git from a real private git server on loopback (no engine needed)."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest
from gitserver import GitServer, SifuRepository, git
from sshserver import SshServer

from devstack.errors import ConfigError, FetchError
from devstack.settings import load_settings
from devstack.sifu import GitTimeouts, fetch_sifu_source

TOKEN = "ghp_fetchcanary" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gitserver")
    repo = SifuRepository.create(root, "sifu")
    served = GitServer(root / "served", TOKEN).start()
    served.repo = repo
    yield served
    served.stop()


@pytest.fixture
def home(tmp_path):
    """A HOME of the test's own: what git reads and might write there is checked, the user's is untouched."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def settings_for(project, **values):
    return load_settings(project, environ=values)


def environ_with(home):
    return {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def test_fetch_exports_the_commit_without_git_and_reuses_it(server, tmp_path, home):
    project = tmp_path / "project"
    project.mkdir()
    settings = settings_for(project, SIFU_REPO=server.url("sifu"), DEPLOYMENT_TOKEN=TOKEN)
    first = fetch_sifu_source(settings, environ=environ_with(home))
    head = git("rev-parse", "HEAD", cwd=server.repo.workdir)
    assert first.fetched and first.commit == head and first.folder == project / ".devstack" / "sifu" / head
    assert sorted(p.name for p in first.folder.iterdir()) == ["README.md", "app.py"]
    assert "test-sifu" in (first.folder / "app.py").read_text()
    again = fetch_sifu_source(settings, environ=environ_with(home))
    assert not again.fetched and again.folder == first.folder
    # Nothing but the exported commit (and which ref gave it, for offline runs) is left: no work folder, no .git.
    assert sorted(p.name for p in (project / ".devstack" / "sifu").iterdir()) == [head, "last-resolved.json"]


def test_a_ref_that_moved_upstream_gives_the_new_commit_and_drops_the_old(server, tmp_path, home):
    project = tmp_path / "project"
    project.mkdir()
    settings = settings_for(project, SIFU_REPO=server.url("sifu"), DEPLOYMENT_TOKEN=TOKEN, SIFU_REF="main")
    before = fetch_sifu_source(settings, environ=environ_with(home))
    moved = server.repo.commit_version(uuid.uuid4().hex[:6])
    after = fetch_sifu_source(settings, environ=environ_with(home))
    assert after.fetched and after.commit == moved != before.commit
    assert not before.folder.exists()


def test_tags_and_commits_not_at_a_tip(server, tmp_path, home):
    project = tmp_path / "project"
    project.mkdir()
    old = git("rev-parse", "HEAD", cwd=server.repo.workdir)
    server.repo.tag("v-" + old[:6])
    server.repo.commit_version("after-" + old[:6])
    for ref in ("v-" + old[:6], old, old[:8]):
        source = fetch_sifu_source(settings_for(project, SIFU_REPO=server.url("sifu"), DEPLOYMENT_TOKEN=TOKEN,
                                                SIFU_REF=ref), environ=environ_with(home))
        assert source.commit == old, ref
    with pytest.raises(ConfigError, match="SIFU_REF='nope'"):
        fetch_sifu_source(settings_for(project, SIFU_REPO=server.url("sifu"), DEPLOYMENT_TOKEN=TOKEN,
                                       SIFU_REF="nope"), environ=environ_with(home))


@pytest.mark.parametrize("token, repo, expected", [
    ("ghp_wrong" + "x" * 20, "sifu", "authentication failed with DEPLOYMENT_TOKEN"),
    ("", "sifu", "set DEPLOYMENT_TOKEN"),
    (TOKEN, "no-such-repo", "repository not found"),
])
def test_refusals_name_sifu_repo_and_what_to_do(server, tmp_path, home, token, repo, expected):
    project = tmp_path / "project"
    project.mkdir()
    values = {"SIFU_REPO": server.url(repo)}
    if token:
        values["DEPLOYMENT_TOKEN"] = token
    with pytest.raises(FetchError) as error:
        fetch_sifu_source(settings_for(project, **values), environ=environ_with(home))
    message = str(error.value)
    assert message.startswith(f"SIFU_REPO={server.url(repo)}: ") and expected in message
    assert (token or TOKEN) not in message and "\n" not in message
    assert not any((project / ".devstack" / "sifu").iterdir())  # nothing half-fetched is left


def test_a_users_own_credential_helper_is_enough(server, tmp_path, home):
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    (home / ".git-credentials").write_text(f"http://someone:{TOKEN}@127.0.0.1:{server.port}\n")
    project = tmp_path / "project"
    project.mkdir()
    source = fetch_sifu_source(settings_for(project, SIFU_REPO=server.url("sifu")), environ=environ_with(home))
    assert (source.folder / "app.py").is_file()


def test_the_users_credential_store_never_learns_the_token(server, tmp_path, home):
    """With a `store` helper configured, a plain `git clone` would write the token to ~/.git-credentials."""
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    project = tmp_path / "project"
    project.mkdir()
    fetch_sifu_source(settings_for(project, SIFU_REPO=server.url("sifu"), DEPLOYMENT_TOKEN=TOKEN),
                      environ=environ_with(home))
    for path in home.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def test_a_host_that_never_answers_is_an_error_after_a_bounded_time(tmp_path, home):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does), never says a word
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    project = tmp_path / "project"
    project.mkdir()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/sifu.git"
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            fetch_sifu_source(settings_for(project, SIFU_REPO=url, DEPLOYMENT_TOKEN=TOKEN), environ=environ_with(home),
                              timeouts=GitTimeouts(query=8, fetch=8, low_speed_time=2))
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the test looks at it
            outcome.append(exc)

    # The fetch ends by itself, with an error: git's bounds apply. The join's bound only stops a hung test.
    fetcher = threading.Thread(target=fetch, daemon=True)
    try:
        fetcher.start()
        fetcher.join(timeout=120)
        assert not fetcher.is_alive(), "the fetch from a host that never answers did not end"
    finally:
        silent.close()
    (error,) = outcome
    assert isinstance(error, FetchError), error
    assert str(error).startswith(f"SIFU_REPO={url}: ") and error.category in ("unreachable", "timeout")


def test_offline_the_last_commit_resolved_for_the_same_ref_is_used(tmp_path, home):
    root = tmp_path / "git"
    repo = SifuRepository.create(root, "sifu")
    own = GitServer(root / "served", TOKEN).start()
    url = own.url("sifu")
    project = tmp_path / "project"
    project.mkdir()
    settings = settings_for(project, SIFU_REPO=url, DEPLOYMENT_TOKEN=TOKEN)
    online = fetch_sifu_source(settings, environ=environ_with(home))
    own.stop()  # the laptop goes offline: connections to the host are refused
    offline = fetch_sifu_source(settings, environ=environ_with(home))
    assert (offline.commit, offline.folder, offline.fetched) == (online.commit, online.folder, False)
    assert offline.offline.startswith(f"SIFU_REPO={url}: cannot reach") and TOKEN not in offline.offline
    assert online.commit == git("rev-parse", "HEAD", cwd=repo.workdir)
    # Another SIFU_REF was never resolved: nothing to fall back on, the error stands.
    with pytest.raises(FetchError) as error:
        fetch_sifu_source(settings_for(project, SIFU_REPO=url, SIFU_REF="v2", DEPLOYMENT_TOKEN=TOKEN),
                          environ=environ_with(home))
    assert error.value.category == "unreachable"


def test_missing_git_says_what_to_install(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(FetchError, match="install git"):
        fetch_sifu_source(settings_for(project, SIFU_REPO="https://github.com/o/r.git"),
                          environ={"PATH": str(tmp_path)})


# -- SSH: the user's own key, no token ---------------------------------------------------------


@pytest.fixture(scope="module")
def ssh(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshgit")
    repo = SifuRepository.create(root, "sifu")
    server = SshServer(root / "sshd").start()
    server.repo = repo
    yield server
    server.stop()


def ssh_environ(home, ssh_command: str) -> dict[str, str]:
    return {**environ_with(home), "GIT_SSH_COMMAND": ssh_command}


@pytest.mark.parametrize("form", ["ssh-url", "scp-like"])
def test_an_ssh_url_is_fetched_with_the_users_own_key_and_no_token(ssh, tmp_path, home, form):
    url = ssh.url(ssh.repo.bare) if form == "ssh-url" else f"{ssh.user}@127.0.0.1:{ssh.repo.bare}"
    project = tmp_path / "project"
    project.mkdir()
    source = fetch_sifu_source(settings_for(project, SIFU_REPO=url), environ=ssh_environ(home, ssh.ssh_command()))
    assert source.fetched and source.commit == git("rev-parse", "HEAD", cwd=ssh.repo.workdir)
    assert "test-sifu" in (source.folder / "app.py").read_text()


def test_an_ssh_host_not_in_known_hosts_says_how_to_accept_it(ssh, tmp_path, home):
    project = tmp_path / "project"
    project.mkdir()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(FetchError) as error:
        fetch_sifu_source(settings_for(project, SIFU_REPO=ssh.url(ssh.repo.bare), DEPLOYMENT_TOKEN=TOKEN),
                          environ=ssh_environ(home, ssh.ssh_command(known_hosts=empty)))
    assert error.value.category == "host-key"
    assert "not in your known_hosts" in str(error.value) and "ssh -T 127.0.0.1" in str(error.value)
    assert TOKEN not in str(error.value)


def test_an_ssh_key_the_server_refuses_is_an_authentication_failure(ssh, tmp_path, home):
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(FetchError) as error:
        fetch_sifu_source(settings_for(project, SIFU_REPO=ssh.url(ssh.repo.bare)),
                          environ=ssh_environ(home, ssh.ssh_command(key=ssh.stranger_key)))
    assert error.value.category == "auth"
    assert str(error.value).startswith(f"SIFU_REPO=ssh://127.0.0.1:{ssh.port}{ssh.repo.bare}: authentication failed")
    assert "refused your SSH key" in str(error.value)
