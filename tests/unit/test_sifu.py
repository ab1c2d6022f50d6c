"""Sifu's source: ref resolution, URL checks, git failure classification, redaction, token plumbing."""

from pathlib import Path

import pytest

from devstack.docker.context import file_holding_secret
from devstack.errors import ConfigError
from devstack.redact import MASK, Redactor
from devstack.settings import load_settings
from devstack.sifu import (
    CREDENTIAL_HELPER,
    TOKEN_VARIABLE,
    Git,
    GitResult,
    classify_git_failure,
    explain_git_failure,
    last_git_line,
    parse_ls_remote,
    parse_repo_url,
    resolve_ref,
    with_sifu_source,
)
from devstack.spec import ImageSpec, load_stack

A = "a" * 40
B = "b" * 40
C = "c" * 40
T = "7" * 40  # an annotated tag object

LISTING = parse_ls_remote(
    f"ref: refs/heads/main\tHEAD\n{A}\tHEAD\n{A}\trefs/heads/main\n{B}\trefs/heads/feature/x\n"
    f"{T}\trefs/tags/v1\n{C}\trefs/tags/v1^{{}}\n{B}\trefs/tags/light\n"
)


def test_ls_remote_output_is_parsed_with_the_default_branch():
    assert LISTING.head_target == "refs/heads/main"
    assert LISTING.refs["HEAD"] == A and LISTING.refs["refs/tags/v1^{}"] == C


@pytest.mark.parametrize("ref, want, commit, label", [
    ("", "refs/heads/main", A, "main (default branch)"),
    ("HEAD", "refs/heads/main", A, "main (default branch)"),
    ("main", "refs/heads/main", A, "main"),
    ("feature/x", "refs/heads/feature/x", B, "feature/x"),
    ("v1", "refs/tags/v1", C, "tag v1"),  # the commit an annotated tag points at, not the tag object
    ("light", "refs/tags/light", B, "tag light"),
    ("refs/tags/v1", "refs/tags/v1", C, "tag refs/tags/v1"),
    (B[:7], B, B, "commit bbbbbbb"),  # an abbreviated tip is made whole
    ("1234567", "1234567", "", "commit 1234567"),  # not a tip: fetched and looked up
    ("d" * 40, "d" * 40, "d" * 40, "commit dddddddddddd"),
])
def test_refs_resolve_like_git_clone_branch(ref, want, commit, label):
    resolved = resolve_ref(LISTING, ref)
    assert (resolved.want, resolved.commit, resolved.label) == (want, commit, label)


def test_a_branch_wins_over_a_tag_of_the_same_name_and_unknown_refs_are_none():
    listing = parse_ls_remote(f"{A}\trefs/heads/same\n{B}\trefs/tags/same\n")
    assert resolve_ref(listing, "same").commit == A
    assert resolve_ref(LISTING, "no-such-branch") is None
    assert resolve_ref(parse_ls_remote(""), "") is None  # an empty repository has no HEAD


# What git (and GitHub behind it) prints, verbatim.
@pytest.mark.parametrize("stderr, category", [
    ("fatal: could not read Username for 'https://github.com': terminal prompts disabled", "credentials"),
    ("fatal: could not read Username for 'https://github.com': No such device or address", "credentials"),
    ("remote: Invalid username or password.\nfatal: Authentication failed for 'https://github.com/o/r.git/'",
     "auth"),
    ("remote: Support for password authentication was removed.\nfatal: Authentication failed for 'x'", "auth"),
    ("git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.", "auth"),
    ("remote: Repository not found.\nfatal: repository 'https://github.com/o/nope.git/' not found", "not-found"),
    ("Host key verification failed.\nfatal: Could not read from remote repository.", "host-key"),
    ("fatal: unable to access 'https://nohost.invalid/r.git/': Could not resolve host: nohost.invalid",
     "unreachable"),
    ("fatal: unable to access 'http://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: "
     "Couldn't connect to server", "unreachable"),
    ("error: RPC failed; curl 28 Operation too slow. Less than 1000 bytes/sec transferred the last 20 seconds",
     "unreachable"),
    ("fatal: unable to access 'https://h/r.git/': SSL certificate problem: self-signed certificate", "tls"),
    ("fatal: remote error: upload-pack: not our ref 1234", "other"),
])
def test_git_failures_are_classified_from_what_git_prints(stderr, category):
    assert classify_git_failure(stderr) == category


def test_every_explanation_names_sifu_repo_in_one_line():
    repo = parse_repo_url("https://github.com/o/r.git", Path("."))
    for category in ("credentials", "auth", "not-found", "host-key", "unreachable", "tls", "other"):
        message = explain_git_failure(category, "detail", repo, "environment")
        assert message.startswith("SIFU_REPO=https://github.com/o/r.git: ") and "\n" not in message
    assert "authentication failed" in explain_git_failure("auth", "", repo, ".env:3")
    assert "DEPLOYMENT_TOKEN (from .env:3)" in explain_git_failure("auth", "", repo, ".env:3")
    assert "repository not found" in explain_git_failure("not-found", "", repo, "environment")
    assert "set DEPLOYMENT_TOKEN" in explain_git_failure("credentials", "", repo, "")


def test_a_failure_is_redacted_even_when_git_echoes_the_token():
    token = "ghp_canary0123456789abcdefghij"
    repo = parse_repo_url("https://github.com/o/r.git", Path("."))
    git = Git(repo, token, Redactor([token]), "environment", environ={"PATH": "/usr/bin"})
    error = git.failure(GitResult(128, "", f"fatal: unable to access 'https://x-access-token:{token}@github.com/o/r.git/'"
                                             f": Could not resolve host: github.com\n{token}\n"))
    assert token not in str(error) and error.category == "unreachable"
    assert last_git_line(f"warning: x\nfatal: boom {MASK}\n") == f"boom {MASK}"


def test_the_token_is_only_in_the_environment_of_git():
    token = "ghp_canary0123456789abcdefghij"
    repo = parse_repo_url("https://github.com/o/r.git", Path("."))
    git = Git(repo, token, Redactor([token]), "environment",
              environ={"PATH": "/usr/bin", "GIT_TRACE_CURL": "/tmp/trace", "LANG": "de_DE.UTF-8",
                       "GIT_DIR": "/home/me/project/.git"})
    assert token not in " ".join(git.config)
    assert git.env[TOKEN_VARIABLE] == token and "GIT_TRACE_CURL" not in git.env and "GIT_DIR" not in git.env
    assert git.env["GIT_TERMINAL_PROMPT"] == "0" and git.env["LC_ALL"] == "C"
    # The user's helpers are reset (none may store the token); ours answers for this host only.
    assert git.config[-4:] == ["-c", "credential.helper=", "-c", f"credential.https://github.com.helper={CREDENTIAL_HELPER}"]
    assert "printf" in CREDENTIAL_HELPER and f"${TOKEN_VARIABLE}" in CREDENTIAL_HELPER
    # Without a token the user's git is left as it is.
    plain = Git(repo, "", Redactor(), environ={"PATH": "/usr/bin"})
    assert TOKEN_VARIABLE not in plain.env and not any("credential" in c for c in plain.config)


@pytest.mark.parametrize("value, kind, shown", [
    ("https://github.com/o/sifu.git", "http", "https://github.com/o/sifu.git"),
    ("https://deploy@github.com/o/sifu.git", "http", "https://github.com/o/sifu.git"),
    ("http://127.0.0.1:8080/sifu.git", "http", "http://127.0.0.1:8080/sifu.git"),
    ("git@github.com:o/sifu.git", "ssh", "github.com:o/sifu.git"),
    ("ssh://git@github.com/o/sifu.git", "ssh", "ssh://github.com/o/sifu.git"),
    ("/srv/git/sifu.git", "file", "/srv/git/sifu.git"),
    ("file:///srv/git/sifu.git", "file", "file:///srv/git/sifu.git"),
])
def test_repo_urls_devstack_fetches(value, kind, shown):
    repo = parse_repo_url(value, Path("/project"))
    assert (repo.kind, repo.shown) == (kind, shown)


def test_the_credential_helper_is_scoped_to_the_repositorys_origin():
    assert parse_repo_url("https://deploy@GitHub.com:8443/o/r.git", Path(".")).origin == "https://github.com:8443"
    assert parse_repo_url("http://[::1]:9000/r.git", Path(".")).origin == "http://[::1]:9000"


def test_a_relative_path_is_the_project_folders():
    assert parse_repo_url("../sifu", Path("/work/project")).url == "/work/sifu"


@pytest.mark.parametrize("value", [
    "https://x-access-token:ghp_secret@github.com/o/r.git",
    "https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r.git",
    "https://github_pat_11ABCDEFG0123456789_abcdefghijklmnop@github.com/o/r.git",
    "--upload-pack=touch /tmp/x",
    "ext::sh -c touch% /tmp/pwned",
    "ftp://host/r.git",
    "https:///nohost",
])
def test_urls_with_credentials_or_odd_schemes_are_refused(value):
    with pytest.raises(ConfigError) as error:
        parse_repo_url(value, Path("."), ".env:4")
    assert str(error.value).startswith("SIFU_REPO (.env:4): ")
    assert "ghp_" not in str(error.value) and "secret" not in str(error.value)


def test_sifu_source_replaces_the_contexts_sifu_folder(tmp_path):
    image = ImageSpec("notebook", "t", tmp_path)
    replaced = with_sifu_source(with_sifu_source(image, tmp_path / "one"), tmp_path / "two")
    assert replaced.overlays == (("sifu", tmp_path / "two"),)


def test_the_deployment_token_file_is_read_when_the_setting_is_empty(tmp_path):
    (tmp_path / ".deployment_token").write_text("ghp_fromfile123456\n")
    (tmp_path / ".env").write_text("DEPLOYMENT_TOKEN=\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.deployment_token.get_secret_value() == "ghp_fromfile123456"
    assert settings.sources["DEPLOYMENT_TOKEN"] == str(tmp_path / ".deployment_token")
    assert "ghp_fromfile123456" in settings.secret_values()  # so every printed line is redacted of it
    assert "ghp_fromfile123456" not in str(settings.redacted())
    # A token set anywhere else wins over the file.
    assert load_settings(tmp_path, environ={"DEPLOYMENT_TOKEN": "ghp_env1234"}).deployment_token.get_secret_value() \
        == "ghp_env1234"


def test_sifu_command_reaches_the_container_and_an_empty_one_keeps_the_images(tmp_path):
    (tmp_path / ".env").write_text("SIFU_COMMAND=\nOTHER=1\n")
    environment = dict(load_stack(load_settings(tmp_path, environ={}), (1000, 1000)).service("notebook").environment)
    assert "SIFU_COMMAND" not in environment and environment["OTHER"] == "1"
    settings = load_settings(tmp_path, environ={"SIFU_COMMAND": "node /opt/sifu/server.js"})
    environment = dict(load_stack(settings, (1000, 1000)).service("notebook").environment)
    assert environment["SIFU_COMMAND"] == "node /opt/sifu/server.js"


def test_a_context_file_holding_a_secret_is_found(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".deployment_token").write_text("ghp_canary0123456789\n")
    image = ImageSpec("notebook", "t", tmp_path)
    found = file_holding_secret(image, {"DEPLOYMENT_TOKEN": "ghp_canary0123456789", "JUPYTER_TOKEN": ""})
    assert found is not None and found[0].arcname == ".deployment_token" and found[1] == "DEPLOYMENT_TOKEN"
    (tmp_path / ".dockerignore").write_text(".deployment_token\n")
    assert file_holding_secret(image, {"DEPLOYMENT_TOKEN": "ghp_canary0123456789"}) is None
