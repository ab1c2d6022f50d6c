"""The project's own EB files, placed where their platform puts them; host networking; docker_envs."""

import shutil
from pathlib import Path

import pytest

from devstack.spec.project import docker_envs_request, docker_envs_text, find_project_proxy_files
from devstack.errors import ConfigError
from devstack.proxy.nginxconf import parse_tree as parse_rendered_tree
from devstack.proxy.render import explain_nginx_error, render_proxy_config
from devstack.settings import load_settings
from devstack.spec import load_stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def spec_for(tmp_path, fixture=None, **environ):
    folder = tmp_path / (fixture or "plain")
    if fixture:
        shutil.copytree(FIXTURES / fixture, folder)
    else:
        folder.mkdir()
    return folder, load_stack(load_settings(folder, environ=environ), (1000, 1000))


def parse_tree(files, tmp_path):
    root = tmp_path / "tree"
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    parsed = parse_rendered_tree(root)  # includes followed inside the tree only, never onto this machine's /etc
    assert [e for f in parsed.files for e in f.errors] == []
    assert parsed.not_in_tree == ("/etc/nginx/mime.types",)  # the nginx image ships it
    return root, parsed


def test_al1_proxy_files_are_the_server_files_unchanged(tmp_path):
    folder, spec = spec_for(tmp_path, "eb-al1")
    rendered = render_proxy_config(spec.proxy, "172.23.0.4")
    proxy_dir = folder / ".ebextensions/.nginx/proxy"
    assert set(rendered.files) == {
        "nginx.conf", "conf.d/elasticbeanstalk-nginx-docker-upstream.conf",
        "sites-enabled/elasticbeanstalk-nginx-sifu-proxy.conf", "sites-enabled/elasticbeanstalk-nginx-jupyter-proxy.conf"}
    for name in ("elasticbeanstalk-nginx-sifu-proxy.conf", "elasticbeanstalk-nginx-jupyter-proxy.conf"):
        assert rendered.files[f"sites-enabled/{name}"] == (proxy_dir / name).read_text()
        assert rendered.sources[f"sites-enabled/{name}"] == proxy_dir / name
    assert spec.proxy.layout == "al1"
    assert folder / ".ebextensions/.nginx/proxy" in spec.proxy.sources


def test_al1_upstream_file_is_the_hooks(tmp_path):
    _, spec = spec_for(tmp_path, "eb-al1")
    upstream = render_proxy_config(spec.proxy, "172.23.0.4").files["conf.d/elasticbeanstalk-nginx-docker-upstream.conf"]
    assert "map $" not in upstream  # the project's files bring their own websocket map
    for name, port in (("docker", 3334), ("jupyter", 3335), ("sifu", 3334)):
        assert f"upstream {name} {{\n    server 172.23.0.4:{port};\n    keepalive 256;\n}}" in upstream


def test_al1_tree_parses_with_healthd_and_both_includes(tmp_path):
    _, spec = spec_for(tmp_path, "eb-al1")
    _, parsed = parse_tree(render_proxy_config(spec.proxy, "10.0.0.2").files, tmp_path)
    files = {f.path.name for f in parsed.files}
    assert {"elasticbeanstalk-nginx-sifu-proxy.conf", "elasticbeanstalk-nginx-docker-upstream.conf"} <= files
    assert "healthd" in [d.args[0] for d in parsed.walk() if d.name == "log_format"]


def test_al2_files_are_included_where_that_platform_includes_them(tmp_path):
    folder, spec = spec_for(tmp_path, "eb-al2")
    rendered = render_proxy_config(spec.proxy, "10.0.0.2")
    assert rendered.files["conf.d/fixture-headers.conf"] == (folder / ".platform/nginx/conf.d/fixture-headers.conf").read_text()
    assert "conf.d/elasticbeanstalk/10_fixture.conf" in rendered.files
    assert "conf.d/elasticbeanstalk/00_application.conf" in rendered.files  # the platform's default location
    # No project server listens on 3334/3335: devstack's own servers serve them.
    assert {"sites-enabled/sifu.conf", "sites-enabled/jupyter.conf"} <= set(rendered.files)
    root, parsed = parse_tree(rendered.files, tmp_path)
    main = parsed.file("nginx.conf")
    http = next(d for d in main.directives if d.name == "http")
    default = next(d for d in http.block if d.name == "server")
    assert ("80", "default_server") in [d.args for d in default.block if d.name == "listen"]
    assert ("conf.d/elasticbeanstalk/*.conf",) in [d.args for d in default.block if d.name == "include"]
    located = parsed.file("conf.d/elasticbeanstalk/10_fixture.conf")
    assert located is not None and located.directives[0].name == "location"
    assert parsed.file("conf.d/fixture-headers.conf") is not None


def test_al2_server_on_a_published_port_replaces_devstacks_own(tmp_path):
    folder, _ = spec_for(tmp_path, "eb-al2")
    (folder / ".platform/nginx/conf.d/sifu.conf").write_text(
        "server {\n    listen 3334;\n    location / { proxy_pass http://sifu; }\n}\n")
    spec = load_stack(load_settings(folder, environ={}), (1000, 1000))
    files = render_proxy_config(spec.proxy, "10.0.0.2").files
    assert "sites-enabled/sifu.conf" not in files and "sites-enabled/jupyter.conf" in files


def test_nginx_errors_in_a_project_file_name_that_file_and_line(tmp_path):
    folder, spec = spec_for(tmp_path, "eb-al1-unknown-directive")
    rendered = render_proxy_config(spec.proxy, "10.0.0.2")
    output = ('nginx: [emerg] unknown directive "set_hmac_sha1" in '
              "/etc/devstack-proxy/gen-2/sites-enabled/elasticbeanstalk-nginx-jupyter-proxy.conf:11\n")
    message = explain_nginx_error(output, "gen-2", rendered)
    assert message == ('nginx: [emerg] unknown directive "set_hmac_sha1" in '
                       f"{folder}/.ebextensions/.nginx/proxy/elasticbeanstalk-nginx-jupyter-proxy.conf:11")


def test_editor_droppings_and_non_conf_files_are_not_loaded(tmp_path):
    folder, _ = spec_for(tmp_path, "eb-al1")
    proxy = folder / ".ebextensions/.nginx/proxy"
    (proxy / ".elasticbeanstalk-nginx-sifu-proxy.conf.swp").write_text("junk")
    (proxy / "notes.txt").write_text("junk")
    found = find_project_proxy_files(folder)
    assert [p.name for p in found.al1_servers] == ["elasticbeanstalk-nginx-jupyter-proxy.conf",
                                                   "elasticbeanstalk-nginx-sifu-proxy.conf"]


def test_host_mode_moves_the_notebook_to_internal_ports_and_nginx_to_the_host_ports(tmp_path):
    _, spec = spec_for(tmp_path, NETWORK_MODE="host", SIFU_PORT="4334", JUPYTER_PORT="4335")
    notebook, proxy = spec.service("notebook"), spec.service("proxy")
    env = dict(notebook.environment)
    assert (env["SIFU_LISTEN_PORT"], env["JUPYTER_LISTEN_PORT"], env["NOTEBOOK_LISTEN_ADDRESS"]) == \
        ("14334", "14335", "127.0.0.1")
    assert spec.network.name == "host" and proxy.ports == () and notebook.extra_hosts == ()
    files = render_proxy_config(spec.proxy, "ignored").files
    assert "listen 127.0.0.1:4334;" in files["sites-enabled/sifu.conf"]
    assert "server 127.0.0.1:14335;" in files["conf.d/upstreams.conf"]
    assert env["EDX_INTERNAL_URL"] == "http://127.0.0.1:8000"
    assert {(p.address, p.port) for p in spec.host_ports} == {
        ("127.0.0.1", 4334), ("127.0.0.1", 4335), ("127.0.0.1", 14334), ("127.0.0.1", 14335)}


def test_bridge_mode_publishes_host_ports_onto_the_production_ports(tmp_path):
    _, spec = spec_for(tmp_path, SIFU_PORT="4334", JUPYTER_PORT="4335", EDX_HOSTNAME="localhost:18000")
    assert [str(p) for p in spec.service("proxy").ports] == ["127.0.0.1:4334->3334/tcp", "127.0.0.1:4335->3335/tcp"]
    assert dict(spec.service("notebook").extra_hosts) == {"host.docker.internal": "host-gateway"}
    assert dict(spec.service("notebook").environment)["EDX_INTERNAL_URL"] == "http://host.docker.internal:18000"


def test_host_mode_internal_ports_stay_in_range_for_high_public_ports(tmp_path):
    # Random free ports are often above 55535, where +10000 would not be a port at all.
    _, spec = spec_for(tmp_path, NETWORK_MODE="host", SIFU_PORT="57988", JUPYTER_PORT="57989")
    env = dict(spec.service("notebook").environment)
    assert (env["SIFU_LISTEN_PORT"], env["JUPYTER_LISTEN_PORT"]) == ("47988", "47989")
    assert "server 127.0.0.1:47989;" in render_proxy_config(spec.proxy, "ignored").files["conf.d/upstreams.conf"]


def test_host_mode_ports_must_not_collide(tmp_path):
    with pytest.raises(ConfigError, match="NETWORK_MODE=host"):
        spec_for(tmp_path, NETWORK_MODE="host", SIFU_PORT="4334", JUPYTER_PORT="14334")


def test_docker_envs_rule(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM x\nENV A=1\nCOPY docker_envs /tmp/docker_envs\nRUN source /tmp/docker_envs\n")
    found = docker_envs_request("", dockerfile)
    assert (found.target, found.reason, found.dockerfile_copy) == ("/tmp/docker_envs", f"{dockerfile}:3", True)
    assert docker_envs_request("/etc/app/envs", dockerfile).target == "/etc/app/envs"
    dockerfile.write_text("FROM x\n")
    assert docker_envs_request("", dockerfile) is None
    assert docker_envs_request("/run/envs", dockerfile).dockerfile_copy is False


def test_docker_envs_text_quotes_values_and_leaves_secrets_out(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / ".env").write_text("GREETING=it's a \"test\" $HOME\nDEPLOYMENT_TOKEN=ghp_secret123\n")
    spec = load_stack(load_settings(folder, environ={"DOCKER_ENVS_FILE": "/tmp/docker_envs"}), (1000, 1000))
    text = docker_envs_text(dict(spec.service("notebook").environment))
    assert "export GREETING='it'\"'\"'s a \"test\" $HOME'" in text
    assert "ghp_secret123" not in text and "DEPLOYMENT_TOKEN" not in text
    assert ("/tmp/docker_envs", True) in [(m.target, m.read_only) for m in spec.service("notebook").mounts]
    assert spec.docker_envs_path == folder / ".devstack" / "docker_envs"
