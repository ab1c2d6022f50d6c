"""doctor's checks that need no engine, and its renderers."""

import os
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from devstack.doctor import FAIL, INFO, PASS, WARN, CheckResult, Doctor, check_buildkit, check_docker_envs, \
    check_notebooks_dir, check_proxy_lint, check_token, failed, run_checks
from devstack.errors import EngineUnavailable
from devstack.settings import load_settings
from devstack.ui.view import doctor_lines, doctor_to_json, render_doctor


def no_engine():
    raise EngineUnavailable("no engine")


def doctor_for(tmp_path, run=subprocess.run, uid=None, **environ):
    return Doctor(load_settings(tmp_path, environ=environ), connect=no_engine, run=run, uid=uid)


def test_token_warns_when_sifu_repo_needs_one(tmp_path):
    assert check_token(doctor_for(tmp_path))[0].status == PASS
    (result,) = check_token(doctor_for(tmp_path, SIFU_REPO="https://github.com/o/sifu.git"))
    assert result.status == WARN and ".deployment_token" in result.fix
    token = tmp_path / ".deployment_token"
    token.write_text("ghp_x\n")
    token.chmod(0o644)
    results = check_token(doctor_for(tmp_path, SIFU_REPO="https://github.com/o/sifu.git"))
    assert [r.status for r in results] == [PASS, WARN] and "chmod 600" in results[1].fix
    assert all("ghp_x" not in r.detail for r in results)


def test_notebooks_folder_missing_writable_and_owned(tmp_path):
    (missing,) = check_notebooks_dir(doctor_for(tmp_path))
    assert missing.status == PASS and "creates it" in missing.detail
    (tmp_path / "notebooks").mkdir()
    results = check_notebooks_dir(doctor_for(tmp_path))
    assert [r.status for r in results] == [PASS, PASS]


def owner_row(tmp_path, uid, **environ):
    (row,) = [r for r in check_notebooks_dir(doctor_for(tmp_path, uid=uid, **environ)) if r.check == "notebook user"]
    return row


def test_notebooks_folder_owned_by_another_uid_warns(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    if os.getuid() == 0:
        os.chown(folder, 4321, 4321)  # as root: a folder of another user; otherwise it is already ours, not root's
    owner = folder.stat().st_uid
    row = owner_row(tmp_path, uid=owner + 1)
    assert row.status == WARN and f"belongs to uid {owner}, not you ({owner + 1})" in row.detail
    assert f"chown -R {owner + 1} {folder}" in row.fix
    assert owner_row(tmp_path, uid=owner).status == PASS
    assert owner_row(tmp_path, uid=0).status == PASS  # root reads and writes whatever uid Jupyter runs as


def test_notebooks_folder_owned_by_root_warns_a_user(tmp_path):
    if os.getuid() == 0:
        (tmp_path / "notebooks").mkdir()  # root's
        environ = {}
    else:
        environ = {"NOTEBOOKS_DIR": "/"}  # a folder root owns on every Unix
    row = owner_row(tmp_path, uid=1000, **environ)
    assert row.status == WARN and "belongs to root, so Jupyter runs as root" in row.detail
    assert row.fix.startswith("sudo chown -R 1000:")


def test_proxy_lint_warns_and_does_not_fail_on_the_unloaded_hosts_file(tmp_path):
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    shutil.copytree(fixtures / "eb-al1-swapped", tmp_path, dirs_exist_ok=True)
    results = check_proxy_lint(doctor_for(tmp_path))
    assert not failed(results), results
    hosts = tmp_path / ".ebextensions/.nginx/hosts/hosts.conf"
    swapped = [r for r in results if r.detail.startswith(f"{hosts}:")]
    assert [(r.status, r.detail.split(": ")[0]) for r in swapped] == [(WARN, f"{hosts}:2"), (WARN, f"{hosts}:6")]
    assert all("not loaded" in r.detail for r in swapped)


def test_docker_envs_copy_without_a_file_in_the_context_fails(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY docker_envs /tmp/docker_envs\n")
    results = check_docker_envs(doctor_for(tmp_path, NOTEBOOK_CONTEXT=str(context)))
    assert [r.status for r in results] == [PASS, FAIL]
    assert "/tmp/docker_envs" in results[0].detail and "COPY" in results[1].detail
    assert check_docker_envs(doctor_for(tmp_path)) == []


def fake_docker(folder):
    folder.mkdir(parents=True)
    (folder / "docker").write_text("#!/bin/sh\nexit 1\n")  # never run: doctor's `run` is the fake below
    (folder / "docker").chmod(0o755)
    return str(folder / "docker")


def test_buildkit_is_informational_and_names_each_client_found(tmp_path, monkeypatch):
    # The clients are files of this test (PATH and Debian's path pointed here), never the host's.
    local = fake_docker(tmp_path / "usr-local-bin")
    debian = fake_docker(tmp_path / "usr-bin")
    monkeypatch.setenv("PATH", str(tmp_path / "usr-local-bin"))
    monkeypatch.setattr("devstack.doctor.DEBIAN_DOCKER", debian)
    buildx = set()

    def fake_run(cmd, **kwargs):
        if cmd[1:] == ["--version"]:
            out = "Docker version 28.2.2, build e6534b4" if cmd[0] == local else "Docker version 20.10.24+dfsg1, build 297e128"
            return subprocess.CompletedProcess(cmd, 0, out, "")
        return subprocess.CompletedProcess(cmd, 0 if cmd[0] in buildx else 1, "", "unknown command")

    (result,) = check_buildkit(doctor_for(tmp_path, run=fake_run))
    assert result.status == INFO and "needs no BuildKit" in result.detail
    assert f"{local} 28.2: no buildx plugin, so no BuildKit" in result.detail
    assert f"{debian} 20.10: BuildKit with DOCKER_BUILDKIT=1 (no buildx plugin)" in result.detail
    assert result.fix == ""  # Debian's client already gives BuildKit

    monkeypatch.setattr("devstack.doctor.DEBIAN_DOCKER", str(tmp_path / "absent" / "docker"))
    (result,) = check_buildkit(doctor_for(tmp_path, run=fake_run))
    assert debian not in result.detail and "docker-buildx-plugin" in result.fix
    buildx.add(local)
    (result,) = check_buildkit(doctor_for(tmp_path, run=fake_run))
    assert f"{local} 28.2: BuildKit with the buildx plugin" in result.detail and result.fix == ""

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (result,) = check_buildkit(doctor_for(tmp_path, run=fake_run))
    assert "no docker client on PATH" in result.detail


def test_a_check_that_raises_becomes_a_failed_row(tmp_path):
    def broken(doctor):
        raise EngineUnavailable("lost the engine")

    (row,) = run_checks(doctor_for(tmp_path), checks=(broken,))
    assert row.status == FAIL and row.detail == "lost the engine"


def test_renderers_show_every_check_and_the_verdict():
    results = [CheckResult("Docker Engine", PASS, "20.10"), CheckResult("port 127.0.0.1:3334", FAIL, "in use", "move it")]
    console = Console(width=200, record=True)
    console.print(render_doctor(results))
    text = console.export_text()
    assert "port 127.0.0.1:3334" in text and "move it" in text and "1 pass, 1 fail" in text
    assert doctor_to_json(results)["ok"] is False and failed(results)
    assert doctor_lines(results)[1] == "fail  port 127.0.0.1:3334: in use (fix: move it)"
