"""One rule for editor droppings and hidden files: the watcher, the proxy renderer and the reader of a
project's EB files agree on every name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from devstack.noise import is_config_noise, is_noise
from devstack.proxy.render import render_proxy_config
from devstack.settings import load_settings
from devstack.spec import load_stack
from devstack.spec.project import ProjectProxyFiles, find_project_proxy_files
from devstack.watch.classify import classify, watch_targets

DROPPINGS = ["#x.conf#", ".#x.conf", "x.conf~", "x.conf.swp", "x.conf.bak", "4913", ".hidden.conf"]


@pytest.mark.parametrize("name", DROPPINGS)
def test_a_dropping_in_a_proxy_folder_is_neither_loaded_rendered_nor_watched(tmp_path, name):
    templates = tmp_path / "tpl"
    (templates / "sites-enabled").mkdir(parents=True)
    (templates / "nginx.conf.j2").write_text("events {}\n")
    (templates / "sites-enabled" / name).write_text("not nginx\n")
    eb = tmp_path / ".ebextensions" / ".nginx" / "proxy"
    eb.mkdir(parents=True)
    (eb / "sifu.conf").write_text("server { listen 3334; }\n")
    (eb / name).write_text("not nginx\n")
    settings = load_settings(tmp_path, environ={"PROXY_TEMPLATES": str(templates)})
    spec = load_stack(settings, (1000, 1000))

    assert [p.name for p in find_project_proxy_files(tmp_path).al1_servers] == ["sifu.conf"]
    # devstack's own templates alone (with the project's EB files, those are what is loaded instead)
    rendered = render_proxy_config(replace(spec.proxy, project_files=ProjectProxyFiles()), "192.0.2.1").files
    assert all(name not in rel for rel in rendered)
    targets = watch_targets(settings, spec)
    for folder in (templates / "sites-enabled", eb):
        assert classify([str(folder / name)], targets).empty, folder
    assert not classify([str(eb / "sifu.conf")], targets).empty


def test_a_build_context_keeps_its_hidden_files_and_drops_editor_files():
    assert not is_noise(".dockerignore") and not is_noise("app/.env.defaults")
    assert is_noise("#app.py#") and is_noise(".git/HEAD") and is_noise("pkg/__pycache__/m.pyc")
    assert is_config_noise(".dockerignore") and is_config_noise("conf.d/.x.conf")
