"""The compose export through the CLI, as a user runs it: N instances behind the load balancer with the
coupled database. haproxy itself checks the load balancer's configuration the export wrote; `docker
compose` (when its plugin is installed) checks the whole file. Nothing is started."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from devstack.docker.engine import Engine
from devstack.spec import LABEL_PROJECT, LB_CONFIG_DIR, LB_CONFIG_FILE, MountSpec

OVERRIDES = "RDS_DB_NAME: app\nRDS_PASSWORD: composepassword42\nAPI_SECRET_KEY: apisecret789\n"
TOKEN = "ghp_composedeploymenttoken1"


@pytest.fixture
def exported(engineless_project, tmp_path):
    """`devstack config --format compose --output DIR` for two instances and a database."""
    project = engineless_project
    (project.dir / "overrides.yml").write_text(OVERRIDES)
    project.write_env(INSTANCES="2", DEPLOYMENT_TOKEN=TOKEN)
    out = tmp_path / "out"
    result = project.run("config", "--format", "compose", "--output", str(out))
    return project, out, result


def test_the_cli_writes_the_file_what_it_mounts_and_the_secrets_apart(exported):
    project, out, result = exported
    listed = result.stdout.split()
    env_dir = project.dir / ".devstack" / "compose"
    assert str(out / "docker-compose.yml") in listed and str(out / "lb" / LB_CONFIG_FILE) in listed
    assert str(env_dir / "notebook.env") in listed and str(env_dir / "rds.env") in listed
    text = (out / "docker-compose.yml").read_text()
    assert {"notebook-1", "notebook-2", "proxy-1", "proxy-2", "lb", "rds"} <= set(yaml.safe_load(text)["services"])
    for secret in (TOKEN, "composepassword42", "apisecret789"):
        assert secret not in text and secret not in result.stdout + result.stderr
    assert "RDS_PASSWORD=composepassword42" in (env_dir / "notebook.env").read_text()


def test_the_printed_export_writes_the_env_files_it_names(engineless_project):
    project = engineless_project
    (project.dir / "overrides.yml").write_text(OVERRIDES)
    result = project.run("config", "--format", "compose")
    env_file = project.dir / ".devstack" / "compose" / "rds.env"
    assert yaml.safe_load(result.stdout)["services"]["rds"]["env_file"] == ["./.devstack/compose/rds.env"]
    assert env_file.is_file() and str(env_file) in result.stderr
    assert "composepassword42" not in result.stdout + result.stderr


def test_haproxy_accepts_the_load_balancer_configuration_of_the_export(exported, docker_client):
    project, out, _ = exported
    code, output = Engine(docker_client).run_once(
        project.settings["LB_IMAGE"], ["haproxy"], ["-c", "-f", f"{LB_CONFIG_DIR}/{LB_CONFIG_FILE}"],
        (MountSpec(out / "lb", LB_CONFIG_DIR, read_only=True),), {LABEL_PROJECT: project.name})
    assert code == 0, output


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="the `docker compose` plugin is not installed (the Debian "
                    "docker.io client has none): the export is checked here without it")
def test_docker_compose_accepts_the_export(exported):
    _, out, _ = exported
    checked = subprocess.run(["docker", "compose", "-f", str(out / "docker-compose.yml"), "config", "--quiet"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
