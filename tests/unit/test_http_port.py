"""HTTP_PORT: the stack's port-80 listener (the EB platform's default server) published on BIND_ADDRESS, by the
proxy alone or by the load balancer's listener to the instances' port 80. Settings, description, render, ports."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from devstack.balancer.render import render_haproxy_config
from devstack.errors import ConfigError
from devstack.proxy.lint import lint_stack
from devstack.proxy.nginxconf import parse_tree
from devstack.proxy.render import render_proxy_config
from devstack.reconcile.preflight import port_problems
from devstack.settings import load_settings
from devstack.spec import load_stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEFAULT_SERVER = "sites-enabled/elasticbeanstalk-nginx-docker-proxy.conf"


def settings_for(folder: Path, **environ: str):
    return load_settings(folder, environ=environ)


def spec_for(folder: Path, fixture: str | None = None, **environ: str):
    if fixture is not None:
        shutil.copytree(FIXTURES / fixture, folder, dirs_exist_ok=True)
    settings = settings_for(folder, **environ)
    return load_stack(settings, (1000, 1000)), settings


def published(service) -> set[tuple[str, int, int]]:
    return {(p.host_ip, p.host_port, p.container_port) for p in service.ports}


# -- the setting ---------------------------------------------------------------------------------------


def test_http_port_is_unset_by_default_and_empty_means_unset(project):
    assert settings_for(project).http_port is None
    assert settings_for(project, HTTP_PORT="").http_port is None
    assert settings_for(project, HTTP_PORT=" ").http_port is None
    assert settings_for(project).redacted()["HTTP_PORT"] == ""
    assert settings_for(project, HTTP_PORT="8080").http_port == 8080
    assert settings_for(project, HTTP_PORT="8080").redacted()["HTTP_PORT"] == "8080"


@pytest.mark.parametrize("value", ["http", "0", "65536", "80.5", "８０"])
def test_an_http_port_that_is_not_a_port_is_one_line_naming_it(project, value):
    (project / ".env").write_text(f"DEVSTACK_PROJECT=demo\nSIFU_PORT=43334\nJUPYTER_PORT=43335\nHTTP_PORT={value}\n")
    with pytest.raises(ConfigError) as caught:
        settings_for(project)
    message = str(caught.value)
    assert message.startswith(f"{project / '.env'}:4: HTTP_PORT=") and "\n" not in message
    assert "not a port" in message


def test_http_port_must_differ_from_the_other_host_ports(project):
    with pytest.raises(ConfigError, match=r"HTTP_PORT and SIFU_PORT are both 43334.*HTTP_PORT from environment"):
        settings_for(project, HTTP_PORT="43334")
    with pytest.raises(ConfigError, match="HTTP_PORT and JUPYTER_PORT are both 43335"):
        settings_for(project, HTTP_PORT="43335")
    with pytest.raises(ConfigError, match=r"host port 8080 \(EXTRA_PORTS from environment\) is the proxy's HTTP_PORT"):
        settings_for(project, HTTP_PORT="8080", EXTRA_PORTS="8080:8888")


# -- one instance: the proxy publishes it --------------------------------------------------------------


def test_unset_nothing_is_published_on_80_and_no_default_server_is_rendered(project):
    spec, _ = spec_for(project)
    assert spec.network.http is None
    assert 80 not in {p.container_port for p in spec.service("proxy").ports}
    assert "http" not in spec.urls()
    assert DEFAULT_SERVER not in render_proxy_config(spec.proxy, "172.23.0.4").files


def test_one_instance_the_proxy_publishes_its_port_80_on_http_port(project, tmp_path):
    spec, settings = spec_for(project, HTTP_PORT="48080")
    assert published(spec.service("proxy")) == {
        ("127.0.0.1", 43334, 3334), ("127.0.0.1", 43335, 3335), ("127.0.0.1", 48080, 80)}
    port = next(p for p in spec.host_ports if p.setting == "HTTP_PORT")
    assert (port.address, port.port, port.service, port.purpose) == (
        "127.0.0.1", 48080, "proxy", "the proxy's port-80 listener")
    assert spec.urls()["http"] == "http://localhost:48080/"
    # devstack's bundled servers, and the platform's default server: everything to upstream docker (Sifu's port).
    rendered = render_proxy_config(spec.proxy, "172.23.0.4")
    assert "upstream docker {\n    server 172.23.0.4:3334;" in rendered.files["conf.d/upstreams.conf"]
    root = tmp_path / "tree"
    for rel, content in rendered.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    server = next(d for d in parse_tree(root).file(DEFAULT_SERVER).directives if d.name == "server")
    assert [d.args for d in server.block if d.name == "listen"] == [("80",)]
    location = next(d for d in server.block if d.name == "location")
    assert ("http://docker",) in [d.args for d in location.block if d.name == "proxy_pass"]
    # Only the stack's names, as devstack's other servers (DNS rebinding).
    assert any(d.name == "if" and "$host" in d.args for d in server.block)
    # Served and published: the lint has nothing to say about port 80.
    assert [f for f in lint_stack(spec, settings) if "80" in f.message] == []


def test_the_port_80_listener_in_each_eb_layout(tmp_path):
    # Amazon Linux 1 (production's layout): the platform's default server beside the project's files.
    spec, _ = spec_for(tmp_path / "al1", "jupyter-server", HTTP_PORT="48080")
    rendered = render_proxy_config(spec.proxy, "172.23.0.4")
    assert "listen 80;" in rendered.files[DEFAULT_SERVER]
    assert "upstream docker {\n    server 172.23.0.4:3334;" in rendered.files[
        "conf.d/elasticbeanstalk-nginx-docker-upstream.conf"]
    # Amazon Linux 2: nginx.conf's own default server on 80, which HTTP_PORT publishes; no second one.
    spec, _ = spec_for(tmp_path / "al2", "eb-al2", HTTP_PORT="48080")
    rendered = render_proxy_config(spec.proxy, "172.23.0.4")
    assert DEFAULT_SERVER not in rendered.files
    assert "listen 80 default_server;" in rendered.files["nginx.conf"]
    assert (("127.0.0.1", 48080, 80)) in published(spec.service("proxy"))


def test_host_mode_nginx_binds_http_port_itself(tmp_path):
    spec, _ = spec_for(tmp_path / "host", NETWORK_MODE="host", SIFU_PORT="43334", JUPYTER_PORT="43335",
                       HTTP_PORT="48080")
    assert spec.service("proxy").ports == ()
    assert "listen 127.0.0.1:48080;" in render_proxy_config(spec.proxy, "ignored").files[DEFAULT_SERVER]
    assert ("127.0.0.1", 48080, "HTTP_PORT") in [(p.address, p.port, p.setting) for p in spec.host_ports]
    with pytest.raises(ConfigError, match="NETWORK_MODE=host: .* and HTTP_PORT are both 53334"):
        spec_for(tmp_path / "clash", NETWORK_MODE="host", SIFU_PORT="43334", JUPYTER_PORT="43335",
                 HTTP_PORT="53334")


def test_a_taken_http_port_is_one_line_naming_the_setting_and_the_port(project):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        spec, _ = spec_for(project, HTTP_PORT=str(port))
        problems = port_problems(None, spec)
    assert [p.describe() for p in problems] == [
        f"host port 127.0.0.1:{port} (HTTP_PORT) is already in use: stop what holds it, "
        "or set HTTP_PORT to a free port in .env"]


# -- several instances: the load balancer's listener to their port 80 -----------------------------------


def test_productions_tcp_80_listener_forwards_to_each_proxys_port_80(project):
    spec, _ = spec_for(project, "lb-tcp", INSTANCES="2", HTTP_PORT="48080")
    balancer = spec.balancer
    assert [(l.port, l.protocol, l.instance_port) for l in balancer.listeners] == [
        (3334, "TCP", 3334), (3335, "TCP", 3335), (80, "TCP", 80)]
    assert balancer.listeners[2].where.path.name == "resources.config"
    assert ("127.0.0.1", 48080, 80) in published(spec.service("lb"))
    assert spec.service("proxy-1").ports == spec.service("proxy-2").ports == ()
    assert next(p for p in spec.host_ports if p.setting == "HTTP_PORT").service == "lb"
    config = render_haproxy_config(balancer)
    frontend = config[config.index("\nfrontend http\n"):config.index("\nbackend http\n")]
    assert "bind :80\n    mode tcp\n" in frontend and "default_backend http" in frontend
    backend = config[config.index("\nbackend http\n"):]
    assert "server i1 demo-proxy-1:80 track sifu/i1" in backend
    assert "server i2 demo-proxy-2:80 track sifu/i2" in backend
    # Each proxy serves the default server on 80 (unpublished: the load balancer reaches it).
    assert DEFAULT_SERVER in render_proxy_config(spec.instance_list[1].proxy_spec, "172.23.0.5").files


def test_an_undeclared_port_80_listener_is_ebs_default_http_80_with_the_stickiness_cookie(project):
    spec, _ = spec_for(project, "lb-sticky", INSTANCES="2", HTTP_PORT="48080")
    http = spec.balancer.listeners[-1]
    assert (http.port, http.protocol, http.instance_port, http.where) == (80, "HTTP", 80, None)
    backend = render_haproxy_config(spec.balancer).split("\nbackend http\n")[1]
    assert "cookie AWSELB insert indirect nocache" in backend
    assert "server i1 demo-proxy-1:80 track sifu/i1 cookie i1" in backend


def test_a_listener_to_port_80_declared_on_another_port_is_the_one_published(project):
    (project / ".ebextensions").mkdir()
    (project / ".ebextensions" / "lb.config").write_text(
        "option_settings:\n  aws:elb:listener:8000:\n    ListenerProtocol: HTTP\n    InstancePort: 80\n")
    spec, _ = spec_for(project, INSTANCES="2", HTTP_PORT="48080")
    assert [(l.port, l.instance_port) for l in spec.balancer.listeners][-1] == (8000, 80)
    assert ("127.0.0.1", 48080, 8000) in published(spec.service("lb"))
    assert "frontend port8000\n    bind :8000\n    mode http" in render_haproxy_config(spec.balancer)


def test_without_http_port_the_load_balancer_serves_sifu_and_jupyter_only(project):
    spec, _ = spec_for(project, "lb-tcp", INSTANCES="2")
    assert [l.port for l in spec.balancer.listeners] == [3334, 3335]
    assert 80 not in {p.container_port for p in spec.service("lb").ports}


def test_a_template_tree_without_the_default_server_is_a_lint_error_naming_http_port(project, tmp_path):
    own = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[2] / "nginx", own)
    (own / "sites-enabled/elasticbeanstalk-nginx-docker-proxy.conf.j2").unlink()
    spec, settings = spec_for(project, HTTP_PORT="48080", PROXY_TEMPLATES=str(own))
    assert DEFAULT_SERVER not in render_proxy_config(spec.proxy, "172.23.0.4").files
    errors = [f for f in lint_stack(spec, settings) if f.code == "not-served"]
    assert [(f.severity, f.message) for f in errors] == [
        ("error", "no server listens on 80, which HTTP_PORT publishes (the EB platform's default server)")]


def test_setting_http_port_recreates_the_front_only_and_the_notebooks_keep_running(project):
    from memory_engine import MemoryEngine

    from devstack.reconcile import Stack

    engine = MemoryEngine({"nginx:stable": {}, "haproxy:2.8": {}})
    for instances in ("1", "2"):
        Stack(load_settings(project, environ={"INSTANCES": instances}), connect=lambda: engine).converge()
        engine.ops.clear()
        Stack(load_settings(project, environ={"INSTANCES": instances, "HTTP_PORT": "48080"}),
              connect=lambda: engine).converge()
        changed = {op.split()[1] for op in engine.ops if op.startswith(("create demo", "remove demo"))}
        assert changed == ({"demo-proxy"} if instances == "1" else {"demo-lb"}), engine.ops
