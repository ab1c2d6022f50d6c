"""The proxy production ran: OpenResty, on the real engine, with real OpenResty (the official image,
or the harness's stand-in built from Debian's nginx and the modules OpenResty bundles), real Jupyter.

The fixture is the production repository's shape at `b89106c^`: a pre-deploy hook runs
`install_openresty.sh`, and the jupyter proxy file uses `set_hmac_sha1` (set-misc)."""

from __future__ import annotations

import hashlib
import hmac
import shutil
from pathlib import Path

import httpx
from conftest import OPENRESTY_IMAGE, PROJECT_LABEL
from helpers import login

FIXTURES = Path(__file__).resolve().parent / "fixtures"
JUPYTER_FILE = ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-jupyter-proxy.conf"
SECRET = b"not a secret: a fixture"  # the one the fixture's proxy file signs with


def signed(timestamp: str, secret: bytes = SECRET) -> dict[str, str]:
    return {"JUPYTER_TIMESTAMP": timestamp,
            "JUPYTER_AUTHORIZATION": hmac.new(secret, timestamp.encode(), hashlib.sha1).hexdigest()}


def sidecar(docker_client, project):
    return docker_client.containers.get(f"{project.name}-proxy")


def exec_in(container, *cmd: str) -> tuple[int, str]:
    code, output = container.exec_run(list(cmd))
    return code, output.decode()


def nginx_dump(container) -> tuple[int, str]:
    """`nginx -T`'s dump: its stdout alone. Its warnings go to stderr, and the engine's frames of the two
    streams arrive in no fixed order, so a merged output may hold a warning inside a dumped line."""
    code, (out, _) = container.exec_run(["nginx", "-T"], demux=True)
    return code, (out or b"").decode()


def test_the_production_shaped_project_runs_openresty_its_files_and_reloads_a_saved_one(project, docker_client):
    shutil.copytree(FIXTURES / "eb-openresty", project.dir, dirs_exist_ok=True)
    result = project.run("up", "-d")
    hook = project.dir / ".ebextensions/02_eb_files.config"
    assert (f"proxy: OpenResty ({OPENRESTY_IMAGE}), because {hook}:13 runs install_openresty.sh, "
            "which installs OpenResty") in result.stdout
    proxy = sidecar(docker_client, project)
    assert proxy.attrs["Config"]["Image"] == OPENRESTY_IMAGE

    # The historical file loads and the stack answers through it, cookie gate included.
    assert httpx.get(f"{project.sifu_url}/fixture-al1", trust_env=False).status_code == 200
    assert httpx.get(f"{project.jupyter_url}/api/status", trust_env=False).status_code == 403
    assert login(project.sifu_url).get(f"{project.jupyter_url}/api/status").status_code == 200

    # Laid out like the EB host: typed by hand, with no -c, nginx acts on what is loaded.
    code, dump = nginx_dump(proxy)
    assert code == 0, dump
    assert "# configuration file /usr/local/openresty/nginx/conf/sites-enabled/" \
           "elasticbeanstalk-nginx-jupyter-proxy.conf:" in dump
    assert (project.dir / JUPYTER_FILE).read_text() in dump
    assert exec_in(proxy, "nginx", "-t")[0] == 0
    assert exec_in(proxy, "readlink", "/etc/nginx") == (0, "/usr/local/openresty/nginx/conf\n")

    # A watched save of a file that really checks the cookie is reloaded, the sidecar never restarted.
    started = (proxy.id, proxy.attrs["State"]["StartedAt"])
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        mark = watch.mark()
        shutil.copy(FIXTURES / "eb-openresty/hmac/elasticbeanstalk-nginx-jupyter-proxy.conf", project.dir / JUPYTER_FILE)
        watch.wait_for_line("checked and reloaded", after=mark)
        api = f"{project.jupyter_url}/api"  # Jupyter's version: no login of Jupyter's own behind the gate
        assert httpx.get(api, cookies=signed("1700000000"), trust_env=False).status_code == 200
        forged = signed("1700000000", b"another secret")
        assert httpx.get(api, cookies=forged, trust_env=False).status_code == 403
        replayed = {**signed("1700000000"), "JUPYTER_TIMESTAMP": "1700000001"}
        assert httpx.get(api, cookies=replayed, trust_env=False).status_code == 403
        proxy.reload()
        assert (proxy.id, proxy.attrs["State"]["StartedAt"]) == started

        # `nginx -s reload` typed by hand reloads the same files.
        assert exec_in(proxy, "nginx", "-s", "reload")[0] == 0
        assert httpx.get(api, cookies=signed("1700000002"), trust_env=False).status_code == 200
    finally:
        watch.stop()


def test_under_stock_nginx_the_historical_file_is_refused_before_anything_starts(project, docker_client):
    shutil.copytree(FIXTURES / "eb-openresty", project.dir, dirs_exist_ok=True)
    result = project.run("up", "-d", check=False, env={"PROXY_FLAVOR": "nginx"})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr
    assert f"{project.dir / JUPYTER_FILE}:11: `set_hmac_sha1` comes with the set-misc module" in errors[0]
    assert "set PROXY_FLAVOR=openresty" in errors[0]
    label = {"label": f"{PROJECT_LABEL}={project.name}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.networks.list(filters=label) == []


def test_under_stock_nginx_a_watched_save_of_a_project_file_is_reloaded_too(project, docker_client):
    shutil.copytree(FIXTURES / "eb-al1", project.dir, dirs_exist_ok=True)
    result = project.run("up", "-d")
    assert "proxy: stock nginx (" in result.stdout
    proxy = sidecar(docker_client, project)
    started = (proxy.id, proxy.attrs["State"]["StartedAt"])
    watch = project.start("watch")
    try:
        watch.wait_for_line("watching ")
        mark = watch.mark()
        path = project.dir / JUPYTER_FILE
        path.write_text(path.read_text().replace("    location / {", "    add_header X-Saved yes always;\n"
                                                                     "    location / {", 1))
        watch.wait_for_line("checked and reloaded", after=mark)
        assert httpx.get(f"{project.jupyter_url}/api/status", trust_env=False).headers["x-saved"] == "yes"
        code, dump = nginx_dump(proxy)
        assert code == 0 and "# configuration file /etc/nginx/sites-enabled/" \
                              "elasticbeanstalk-nginx-jupyter-proxy.conf:" in dump and "X-Saved yes" in dump, dump
        proxy.reload()
        assert (proxy.id, proxy.attrs["State"]["StartedAt"]) == started
    finally:
        watch.stop()
