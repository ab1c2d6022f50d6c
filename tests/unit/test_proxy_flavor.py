"""Stock nginx or OpenResty: which one the proxy runs and why, what the lint says of modules, and the
sidecar's layout (its configuration where the image's nginx reads it with no -c)."""

import shutil
from pathlib import Path

import pytest

from devstack.errors import ConfigError
from devstack.proxy.lint import MODULE_MISSING, lint_stack
from devstack.proxy.modules import module_of
from devstack.proxy.render import explain_nginx_error, render_proxy_config
from devstack.settings import load_settings
from devstack.spec import NGINX, OPENRESTY, link_loaded_config, load_stack, proxy_command, proxy_prepare
from devstack.spec.project import find_openresty_installer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HISTORICAL = ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-jupyter-proxy.conf"


def stack_for(tmp_path, fixture=None, **environ):
    folder = tmp_path / (fixture or "plain")
    if fixture:
        shutil.copytree(FIXTURES / fixture, folder)
    else:
        folder.mkdir(parents=True)
    settings = load_settings(folder, environ=environ)
    return folder, settings, load_stack(settings, (1000, 1000))


@pytest.mark.parametrize("directive, module", [
    ("set_hmac_sha1", "set-misc"), ("set_encode_base64", "set-misc"), ("more_set_headers", "headers-more"),
    ("content_by_lua_block", "lua"), ("access_by_lua_file", "lua"), ("lua_shared_dict", "lua"),
    ("echo", "echo"), ("echo_sleep", "echo"),
    ("set", None), ("proxy_pass", None), ("add_header", None), ("map", None),
])
def test_each_directive_is_known_by_the_module_that_provides_it(directive, module):
    assert module_of(directive) == module


def test_a_hook_that_runs_the_install_script_chooses_openresty_and_says_where(tmp_path):
    folder, _, spec = stack_for(tmp_path, "eb-openresty")
    choice = spec.proxy.choice
    assert choice.flavor is OPENRESTY and choice.image == "openresty/openresty:1.27.1.2-bookworm"
    assert spec.service("proxy").image == choice.image
    hook = folder / ".ebextensions/02_eb_files.config"
    assert choice.reason == (f"because {hook}:13 runs install_openresty.sh, which installs OpenResty "
                             "(PROXY_FLAVOR=auto)")
    # OpenResty has set-misc: the historical file's set_hmac_sha1 is no finding.
    assert not [f for f in lint_stack(spec, load_settings(folder, environ={})) if f.code == MODULE_MISSING]


def test_a_proxy_file_that_needs_openresty_chooses_it_without_a_hook(tmp_path):
    folder, _, spec = stack_for(tmp_path, "eb-al1-unknown-directive")
    assert spec.proxy.flavor is OPENRESTY
    assert spec.proxy.choice.reason.startswith(f"because {folder / HISTORICAL}:11 uses set_hmac_sha1 (set-misc")


def test_a_project_that_asks_nothing_gets_stock_nginx(tmp_path):
    _, _, spec = stack_for(tmp_path, "eb-al1")
    assert spec.proxy.flavor is NGINX and spec.service("proxy").image == "nginx:stable"
    assert "nothing in the project asks for OpenResty" in spec.proxy.choice.reason


def test_proxy_flavor_decides_over_the_project(tmp_path):
    _, _, spec = stack_for(tmp_path, "eb-openresty", PROXY_FLAVOR="nginx", NGINX_IMAGE="nginx:1.26")
    assert spec.proxy.flavor is NGINX and spec.service("proxy").image == "nginx:1.26"
    assert spec.proxy.choice.reason == "as PROXY_FLAVOR=nginx asks"
    _, _, spec = stack_for(tmp_path / "b", PROXY_FLAVOR="openresty", OPENRESTY_IMAGE="openresty/openresty:1.25.3.2-bookworm")
    assert spec.proxy.flavor is OPENRESTY and spec.service("proxy").image == "openresty/openresty:1.25.3.2-bookworm"


def test_an_unknown_flavor_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="PROXY_FLAVOR.*auto, nginx, openresty"):
        load_settings(tmp_path, environ={"PROXY_FLAVOR": "apache"})


def test_under_stock_nginx_the_lint_names_file_line_module_and_fix(tmp_path):
    folder, settings, spec = stack_for(tmp_path, "eb-openresty", PROXY_FLAVOR="nginx")
    [finding] = [f for f in lint_stack(spec, settings) if f.code == MODULE_MISSING]
    assert finding.severity == "error" and finding.where() == f"{folder / HISTORICAL}:11"
    assert "`set_hmac_sha1` comes with the set-misc module, which stock nginx lacks" in finding.message
    assert "PROXY_FLAVOR=openresty" in finding.fix


def test_install_hooks_are_read_as_eb_runs_them(tmp_path):
    ebext = tmp_path / ".ebextensions"
    ebext.mkdir()
    # A comment that mentions OpenResty installs nothing; a command that does, does.
    (ebext / "01_notes.config").write_text("# we used to run openresty here\noption_settings: {}\n")
    assert find_openresty_installer(tmp_path) is None
    (ebext / "05_proxy.config").write_text(
        "commands:\n  01_install:\n    command: yum install -y openresty\n")
    found = find_openresty_installer(tmp_path)
    assert (found.path.name, found.line, found.what) == ("05_proxy.config", 3, "installs OpenResty")
    # A file EB cannot read is skipped, as EB skips it.
    (ebext / "00_broken.config").write_text("files: [unclosed\n")
    assert find_openresty_installer(tmp_path).path.name == "05_proxy.config"


@pytest.mark.parametrize("flavor", [NGINX, OPENRESTY])
def test_the_sidecar_links_the_loaded_configuration_where_its_nginx_reads_it(flavor):
    command = proxy_command(flavor)
    # nginx runs with no -c: its own default path is the loaded configuration.
    assert command.endswith("exec nginx -g 'daemon off;'") and " -c " not in command
    assert f'ln -s "$f" "{flavor.conf_dir}/$n"' in link_loaded_config(flavor)
    # OpenResty's folder is /etc/nginx too, as production's install script links it.
    assert (f"ln -s {flavor.conf_dir} /etc/nginx" in proxy_prepare(flavor)) == (flavor is OPENRESTY)


def test_nginx_errors_name_the_project_file_from_the_generation_or_the_image_folder(tmp_path):
    folder, _, spec = stack_for(tmp_path, "eb-openresty")
    rendered = render_proxy_config(spec.proxy, "10.0.0.2")
    source = folder / HISTORICAL
    for path in ("/etc/devstack-proxy/gen-4/sites-enabled/", "/usr/local/openresty/nginx/conf/sites-enabled/"):
        output = f'nginx: [emerg] unknown directive "bogus" in {path}elasticbeanstalk-nginx-jupyter-proxy.conf:9\n'
        assert explain_nginx_error(output, "gen-4", rendered, OPENRESTY.conf_dir) == (
            f'nginx: [emerg] unknown directive "bogus" in {source}:9')


def test_config_shows_the_flavour_and_why(tmp_path):
    import json
    import os
    import subprocess
    import sys

    folder, _, _ = stack_for(tmp_path, "eb-al1-unknown-directive")
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_HOST": "unix:///nonexistent"}
    done = subprocess.run([sys.executable, "-m", "devstack", "config", "--format", "json"], cwd=folder, env=env,
                          capture_output=True, text=True, check=True)
    shown = json.loads(done.stdout)["proxy_flavor"]
    assert shown["flavor"] == "openresty" and "uses set_hmac_sha1 (set-misc module)" in shown["reason"]
    text = subprocess.run([sys.executable, "-m", "devstack", "config"], cwd=folder, env=env,
                          capture_output=True, text=True, check=True).stdout
    assert "proxy: OpenResty (" in text and "uses set_hmac_sha1" in text
