"""INSTANCES=2 behind the real haproxy, in front of real nginx proxies and real Jupyter: sticky sessions
spread over the instances, the shared notebooks folder, an instance taken down and brought back, and
what breaks without stickiness (as on EB), which the lint says."""

from __future__ import annotations

import json
import shutil
from contextlib import closing
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import NGINX_IMAGE, PROJECT_LABEL, _remove_by_label, free_port, make_project
from helpers import RequestLoop, login, run_cell, save_notebook, start_kernel, wait_for, xsrf_headers

from devstack.balancer.health import WINDOW_SECONDS, parse_healthd, read_healthd
from devstack.balancer.stats import parse_stats
from devstack.settings import load_settings
from devstack.spec import load_stack

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOSTNAME = "import socket; socket.gethostname()"


def two_instances(base: Path, fixture: str):
    made = make_project(base, INSTANCES="2")
    shutil.copytree(FIXTURES / fixture, made.dir, dirs_exist_ok=True)
    return made


@pytest.fixture(scope="module")
def sticky(tmp_path_factory, docker_client):
    made = two_instances(tmp_path_factory.mktemp("lb"), "lb-sticky")
    made.write_env(HTTP_PORT=str(free_port()))  # the load balancer's listener to the instances' port 80
    made.up = made.run("up", "-d")
    yield made
    made.run("down", check=False, timeout=120)
    _remove_by_label(docker_client, made.name)


def hostnames(docker_client, project) -> dict[str, str]:
    """Each instance's notebook container by the hostname a cell reports (its short ID)."""
    return {docker_client.containers.get(f"{project.name}-notebook-{k}").id[:12]: f"i{k}" for k in (1, 2)}


def lb_health(docker_client, project) -> dict[str, str]:
    """The load balancer's view of each instance, read from haproxy's own statistics."""
    lb = docker_client.containers.get(f"{project.name}-lb")
    binding = lb.attrs["NetworkSettings"]["Ports"]["8404/tcp"][0]
    text = httpx.get(f"http://127.0.0.1:{binding['HostPort']}/stats;csv", timeout=2, trust_env=False).text
    spec = load_stack(load_settings(project.dir, environ={}))
    return {name: health.status for name, health in parse_stats(text, spec.balancer).items()}


def session_on(project, instance: str, tries: int = 8) -> httpx.Client:
    """A browser-like session the load balancer keeps on `instance` (sessions alternate between them)."""
    for _ in range(tries):
        client = login(project.sifu_url)
        if client.cookies.get("AWSELB") == instance:
            return client
        client.close()
    raise AssertionError(f"no session landed on {instance} in {tries} logins")


def test_sticky_sessions_run_their_kernels_over_the_websocket_spread_over_both_instances(sticky, docker_client):
    assert "load load balancer configuration lb" in sticky.up.stdout
    assert "stickiness is off" not in sticky.up.stdout + sticky.up.stderr  # declared on: no lint warning
    by_host = hostnames(docker_client, sticky)
    served = []
    for _ in range(5):
        with closing(login(sticky.sifu_url)) as client:
            instance = client.cookies.get("AWSELB")
            # The kernel is started, and its cell run over the websocket, on the instance the cookie names.
            host = run_cell(client, sticky.jupyter_url, HOSTNAME).strip("'")
            assert by_host[host] == instance
            served.append(instance)
    assert set(served) == {"i1", "i2"}, served


def test_http_port_reaches_each_instances_default_server_through_the_load_balancer(sticky):
    url = f"http://127.0.0.1:{sticky.settings['HTTP_PORT']}"
    assert json.loads(sticky.run("status", "--json").stdout)["urls"]["http"] == f"http://localhost:{url[17:]}/"
    instances = set()
    for _ in range(4):  # no cookie yet: the load balancer takes the instances in turn
        answer = httpx.get(f"{url}/health", trust_env=False, timeout=5)
        assert answer.status_code == 200  # the default server proxies to the container's first port: Sifu's
        instances.add(answer.cookies.get("AWSELB"))  # the undeclared listener is EB's default: HTTP, sticky
    assert instances == {"i1", "i2"}
    # nginx's default server, not Sifu, refuses a name the stack is not served under.
    assert httpx.get(f"{url}/health", headers={"Host": "rebound.example"}, trust_env=False).status_code == 421


def test_a_notebook_saved_through_one_instance_is_listed_through_the_other(sticky):
    name = f"shared-{uuid.uuid4().hex[:6]}.ipynb"
    with closing(session_on(sticky, "i1")) as first:
        save_notebook(first, sticky.jupyter_url, name)
    with closing(session_on(sticky, "i2")) as second:
        listed = second.get(f"{sticky.jupyter_url}/api/contents").json()["content"]
    assert name in [entry["name"] for entry in listed]
    assert (sticky.notebooks / name).is_file()  # the EFS stand-in: one folder for every instance


def test_a_dead_instance_leaves_the_rotation_and_comes_back_when_started(sticky, docker_client):
    assert lb_health(docker_client, sticky) == {"i1": "UP", "i2": "UP"}
    docker_client.containers.get(f"{sticky.name}-notebook-2").kill()
    # Two failed checks 5 s apart (the fixture's UnhealthyThreshold and Interval) take it out.
    wait_for(lambda: lb_health(docker_client, sticky)["i2"] == "DOWN", timeout=30, what="i2 to leave the rotation")
    # What EB's enhanced health shows, in `status --json`: the load balancer's view, the last minute's requests.
    status = json.loads(sticky.run("status", "--json").stdout)
    assert [i["load_balancer"]["status"] for i in status["instances"]] == ["UP", "DOWN"]
    assert status["environment"]["requests"] > 0 and status["instances"][0]["shares"]["2xx"] > 0
    answers = []
    with closing(session_on(sticky, "i1")) as client:
        client.cookies.set("AWSELB", "i2")  # a browser that was on the dead instance: sent to the live one
        for _ in range(10):
            answers.append(client.get(f"{sticky.sifu_url}/health").status_code)
            answers.append(client.get(f"{sticky.jupyter_url}/api/status").status_code)
            answers.append(httpx.get(f"{sticky.sifu_url}/health", trust_env=False).status_code)
    assert answers == [200] * 30, answers
    # QA brings it back: it returns to the rotation once HealthyThreshold checks pass.
    started = sticky.run("start", "notebook-2")
    assert f"start {sticky.name}-notebook-2" in started.stdout
    wait_for(lambda: lb_health(docker_client, sticky)["i2"] == "UP", timeout=60, what="i2 back in the rotation")
    with closing(session_on(sticky, "i2")) as client:
        host = run_cell(client, sticky.jupyter_url, HOSTNAME).strip("'")
        assert hostnames(docker_client, sticky)[host] == "i2"


def test_a_rolling_deployment_answers_every_request(sticky, docker_client):
    """A setting that recreates every notebook container: one instance at a time leaves the rotation, is
    replaced, and comes back before the next; a browser's requests meanwhile all get their answer."""
    before = {k: docker_client.containers.get(f"{sticky.name}-notebook-{k}").id for k in (1, 2)}
    sticky.write_env(DEPLOY_NONCE=uuid.uuid4().hex[:6])  # reaches the notebooks' environment: a recreate
    with closing(login(sticky.sifu_url)) as client, \
            RequestLoop(client, [f"{sticky.sifu_url}/health", f"{sticky.jupyter_url}/api/status"]) as loop:
        time.sleep(0.5)
        up = sticky.start("up", "-d")
        up.wait_for_line("batch 1 of 2: instance 1 out of the rotation", timeout=300)
        # `status` beside the running `up -d` shows where the deployment is, as EB's console does.
        deployment = json.loads(sticky.run("status", "--json").stdout)["deployment"]
        assert up.process.wait(timeout=300) == 0, up.output()
        time.sleep(0.5)
    assert deployment is not None and (deployment["policy"], deployment["batches"]) == ("Rolling", 2), deployment
    output = up.output()
    assert output.index("batch 1 of 2 in service") < output.index("batch 2 of 2: instance 2 out")
    assert "batch 2 of 2 in service (instance 2): deployment complete" in output
    assert json.loads(sticky.run("status", "--json").stdout)["deployment"] is None  # `up -d` ended: nothing under way
    assert all(docker_client.containers.get(f"{sticky.name}-notebook-{k}").id != before[k] for k in (1, 2))
    assert loop.sent > 50 and loop.failures == [], loop.failures[:5]
    # Back in service (haproxy counts its checks up to the full "UP" meanwhile).
    wait_for(lambda: lb_health(docker_client, sticky) == {"i1": "UP", "i2": "UP"}, timeout=30, what="both UP")


def test_one_instance_is_replaced_by_the_staging_flip_answering_every_request(project, docker_client):
    project.run("up", "-d")
    before = docker_client.containers.get(f"{project.name}-notebook").id
    project.write_env(DEPLOY_NONCE="flip")
    with closing(login(project.sifu_url)) as client, \
            RequestLoop(client, [f"{project.sifu_url}/health", f"{project.jupyter_url}/api/status"]) as loop:
        time.sleep(0.5)
        up = project.run("up", "-d")
        time.sleep(0.5)
    assert "(staging: the new container beside the old one)" in up.stdout
    assert docker_client.containers.get(f"{project.name}-notebook").id != before
    assert loop.sent > 50 and loop.failures == [], loop.failures[:5]
    assert not docker_client.containers.list(all=True, filters={"name": f"{project.name}-notebook-previous"})


def test_without_stickiness_a_kernel_is_not_found_on_the_other_instance_and_the_lint_said_so(
        tmp_path, docker_client):
    made = two_instances(tmp_path, "lb-sticky")
    config = made.dir / ".ebextensions" / "lb.config"
    config.write_text(config.read_text().replace("Stickiness Policy: true", "Stickiness Policy: false"))
    try:
        up = made.run("up", "-d")
        output = up.stdout + up.stderr
        assert f"{config}:11: stickiness is off (as declared) with 2 instances" in output
        assert output.count("stickiness is off") == 1 and "unknown to the others" in output
        with closing(login(made.sifu_url)) as client:
            assert "AWSELB" not in client.cookies
            kernel = start_kernel(client, made.jupyter_url)
            # Each request goes to the next instance: the one that did not start the kernel does not know it.
            codes = [client.get(f"{made.jupyter_url}/api/kernels/{kernel}").status_code for _ in range(6)]
            assert set(codes) == {200, 404}, codes
            for _ in range(4):  # delete it where it lives
                if client.delete(f"{made.jupyter_url}/api/kernels/{kernel}",
                                 headers=xsrf_headers(client)).status_code == 204:
                    break
                time.sleep(0.1)
    finally:
        made.run("down", check=False, timeout=120)
        _remove_by_label(docker_client, made.name)


def test_the_health_view_reads_only_the_last_minute_of_the_healthd_logs_in_the_proxy(docker_client):
    """The proxy's healthd files grow with every request for an hour: what devstack reads of them each
    snapshot is the last minute only (its memory stayed flat in bench/soak.py once it did), and from the
    last two hourly files (the minute may span two), in the real proxy image's shell and awk."""
    now = time.time()
    line = lambda at, uri: f"{at:.3f}\"{uri}\"200\"0.001\"0.001\"-"  # noqa: E731
    files = {"application.log.2026-12-02-00": [line(now - 10, "/third-file")],  # not among the last two
             "application.log.2026-12-02-01": [line(now - 3 * WINDOW_SECONDS, "/old"), line(now - 20, "/new-1")],
             "application.log.2026-12-02-02": [*(line(now - 3600 + i, "/older") for i in range(500)), "cut",
                                               line(now - 2, "/new-2")]}
    write = "; ".join(f"printf '%s\\n' {' '.join(repr(l) for l in lines)} > /var/log/nginx/healthd/{name}"
                      for name, lines in files.items())
    output = docker_client.containers.run(
        NGINX_IMAGE, ["sh", "-c", f"mkdir -p /var/log/nginx/healthd; {write}; {read_healthd(now - WINDOW_SECONDS)}"],
        entrypoint=[], remove=True, labels={PROJECT_LABEL: f"healthd{uuid.uuid4().hex[:6]}"}).decode()
    assert [r.at for r in parse_healthd(output.splitlines())] == [round(now - 20, 3), round(now - 2, 3)], output
    assert "/old" not in output and "/older" not in output and "/third-file" not in output
