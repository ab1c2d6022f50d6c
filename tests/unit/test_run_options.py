"""The seed's run options as settings: extra published ports, no notebooks mount, the container's name."""

from pathlib import Path

import pytest

from devstack.errors import ConfigError
from devstack.settings import RESERVED_CONTAINER_PORTS, PortMapping, load_settings, parse_port_specs
from devstack.spec import JUPYTER_CONTAINER_PORT, SIFU_CONTAINER_PORT, PortSpec, load_stack


def settings_for(tmp_path: Path, env_file: str = "", publish=(), **environ):
    (tmp_path / ".env").write_text(env_file)
    return load_settings(tmp_path, environ=environ, publish=publish)


def config_error(tmp_path: Path, env_file: str = "", publish=(), **environ) -> str:
    with pytest.raises(ConfigError) as error:
        settings_for(tmp_path, env_file, publish, **environ)
    message = str(error.value)
    assert "\n" not in message
    return message


# -- EXTRA_PORTS and -p: parsing ---------------------------------------------------


def test_port_specs_parse_with_commas_and_spaces():
    assert parse_port_specs("8888:8888, 5678:5679 ,") == (PortMapping(8888, 8888), PortMapping(5678, 5679))
    assert parse_port_specs("") == ()
    assert parse_port_specs("  ") == ()


@pytest.mark.parametrize(("spec", "expected"), [
    ("8888", "'8888' is not a port mapping: write HOST:CONTAINER"),
    ("127.0.0.1:8888:8888", "BIND_ADDRESS"),
    ("88x8:8888", "host port '88x8' is not a number"),
    ("8888:", "container port '' is not a number"),
    ("-1:80", "host port '-1' is not a number"),
    ("0:80", "host port 0 is out of range"),
    ("70000:80", "host port 70000 is out of range"),
    ("80:65536", "container port 65536 is out of range"),
    ("8000-8010:8000-8010", "host port '8000-8010' is not a number"),
])
def test_bad_port_spec_names_the_port(spec, expected):
    with pytest.raises(ValueError, match=expected.replace(".", r"\.")):
        parse_port_specs(f"5678:5678,{spec}")


def test_extra_ports_come_from_env_file_and_p_flags_add_to_them(tmp_path):
    settings = settings_for(tmp_path, "EXTRA_PORTS=8888:8888,5678:5678\n", publish=["9000:9001"])
    assert [(m.host_port, m.container_port) for m in settings.extra_ports] == [(8888, 8888), (5678, 5678),
                                                                              (9000, 9001)]
    assert settings.extra_ports[0].origin == f"EXTRA_PORTS from {tmp_path / '.env'}:1"
    assert settings.extra_ports[2].origin == "-p 9000:9001"
    assert settings.sources["EXTRA_PORTS"] == f"{tmp_path / '.env'}:1 and flag -p"
    assert settings.redacted()["EXTRA_PORTS"] == "8888:8888,5678:5678,9000:9001"
    assert settings_for(tmp_path).extra_ports == ()


def test_bad_extra_ports_in_env_file_name_key_line_and_port(tmp_path):
    message = config_error(tmp_path, "A=1\nEXTRA_PORTS=8888:8888,99999:80\n")
    assert message.startswith(f"{tmp_path / '.env'}:2: EXTRA_PORTS='8888:8888,99999:80'")
    assert "host port 99999 is out of range" in message


def test_bad_p_flag_is_named(tmp_path):
    message = config_error(tmp_path, publish=["8888:x"])
    assert message.startswith("flag -p: '8888:x': container port 'x' is not a number")


def test_duplicate_host_port_names_both_origins(tmp_path):
    message = config_error(tmp_path, "EXTRA_PORTS=8888:8888\n", publish=["8888:9999"])
    assert "host port 8888 is published twice" in message
    assert f"EXTRA_PORTS from {tmp_path / '.env'}:1" in message and "-p 8888:9999" in message
    assert "twice" in config_error(tmp_path, EXTRA_PORTS="8888:8888,8888:8888")


def test_one_container_port_on_two_host_ports_is_allowed(tmp_path):
    spec = load_stack(settings_for(tmp_path, EXTRA_PORTS="8888:80,9999:80"), (1000, 1000))
    assert {(p.host_port, p.container_port) for p in spec.service("notebook").ports} == {(8888, 80), (9999, 80)}


@pytest.mark.parametrize("key", ["SIFU_PORT", "JUPYTER_PORT"])
def test_extra_port_clashing_with_the_proxy_is_named(tmp_path, key):
    taken = {"SIFU_PORT": 4334, "JUPYTER_PORT": 4335}[key]
    message = config_error(tmp_path, SIFU_PORT="4334", JUPYTER_PORT="4335", EXTRA_PORTS=f"{taken}:8888")
    assert f"host port {taken} (EXTRA_PORTS from environment) is the proxy's {key}" in message
    assert f"{key} from environment" in message


@pytest.mark.parametrize("port", [SIFU_CONTAINER_PORT, JUPYTER_CONTAINER_PORT])
def test_publishing_sifu_or_jupyter_directly_is_refused(tmp_path, port):
    # Published straight from the container, Jupyter would skip the proxy's cookie gate.
    message = config_error(tmp_path, publish=[f"9000:{port}"])
    assert f"container port {port} (-p 9000:{port})" in message


def test_reserved_container_ports_are_the_stacks():
    assert set(RESERVED_CONTAINER_PORTS) == {SIFU_CONTAINER_PORT, JUPYTER_CONTAINER_PORT}


def test_extra_ports_are_published_by_the_notebook_on_bind_address(tmp_path):
    base = settings_for(tmp_path, BIND_ADDRESS="127.0.0.2")
    with_ports = settings_for(tmp_path, BIND_ADDRESS="127.0.0.2", EXTRA_PORTS="8888:8888,5678:5679")
    notebook = load_stack(with_ports, (1000, 1000)).service("notebook")
    assert notebook.ports == (PortSpec("127.0.0.2", 8888, 8888), PortSpec("127.0.0.2", 5678, 5679))
    assert load_stack(base, (1000, 1000)).service("notebook").ports == ()
    # The proxy keeps exactly its two listeners.
    assert len(load_stack(with_ports, (1000, 1000)).service("proxy").ports) == 2
    # A change of extra ports changes the notebook's config hash: `up` recreates it.
    before = load_stack(base, (1000, 1000)).service("notebook").config_hash("sha256:1")
    assert notebook.config_hash("sha256:1") != before


def test_where_a_port_was_written_does_not_change_the_config_hash(tmp_path):
    from_env = load_stack(settings_for(tmp_path, EXTRA_PORTS="8888:8888"), (1000, 1000))
    from_flag = load_stack(settings_for(tmp_path, publish=["8888:8888"]), (1000, 1000))
    assert from_env.service("notebook").config_hash("i") == from_flag.service("notebook").config_hash("i")


# -- NOTEBOOKS_DIR empty --------------------------------------------------------------


def test_empty_notebooks_dir_mounts_nothing_at_notebooks(tmp_path):
    spec = load_stack(settings_for(tmp_path, "NOTEBOOKS_DIR=\n"), (1000, 1000))
    assert spec.notebooks_dir is None
    assert "/notebooks" not in {m.target for m in spec.service("notebook").mounts}
    mounted = load_stack(settings_for(tmp_path), (1000, 1000))
    assert "/notebooks" in {m.target for m in mounted.service("notebook").mounts}


# -- NOTEBOOK_CONTAINER_NAME -----------------------------------------------------------


def test_notebook_container_name_defaults_to_the_project_and_can_be_the_seeds(tmp_path):
    default = load_stack(settings_for(tmp_path, DEVSTACK_PROJECT="demo"), (1000, 1000))
    assert default.service("notebook").container_name == "demo-notebook"
    seed = load_stack(settings_for(tmp_path, DEVSTACK_PROJECT="demo",
                                       NOTEBOOK_CONTAINER_NAME="proversity.jupyter.cont"), (1000, 1000))
    assert seed.service("notebook").container_name == "proversity.jupyter.cont"
    assert dict(seed.service("notebook").labels)["devstack.project"] == "demo"
    assert seed.service("proxy").container_name == "demo-proxy"


@pytest.mark.parametrize("name", ["x", "-lead", ".lead", "has space", "slash/name", "colon:name", "é-name"])
def test_invalid_container_name_is_named(tmp_path, name):
    message = config_error(tmp_path, NOTEBOOK_CONTAINER_NAME=name)
    assert message.startswith(f"environment: NOTEBOOK_CONTAINER_NAME={name!r} is not a container name")


def test_notebook_container_cannot_take_the_proxys_name(tmp_path):
    message = config_error(tmp_path, DEVSTACK_PROJECT="demo", NOTEBOOK_CONTAINER_NAME="demo-proxy")
    assert "NOTEBOOK_CONTAINER_NAME demo-proxy is the proxy container's name" in message
