"""DNS rebinding: the names the stack answers to, the proxy's Host gate, the stand-in's URLs and
the cookie's expiry. The stand-in runs for real, as a process on loopback."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack import assets
from devstack.cookie import COOKIE_NAME, sign_cookie
from devstack.errors import ConfigError
from devstack.hosts import host_pattern, is_loopback, url_host
from devstack.proxy.render import render_proxy_config
from devstack.settings import load_settings
from devstack.spec import load_stack

NOTEBOOK = assets.compose_dir() / "notebook"


def image_cookie_module():
    spec = importlib.util.spec_from_file_location("sifu_cookie", NOTEBOOK / "lib" / "sifu_cookie.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spec_for(tmp_path: Path, **environ: str):
    return load_stack(load_settings(tmp_path, environ=environ), (1000, 1000))


def test_the_stack_answers_to_loopback_names_edx_bind_address_and_allowed_hosts(tmp_path):
    assert spec_for(tmp_path).proxy.hostnames == ("localhost", "127.0.0.1", "::1")
    spec = spec_for(tmp_path, EDX_HOSTNAME="lms.local.test:8000", BIND_ADDRESS="192.0.2.7",
                    ALLOWED_HOSTS="Notebook.Local.Test, 192.0.2.8")
    assert spec.proxy.hostnames == ("localhost", "127.0.0.1", "::1", "lms.local.test", "192.0.2.7",
                                    "notebook.local.test", "192.0.2.8")
    # 0.0.0.0 is an address to bind, not a name anyone is served under.
    assert "0.0.0.0" not in spec_for(tmp_path, BIND_ADDRESS="0.0.0.0").proxy.hostnames
    environment = dict(spec.service("notebook").environment)
    assert environment["DEVSTACK_HOSTNAMES"] == ",".join(spec.proxy.hostnames)


def test_the_public_urls_the_container_gets_are_the_ones_devstack_shows(tmp_path):
    spec = spec_for(tmp_path, SIFU_PORT="5334", JUPYTER_PORT="5335")
    environment = dict(spec.service("notebook").environment)
    assert environment["SIFU_PUBLIC_URL"] == "http://localhost:5334" == spec.urls()["sifu"].rstrip("/")
    assert environment["JUPYTER_PUBLIC_URL"] == "http://localhost:5335" == spec.urls()["jupyter"].rstrip("/")


def test_a_bad_allowed_host_names_the_key_and_its_source(tmp_path):
    (tmp_path / ".env").write_text("ALLOWED_HOSTS=ok.test,evil.example:80\n")
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, environ={})
    assert str(error.value).startswith(f"{tmp_path / '.env'}:1: ALLOWED_HOSTS=")
    assert "holds 'evil.example:80', which is not a host name" in str(error.value)


def test_host_pattern_matches_exactly_the_names():
    pattern = re.compile(host_pattern(("localhost", "127.0.0.1", "::1", "lms.local.test")), re.IGNORECASE)
    for host in ("localhost", "LOCALHOST", "127.0.0.1", "[::1]", "lms.local.test"):
        assert pattern.search(host), host
    for host in ("evil.example", "localhost.evil.example", "127.0.0.10", "127x0x0x1", "lmsxlocal.test", ""):
        assert not pattern.search(host), host


def test_both_bundled_servers_refuse_other_hosts_before_proxying(tmp_path):
    rendered = render_proxy_config(spec_for(tmp_path, ALLOWED_HOSTS="nb.test").proxy, "192.0.2.10").files
    gate = 'if ($host !~* "^(localhost|127\\.0\\.0\\.1|\\[::1\\]|nb\\.test)$") {\n        return 421;'
    for name in ("sites-enabled/sifu.conf", "sites-enabled/jupyter.conf"):
        text = rendered[name]
        assert gate in text, name
        assert text.index(gate) < text.index("proxy_pass"), name


def test_hosts_rules():
    assert url_host("::1") == url_host("[::1]") == "[::1]" and url_host("localhost") == "localhost"
    assert is_loopback("localhost") and is_loopback("[::1]") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("evil.example")


# -- the cookie -------------------------------------------------------------------------


def test_a_cookie_signed_in_1970_is_refused_and_a_fresh_one_accepted():
    image_side = image_cookie_module()
    assert image_side.COOKIE_NAME == COOKIE_NAME  # the image's copy of the one name
    assert image_side.verify("s3cret", sign_cookie("s3cret", "dev", issued_at=0)) is None
    assert image_side.verify("s3cret", sign_cookie("s3cret", "dev")) == "dev"
    now = time.time()
    max_age = image_side.MAX_AGE_SECONDS
    assert image_side.verify("s3cret", sign_cookie("s3cret", "dev", issued_at=now - max_age + 60)) == "dev"
    assert image_side.verify("s3cret", sign_cookie("s3cret", "dev", issued_at=now - max_age - 60)) is None
    # Issued a day ahead of this clock: not a clock's skew, a forgery's.
    assert image_side.verify("s3cret", sign_cookie("s3cret", "dev", issued_at=now + 86400)) is None


# -- the stand-in, running ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The bundled Sifu stand-in on loopback, configured as devstack configures it."""
    folder = tmp_path_factory.mktemp("standin")
    (folder / "sifu_secret").write_text("cookie-secret\n")
    (folder / "jupyter_token").write_text("the-jupyter-token\n")
    port = free_port()
    env = {"SIFU_LISTEN_PORT": str(port), "NOTEBOOK_LISTEN_ADDRESS": "127.0.0.1",
           "SIFU_SECRET_FILE": str(folder / "sifu_secret"), "JUPYTER_TOKEN_FILE": str(folder / "jupyter_token"),
           "SIFU_PUBLIC_URL": "http://localhost:5334", "JUPYTER_PUBLIC_URL": "http://localhost:5335",
           "PYTHONPATH": str(NOTEBOOK / "lib")}
    process = subprocess.Popen([sys.executable, str(NOTEBOOK / "sifu" / "app.py")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/health", trust_env=False)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"the stand-in did not start: {process.communicate()[0]}")
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def login_as(url: str, host: str, path: str = "/login?next=/notebooks/a.ipynb") -> httpx.Response:
    return httpx.get(url + path, headers={"Host": host}, trust_env=False)


@pytest.mark.parametrize("host", ["evil.example:5334", "evil.example", "127.0.0.1:5334", "localhost.evil.example"])
def test_the_standin_sends_other_names_to_its_public_login_without_cookie_or_token(standin, host):
    response = login_as(standin, host)
    assert response.status_code == 302
    assert "set-cookie" not in response.headers
    assert "the-jupyter-token" not in response.headers["location"] + response.text
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == ("http", "localhost:5334", "/login")
    assert parse_qs(location.query) == {"next": ["/notebooks/a.ipynb"]}


def test_the_standin_logs_in_under_its_public_name_with_an_expiring_cookie(standin):
    response = login_as(standin, "localhost:5334")
    assert response.status_code == 302
    assert response.headers["location"] == "http://localhost:5335/notebooks/a.ipynb?token=the-jupyter-token"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("JUPYTER_AUTHORIZATION=v1.developer.")
    assert f"Max-Age={image_cookie_module().MAX_AGE_SECONDS}" in cookie and "HttpOnly" in cookie


def test_the_standin_root_redirects_to_the_public_login_whatever_the_host(standin):
    response = login_as(standin, "evil.example:5334", path="/")
    assert response.headers["location"] == "http://localhost:5334/login"
