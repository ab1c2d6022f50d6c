from pathlib import Path

import pytest

from devstack.errors import ProxyConfigError
from devstack.proxy.nginxconf import parse_tree
from devstack.proxy.render import ProxyConfigStore, explain_nginx_error, render_proxy_config
from devstack.settings import load_settings
from devstack.spec import load_stack


@pytest.fixture
def spec(tmp_path):
    return load_stack(load_settings(tmp_path, environ={"SIFU_PORT": "4334", "JUPYTER_PORT": "4335"}), (1000, 1000))


def write_tree(files: dict[str, str], root: Path) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def parse(rendered, tmp_path):
    return parse_tree(write_tree(rendered.files, tmp_path / "tree"))


def directives(parsed, name):
    return [d for d in parsed.walk() if d.name == name]


def test_rendered_tree_has_eb_layout_upstreams_and_listeners(spec, tmp_path):
    rendered = render_proxy_config(spec.proxy, "172.20.0.5")
    assert set(rendered.files) == {"nginx.conf", "conf.d/upstreams.conf", "sites-enabled/sifu.conf",
                                   "sites-enabled/jupyter.conf"}
    parsed = parse(rendered, tmp_path)
    assert sorted(str(f.path.relative_to(parsed.root)) for f in parsed.files) == sorted(rendered.files)
    assert [e for f in parsed.files for e in f.errors] == []
    assert parsed.not_in_tree == ("/etc/nginx/mime.types",)  # the nginx image ships it; never read from this machine
    log_formats = [d.args[0] for d in directives(parsed, "log_format")]
    assert "healthd" in log_formats
    includes = [d.args[0] for d in directives(parsed, "include")]
    assert "conf.d/*.conf" in includes and "sites-enabled/*" in includes
    upstreams = {d.args[0]: d.block for d in directives(parsed, "upstream")}
    assert {"sifu", "jupyter", "docker"} <= set(upstreams)
    assert ("server", ("172.20.0.5:3335",)) in [(d.name, d.args) for d in upstreams["jupyter"]]
    assert ("256",) in [d.args for d in upstreams["sifu"] if d.name == "keepalive"]
    listens = sorted(d.args[0] for d in directives(parsed, "listen"))
    assert listens == ["3334", "3335"]  # inside the sidecar; Docker publishes 4334 and 4335 onto them


def test_parsing_a_tree_never_reads_a_file_outside_it(tmp_path):
    # Files outside the tree that would break the parse if they were read: an absolute include,
    # one under EB's prefix that the tree lacks, and a symlink inside the tree pointing out of it.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "broken.conf").write_text("this is { not nginx\n")
    tree = write_tree({
        "nginx.conf": f"http {{\n    include {outside}/broken.conf;\n    include /etc/nginx/mime.types;\n"
                      "    include /etc/nginx/conf.d/*.conf;\n    include sites-enabled/*;\n}\n",
        "conf.d/a.conf": "upstream a { server 10.0.0.1:1; }\n",
    }, tmp_path / "tree")
    (tree / "sites-enabled").mkdir()
    (tree / "sites-enabled" / "escape").symlink_to(outside / "broken.conf")
    parsed = parse_tree(tree)
    assert [f.path for f in parsed.files] == [tree.resolve() / "nginx.conf", tree.resolve() / "conf.d/a.conf"]
    assert [e for f in parsed.files for e in f.errors] == []
    assert parsed.not_in_tree == (f"{outside}/broken.conf", "/etc/nginx/mime.types")


def test_jupyter_server_gates_on_the_cookie_and_upgrades_websockets(spec):
    jupyter = render_proxy_config(spec.proxy, "10.0.0.2").files["sites-enabled/jupyter.conf"]
    assert 'if ($cookie_JUPYTER_AUTHORIZATION = "")' in jupyter and "return 403;" in jupyter
    assert "proxy_set_header    Upgrade $http_upgrade;" in jupyter
    assert "proxy_set_header    Host $http_host;" in jupyter
    assert "gzip on;" in jupyter


def test_no_query_strings_in_access_logs(spec):
    conf = render_proxy_config(spec.proxy, "10.0.0.2").files["nginx.conf"]
    assert "$request " not in conf and "$request_uri" not in conf and "$args" not in conf


def test_missing_template_value_is_a_clear_error(tmp_path, spec):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.conf.j2").write_text("listen {{ no_such_value }};\n")
    from dataclasses import replace

    with pytest.raises(ProxyConfigError, match="no_such_value"):
        render_proxy_config(replace(spec.proxy, server_templates=tmp_path / "t"), "10.0.0.2")


def test_store_stages_activates_and_discards(tmp_path, spec):
    store = ProxyConfigStore(tmp_path / "proxy")
    first = render_proxy_config(spec.proxy, "10.0.0.2")
    generation = store.stage(first)
    assert store.current_generation() is None
    store.activate(generation)
    assert store.current_files() == first.files
    second = render_proxy_config(spec.proxy, "10.0.0.3")
    staged = store.stage(second)
    store.discard(staged)
    assert store.current_files() == first.files  # a rejected config never replaces the served one
    for _ in range(5):
        store.activate(store.stage(second))
    assert len([p for p in (tmp_path / "proxy").iterdir() if p.name.startswith("gen-")]) <= 3


def test_nginx_errors_point_at_the_file_the_user_edits(spec):
    rendered = render_proxy_config(spec.proxy, "10.0.0.2")
    output = ('nginx: [emerg] unknown directive "bogus" in /etc/devstack-proxy/gen-7/sites-enabled/jupyter.conf:12\n'
              "nginx: configuration file /etc/devstack-proxy/gen-7/nginx.conf test failed\n")
    message = explain_nginx_error(output, "gen-7", rendered)
    assert 'unknown directive "bogus"' in message
    assert str(Path("nginx/sites-enabled/jupyter.conf.j2")) in message and ":12" in message
