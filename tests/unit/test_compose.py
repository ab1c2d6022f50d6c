"""compose/docker-compose.yml is devstack's own stack description, kept equal by regenerating it; the export
of N instances behind the load balancer, and of the coupled database, with no secret in the file."""

import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from devstack.balancer.render import render_haproxy_config
from devstack.compose import (COMPOSE_FILE, PROXY_FOLDER, compose_dict, compose_env_files, compose_files, compose_yaml,
                              neutral_spec, write_compose)
from devstack.errors import ConfigError
from devstack.settings import load_settings
from devstack.spec import LB_CONFIG_DIR, load_stack
from devstack.spec.rds import READY_SCRIPT

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPOSITORY / "compose"
REGENERATE = "run `python -m devstack.compose compose/` and commit the result"


def test_committed_compose_file_equals_the_stack_description():
    spec = neutral_spec(REPOSITORY)
    assert (COMPOSE_DIR / COMPOSE_FILE).read_text() == compose_yaml(spec, COMPOSE_DIR), REGENERATE


def test_committed_proxy_tree_equals_the_render():
    expected = compose_files(neutral_spec(REPOSITORY))
    root = COMPOSE_DIR / PROXY_FOLDER
    committed = {f"{PROXY_FOLDER}/{p.relative_to(root).as_posix()}": p.read_text() for p in root.rglob("*") if p.is_file()}
    assert committed == expected, REGENERATE


def test_compose_file_mirrors_the_services():
    spec = neutral_spec(REPOSITORY)
    data = yaml.safe_load((COMPOSE_DIR / COMPOSE_FILE).read_text())
    assert set(data["services"]) == {"base", "notebook", "proxy"} and "volumes" not in data
    notebook, proxy = data["services"]["notebook"], data["services"]["proxy"]
    assert notebook["build"]["context"] == "./notebook" and data["services"]["base"]["build"]["context"] == "./base"
    assert "../notebooks:/notebooks" in notebook["volumes"]
    assert proxy["ports"] == ["127.0.0.1:3334:3334", "127.0.0.1:3335:3335"]
    assert notebook["environment"]["NB_UID"] == "${NB_UID:-1000}"
    assert dict(spec.service("notebook").environment).keys() == notebook["environment"].keys()
    assert "env_file" not in notebook and "depends_on" not in notebook and compose_env_files(spec) == {}
    upstreams = (COMPOSE_DIR / PROXY_FOLDER / "conf.d" / "upstreams.conf").read_text()
    assert "server notebook:3335;" in upstreams and "keepalive 256;" in upstreams


def test_host_mode_compose_uses_the_host_network(tmp_path):
    spec = load_stack(load_settings(tmp_path, environ={"NETWORK_MODE": "host", "EXTRA_PORTS": "8888:8888"}),
                      (1000, 1000))
    data = compose_dict(spec, tmp_path)
    assert data["services"]["notebook"]["network_mode"] == "host"
    assert "ports" not in data["services"]["proxy"] and "ports" not in data["services"]["notebook"]


def test_extra_ports_are_published_from_the_notebook(tmp_path):
    spec = load_stack(load_settings(tmp_path, environ={"EXTRA_PORTS": "18888:8888"}), (1000, 1000))
    assert compose_dict(spec, tmp_path)["services"]["notebook"]["ports"] == ["127.0.0.1:18888:8888"]


def test_dollar_signs_are_escaped_for_compose(tmp_path):
    (tmp_path / ".env").write_text("PRICE='5$'\n")
    spec = load_stack(load_settings(tmp_path, environ={}), (1000, 1000))
    assert compose_dict(spec, tmp_path)["services"]["notebook"]["environment"]["PRICE"] == "5$$"


# -- N instances behind the load balancer ------------------------------------------------------


def stack(folder: Path, overrides: str = "", **environ: str):
    if overrides:
        (folder / "overrides.yml").write_text(overrides)
    return load_stack(load_settings(folder, environ=environ), (1000, 1000))


def test_n_instances_are_numbered_services_sharing_the_notebooks_behind_the_load_balancer(project):
    spec = stack(project, INSTANCES="2", EXTRA_PORTS="18888:8888")
    services = compose_dict(spec, project)["services"]
    assert list(services) == ["base", "notebook-1", "proxy-1", "notebook-2", "proxy-2", "lb"]
    first, second = services["notebook-1"], services["notebook-2"]
    assert "./notebooks:/notebooks" in first["volumes"] and first["volumes"] == second["volumes"]
    assert first["build"] == second["build"] and first["environment"] == second["environment"]
    # A host port is published once: EXTRA_PORTS from the first notebook, Sifu's and Jupyter's from the LB.
    assert first["ports"] == ["127.0.0.1:18888:8888"] and "ports" not in second
    assert "ports" not in services["proxy-1"] and "ports" not in services["proxy-2"]
    assert services["proxy-2"]["volumes"] == ["./proxy-2:/etc/devstack-proxy/current:ro"]
    assert services["proxy-2"]["depends_on"] == ["notebook-2"]
    lb = services["lb"]
    assert lb["image"] == "haproxy:2.8" and lb["stop_signal"] == "SIGUSR1"
    assert lb["command"] == ["haproxy", "-f", f"{LB_CONFIG_DIR}/haproxy.cfg"]
    assert lb["volumes"] == [f"./lb:{LB_CONFIG_DIR}:ro"] and lb["depends_on"] == ["proxy-1", "proxy-2"]
    # As devstack publishes them: the listeners on BIND_ADDRESS, statistics and runtime API on loopback.
    assert lb["ports"] == ["127.0.0.1:43334:3334", "127.0.0.1:43335:3335", "127.0.0.1::8404", "127.0.0.1::9999"]


def test_the_load_balancer_publishes_on_bind_address(project):
    spec = stack(project, INSTANCES="3", BIND_ADDRESS="0.0.0.0")
    services = compose_dict(spec, project)["services"]
    assert [name for name in services if name.startswith("proxy")] == ["proxy-1", "proxy-2", "proxy-3"]
    assert services["lb"]["ports"][:2] == ["0.0.0.0:43334:3334", "0.0.0.0:43335:3335"]


def test_each_proxy_names_its_notebook_and_the_load_balancer_the_proxies_services(project):
    spec = stack(project, INSTANCES="2")
    files = compose_files(spec)
    assert {rel.split("/")[0] for rel in files} == {"proxy-1", "proxy-2", "lb"}
    assert "server notebook-1:3335;" in files["proxy-1/conf.d/upstreams.conf"]
    assert "server notebook-2:3335;" in files["proxy-2/conf.d/upstreams.conf"]
    haproxy = files["lb/haproxy.cfg"]
    assert "server i1 proxy-1:3334 check port 3334" in haproxy and "server i2 proxy-2:3335 track sifu/i2" in haproxy
    # The same render as devstack's, only the backends' names differ (the services, not devstack's containers).
    balancer = spec.balancer
    renamed = replace(balancer, backends=tuple(replace(b, host=f"proxy-{b.instance}") for b in balancer.backends))
    assert haproxy == render_haproxy_config(renamed) != render_haproxy_config(balancer)


def test_write_compose_writes_each_mounted_folder_beside_the_file(project, tmp_path):
    spec = stack(project, INSTANCES="2")
    written = {p.relative_to(tmp_path / "out").as_posix() for p in write_compose(spec, tmp_path / "out")}
    assert {"docker-compose.yml", "lb/haproxy.cfg", "proxy-1/nginx.conf", "proxy-2/nginx.conf"} <= written
    document = yaml.safe_load((tmp_path / "out" / COMPOSE_FILE).read_text())
    for service in document["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.startswith("./notebooks"):
                assert (tmp_path / "out" / source).is_dir(), volume


# -- the coupled database ------------------------------------------------------------------------

RDS = "RDS_DB_NAME: app\nRDS_USERNAME: appuser\n"


def test_the_database_is_a_service_the_notebooks_wait_for(project):
    spec = stack(project, RDS, INSTANCES="2")
    document = compose_dict(spec, project)
    services = document["services"]
    assert list(services)[-1] == "rds"
    rds = services["rds"]
    database = spec.database
    assert rds["image"] == "mysql:8.0" and rds["command"] == ["--port=3306", "--loose-mysqlx=OFF"]
    assert rds["environment"] == {"MYSQL_DATABASE": "app", "MYSQL_USER": "appuser"}
    assert rds["env_file"] == ["./.devstack/compose/rds.env"]
    # Its own named volume: devstack refuses a volume of its name that it did not create.
    assert rds["volumes"] == ["rds-data:/var/lib/mysql"]
    assert document["volumes"] == {"rds-data": {"name": f"{database.volume}-compose"}}
    # The notebooks' RDS_HOSTNAME is devstack's name for it: an alias on compose's network.
    assert rds["networks"] == {"default": {"aliases": [database.hostname]}}
    assert services["notebook-1"]["environment"]["RDS_HOSTNAME"] == database.hostname
    for name in ("notebook-1", "notebook-2"):
        assert services[name]["depends_on"] == {"rds": {"condition": "service_healthy"}}
        assert services[name]["env_file"] == ["./.devstack/compose/notebook.env"]
    # devstack's readiness check, as compose's health check, with compose's `$` escaped.
    test = rds["healthcheck"]["test"]
    assert test[:3] == ["CMD", "sh", "-c"] and test[3].replace("$$", "$") == READY_SCRIPT
    assert test[4:] == [str(database.port), "appuser", "app"] and list(database.ready_command[3:]) == test[4:]
    assert rds["healthcheck"]["start_period"] == "180s"


def test_one_instance_with_a_database_keeps_its_names(project):
    services = compose_dict(stack(project, RDS, RDS_READY_TIMEOUT="30"), project)["services"]
    assert list(services) == ["base", "notebook", "proxy", "rds"]
    assert services["rds"]["healthcheck"]["start_period"] == "30s"


def test_on_the_host_network_the_database_shares_it_too(project):
    services = compose_dict(stack(project, RDS, NETWORK_MODE="host"), project)["services"]
    assert services["rds"]["network_mode"] == "host" and "networks" not in services["rds"]
    assert "--bind-address=127.0.0.1" in services["rds"]["command"]


def test_no_secret_is_written_into_the_compose_file(project, tmp_path):
    (project / ".env").write_text((project / ".env").read_text() + "DEPLOYMENT_TOKEN=ghp_deploymenttoken123\n"
                                   "JUPYTER_TOKEN=jupytertoken456\nAPI_SECRET_KEY=apisecret789\n")
    spec = stack(project, RDS + "RDS_PASSWORD: givenpassword42\n", INSTANCES="2")
    written = write_compose(spec, tmp_path / "out")
    text = (tmp_path / "out" / COMPOSE_FILE).read_text()
    for secret in ["ghp_deploymenttoken123", "jupytertoken456", "apisecret789", *spec.secret_values()]:
        assert secret not in text
    env_files = compose_env_files(spec)
    notebook_env = project / ".devstack" / "compose" / "notebook.env"
    rds_env = project / ".devstack" / "compose" / "rds.env"
    assert set(env_files) == {notebook_env, rds_env} and {notebook_env, rds_env} <= set(written)
    assert "RDS_PASSWORD=givenpassword42\n" in notebook_env.read_text()
    assert "API_SECRET_KEY=apisecret789\n" in notebook_env.read_text()
    assert "MYSQL_PASSWORD=givenpassword42\n" in rds_env.read_text()
    assert f"MYSQL_ROOT_PASSWORD={spec.database.root_password}\n" in rds_env.read_text()
    # The tokens are the secrets folder's, mounted as devstack runs it, never a variable anywhere.
    for path in [*written]:
        assert "ghp_deploymenttoken123" not in path.read_text() and "jupytertoken456" not in path.read_text()
    for path in env_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(notebook_env.parent.stat().st_mode) == 0o700
    # Who reads them: the notebooks and the database, each its own (the root password is the database's only).
    assert "MYSQL_ROOT_PASSWORD" not in notebook_env.read_text()


def test_a_secret_compose_would_expand_is_quoted_and_one_it_cannot_carry_is_refused(project):
    spec = stack(project, RDS + "RDS_PASSWORD: 'pa$$word #1'\n")
    assert "RDS_PASSWORD='pa$$word #1'\n" in compose_env_files(spec)[project / ".devstack/compose/notebook.env"]
    spec = stack(project, RDS + "RDS_PASSWORD: \"it's\"\n")
    with pytest.raises(ConfigError, match=r"overrides\.yml.*RDS_PASSWORD holds a single quote"):
        compose_yaml(spec, project)


def test_the_printed_export_names_the_env_files_in_its_header(project):
    text = compose_yaml(stack(project, RDS), project)
    assert "# ./.devstack/compose/notebook.env, ./.devstack/compose/rds.env" in text
