"""compose/docker-compose.yml is devstack's own stack description, kept equal by regenerating it."""

from pathlib import Path

import yaml

from devstack.compose import COMPOSE_FILE, PROXY_FOLDER, compose_dict, compose_proxy_files, compose_yaml, neutral_spec

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPOSITORY / "compose"
REGENERATE = "run `python -m devstack.compose compose/` and commit the result"


def test_committed_compose_file_equals_the_stack_description():
    spec = neutral_spec(REPOSITORY)
    assert (COMPOSE_DIR / COMPOSE_FILE).read_text() == compose_yaml(spec, COMPOSE_DIR), REGENERATE


def test_committed_proxy_tree_equals_the_render():
    expected = compose_proxy_files(neutral_spec(REPOSITORY))
    root = COMPOSE_DIR / PROXY_FOLDER
    committed = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert committed == expected, REGENERATE


def test_compose_file_mirrors_the_services():
    spec = neutral_spec(REPOSITORY)
    data = yaml.safe_load((COMPOSE_DIR / COMPOSE_FILE).read_text())
    assert set(data["services"]) == {"base", "notebook", "proxy"}
    notebook, proxy = data["services"]["notebook"], data["services"]["proxy"]
    assert notebook["build"]["context"] == "./notebook" and data["services"]["base"]["build"]["context"] == "./base"
    assert "../notebooks:/notebooks" in notebook["volumes"]
    assert proxy["ports"] == ["127.0.0.1:3334:3334", "127.0.0.1:3335:3335"]
    assert notebook["environment"]["NB_UID"] == "${NB_UID:-1000}"
    assert dict(spec.service("notebook").environment).keys() == notebook["environment"].keys()
    upstreams = (COMPOSE_DIR / PROXY_FOLDER / "conf.d" / "upstreams.conf").read_text()
    assert "server notebook:3335;" in upstreams and "keepalive 256;" in upstreams


def test_host_mode_compose_uses_the_host_network(tmp_path):
    from devstack.settings import load_settings
    from devstack.spec import load_stack

    spec = load_stack(load_settings(tmp_path, environ={"NETWORK_MODE": "host", "EXTRA_PORTS": "8888:8888"}),
                      (1000, 1000))
    data = compose_dict(spec, tmp_path)
    assert data["services"]["notebook"]["network_mode"] == "host"
    assert "ports" not in data["services"]["proxy"] and "ports" not in data["services"]["notebook"]


def test_extra_ports_are_published_from_the_notebook(tmp_path):
    from devstack.settings import load_settings
    from devstack.spec import load_stack

    spec = load_stack(load_settings(tmp_path, environ={"EXTRA_PORTS": "18888:8888"}), (1000, 1000))
    assert compose_dict(spec, tmp_path)["services"]["notebook"]["ports"] == ["127.0.0.1:18888:8888"]


def test_dollar_signs_are_escaped_for_compose(tmp_path):
    from devstack.settings import load_settings
    from devstack.spec import load_stack

    (tmp_path / ".env").write_text("PRICE='5$'\n")
    spec = load_stack(load_settings(tmp_path, environ={}), (1000, 1000))
    assert compose_dict(spec, tmp_path)["services"]["notebook"]["environment"]["PRICE"] == "5$$"
