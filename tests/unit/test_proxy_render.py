from pathlib import Path

import crossplane
import pytest

from devstack.errors import ProxyConfigError
from devstack.proxy import ProxyConfigStore, explain_nginx_error, render_proxy_config
from devstack.settings import load_settings
from devstack.stack import describe_stack


@pytest.fixture
def spec(tmp_path):
    return describe_stack(load_settings(tmp_path, environ={"SIFU_PORT": "4334", "JUPYTER_PORT": "4335"}), 1000, 1000)


def parse(rendered, tmp_path) -> dict:
    root = tmp_path / "tree"
    for rel, content in rendered.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return crossplane.parse(str(root / "nginx.conf"), catch_errors=False)


def directives(parsed, name):
    found = []

    def walk(block, file):
        for d in block:
            if d["directive"] == name:
                found.append((file, d))
            walk(d.get("block", []), file)

    for config in parsed["config"]:
        walk(config["parsed"], config["file"])
    return found


def test_rendered_tree_has_eb_layout_upstreams_and_listeners(spec, tmp_path):
    rendered = render_proxy_config(spec.proxy, "172.20.0.5")
    assert set(rendered.files) == {"nginx.conf", "conf.d/upstreams.conf", "sites-enabled/sifu.conf",
                                   "sites-enabled/jupyter.conf"}
    parsed = parse(rendered, tmp_path)
    assert parsed["status"] == "ok", parsed["errors"]
    log_formats = [d["args"][0] for _, d in directives(parsed, "log_format")]
    assert "healthd" in log_formats
    includes = [d["args"][0] for _, d in directives(parsed, "include")]
    assert "conf.d/*.conf" in includes and "sites-enabled/*" in includes
    upstreams = {d["args"][0]: d["block"] for _, d in directives(parsed, "upstream")}
    assert {"sifu", "jupyter", "docker"} <= set(upstreams)
    assert {"directive": "server", "args": ["172.20.0.5:3335"]} in [
        {k: v for k, v in d.items() if k in ("directive", "args")} for d in upstreams["jupyter"]]
    assert ["256"] in [d["args"] for d in upstreams["sifu"] if d["directive"] == "keepalive"]
    listens = sorted(d["args"][0] for _, d in directives(parsed, "listen"))
    assert listens == ["3334", "3335"]  # inside the sidecar; Docker publishes 4334 and 4335 onto them


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
