"""DNS rebinding, replayed as an attacker's page would, against the real engine, nginx and Jupyter.

A page on evil.example re-points its name at 127.0.0.1 after loading: the browser then sends
`Host: evil.example:<port>` to the stack. It must get no token, no cookie and no kernel, with
devstack's own proxy (which refuses the name) and behind a project's own EB files loaded unchanged
(where Jupyter's own Host check holds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from conftest import _remove_by_label, make_project
from helpers import login, start_kernel, xsrf_headers

pytestmark = pytest.mark.engine

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVIL = "evil.example"


def as_evil(method: str, url: str, port: int, **kwargs) -> httpx.Response:
    return httpx.request(method, url, headers={"Host": f"{EVIL}:{port}", **kwargs.pop("headers", {})},
                         trust_env=False, follow_redirects=False, **kwargs)


def kernel_ids(client: httpx.Client, jupyter_url: str) -> set[str]:
    return {kernel["id"] for kernel in client.get(f"{jupyter_url}/api/kernels").json()}


def assert_no_token_no_cookie(response: httpx.Response, token: str) -> None:
    assert "set-cookie" not in response.headers
    assert token not in response.headers.get("location", "") and token not in response.text


def test_the_proxy_refuses_a_foreign_host_at_login(running_stack):
    token = running_stack.secret("jupyter_token").strip()
    response = as_evil("GET", f"http://127.0.0.1:{running_stack.sifu_port}/login", running_stack.sifu_port)
    assert response.status_code == 421
    assert_no_token_no_cookie(response, token)


def test_a_foreign_host_starts_no_kernel_even_with_the_real_cookie_and_token(running_stack):
    token = running_stack.secret("jupyter_token").strip()
    client = login(running_stack.sifu_url)
    before = kernel_ids(client, running_stack.jupyter_url)
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    response = as_evil("POST", f"http://127.0.0.1:{running_stack.jupyter_port}/api/kernels",
                       running_stack.jupyter_port, json={"name": "python3"},
                       headers={"Cookie": cookies, "Authorization": f"token {token}", **xsrf_headers(client)})
    assert response.status_code == 421
    assert kernel_ids(client, running_stack.jupyter_url) == before
    # The same request under the stack's own name is a user's, and works.
    kernel = start_kernel(client, running_stack.jupyter_url)
    assert kernel in kernel_ids(client, running_stack.jupyter_url)
    client.delete(f"{running_stack.jupyter_url}/api/kernels/{kernel}", headers=xsrf_headers(client))


def test_login_under_another_loopback_name_goes_through_the_public_name(running_stack):
    """127.0.0.1 is not the name the stack is shown under (localhost): Sifu sends the browser to its
    public login first, so the cookie is set for the site the token goes to."""
    response = httpx.get(f"http://127.0.0.1:{running_stack.sifu_port}/login?next=/tree", trust_env=False)
    assert response.status_code == 302 and "set-cookie" not in response.headers
    assert response.headers["location"] == f"http://localhost:{running_stack.sifu_port}/login?next=%2Ftree"
    assert login(f"http://127.0.0.1:{running_stack.sifu_port}").get(
        f"{running_stack.jupyter_url}/api/status").status_code == 200


@pytest.fixture(scope="module")
def eb_stack(tmp_path_factory, docker_client):
    """A stack behind the project's own EB files (production's shape), which check no Host."""
    made = make_project(tmp_path_factory.mktemp("eb-host"))
    shutil.copytree(FIXTURES / "eb-al1", made.dir, dirs_exist_ok=True)
    made.up_output = made.run("up", "-d").stdout
    yield made
    made.run("down", check=False, timeout=120)
    _remove_by_label(docker_client, made.name)


def test_behind_the_projects_own_files_the_lint_says_they_do_not_check_the_host(eb_stack):
    sifu_file = eb_stack.dir / ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-sifu-proxy.conf"
    assert f"{sifu_file}:6: this server answers to any Host header" in eb_stack.up_output


def test_behind_the_projects_own_files_jupyter_and_sifu_still_refuse_a_foreign_host(eb_stack):
    token = eb_stack.secret("jupyter_token").strip()
    # The project's file lets the name through to Sifu: it sends it to the public login, no cookie, no token.
    response = as_evil("GET", f"http://127.0.0.1:{eb_stack.sifu_port}/login", eb_stack.sifu_port)
    assert response.status_code == 302
    assert response.headers["location"].startswith(f"http://localhost:{eb_stack.sifu_port}/login")
    assert_no_token_no_cookie(response, token)
    # And to Jupyter: its own Host check refuses the kernel, with the real cookie and token.
    client = login(eb_stack.sifu_url)
    before = kernel_ids(client, eb_stack.jupyter_url)
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    response = as_evil("POST", f"http://127.0.0.1:{eb_stack.jupyter_port}/api/kernels", eb_stack.jupyter_port,
                       json={"name": "python3"},
                       headers={"Cookie": cookies, "Authorization": f"token {token}", **xsrf_headers(client)})
    assert response.status_code == 403
    assert kernel_ids(client, eb_stack.jupyter_url) == before
    kernel = start_kernel(client, eb_stack.jupyter_url)
    client.delete(f"{eb_stack.jupyter_url}/api/kernels/{kernel}", headers=xsrf_headers(client))
