"""INSTANCES=N: the description (N instances and a load balancer), the load balancer's declarations read
from .ebextensions, its rendered haproxy.cfg, and the plan against an in-memory engine."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from memory_engine import MemoryEngine

from rich.console import Console

from devstack.balancer.render import render_haproxy_config
from devstack.events import PHASE_BESIDE, PHASE_COMPLETE, PHASE_IN, PHASE_OUT, DeploymentProgress
from devstack.reconcile.deploy import Batch, batch_of
from devstack.errors import ConfigError
from devstack.reconcile import Stack
from devstack.settings import load_settings
from devstack.snapshot import LiveFacts, StackStatus
from devstack.spec import LABEL_PROJECT, LABEL_SERVICE, InstanceSpec, load_stack
from devstack.spec.balancer import read_balancer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NGINX, HAPROXY = "nginx:stable", "haproxy:2.8"


def spec_for(folder: Path, **environ: str):
    return load_stack(load_settings(folder, environ=environ), (1000, 1000))


def with_fixture(folder: Path, name: str) -> Path:
    shutil.copytree(FIXTURES / name, folder, dirs_exist_ok=True)
    return folder


def test_one_instance_keeps_todays_names_and_has_no_load_balancer(project):
    spec = spec_for(project)
    assert [s.container_name for s in spec.services] == ["demo-notebook", "demo-proxy"]
    assert spec.balancer is None and len(spec.instance_list) == 1


def test_n_instances_share_the_notebooks_folder_behind_one_load_balancer(project):
    spec = spec_for(project, INSTANCES="2", EXTRA_PORTS="8888:8888")
    assert [s.container_name for s in spec.services] == [
        "demo-notebook-1", "demo-proxy-1", "demo-notebook-2", "demo-proxy-2", "demo-lb"]
    notebooks = [spec.service(f"notebook-{k}") for k in (1, 2)]
    assert all((project / "notebooks").resolve() in [m.source for m in n.mounts] for n in notebooks)
    # Only the load balancer publishes the stack's ports (and haproxy's statistics, on loopback).
    lb = spec.service("lb")
    assert {(p.host_ip, p.host_port, p.container_port) for p in lb.ports} == {
        ("127.0.0.1", 43334, 3334), ("127.0.0.1", 43335, 3335), ("127.0.0.1", 0, 8404),
        ("127.0.0.1", 0, 9999)}
    assert spec.service("proxy-1").ports == spec.service("proxy-2").ports == ()
    assert [p.host_port for p in notebooks[0].ports] == [8888] and notebooks[1].ports == ()  # published once
    # Each proxy has its own configuration generations; "notebook" still names the first instance.
    assert spec.instance_list[0].proxy_spec.config_dir != spec.instance_list[1].proxy_spec.config_dir
    assert spec.service("notebook").container_name == "demo-notebook-1"
    assert {p.service for p in spec.host_ports if p.setting in ("SIFU_PORT", "JUPYTER_PORT")} == {"lb"}


def test_instances_need_the_bridge_network(project):
    with pytest.raises(ConfigError, match="INSTANCES=2 with NETWORK_MODE=host"):
        spec_for(project, INSTANCES="2", NETWORK_MODE="host")
    with pytest.raises(ConfigError, match="INSTANCES"):
        load_settings(project, environ={"INSTANCES": "0"})


def test_productions_listeners_are_tcp_and_nothing_is_sticky(project):
    declared = read_balancer(with_fixture(project, "lb-tcp"))
    assert [(l.port, l.protocol, l.instance_port) for l in declared.listeners] == [
        (80, "TCP", 80), (3334, "TCP", 3334), (3335, "TCP", 3335)]
    assert declared.listeners[2].where.line == 8 and declared.listeners[2].where.path.name == "resources.config"
    assert not declared.stickiness.enabled
    assert (declared.health.interval, declared.health.timeout, declared.health.healthy,
            declared.health.unhealthy, declared.health.protocol) == (10, 5, 3, 5, "TCP")  # EB's defaults
    balancer = spec_for(project, INSTANCES="2").balancer
    assert [(l.port, l.protocol) for l in balancer.listeners] == [(3334, "TCP"), (3335, "TCP")]
    config = render_haproxy_config(balancer)
    assert "mode tcp" in config and "mode http\n    option httplog" not in config and "cookie" not in config
    assert "server i2 demo-proxy-2:3334 check port 3334" in config and "track sifu/i2" in config


def test_sticky_http_listeners_and_the_health_check_as_declared(project):
    declared = read_balancer(with_fixture(project, "lb-sticky"))
    assert [(l.port, l.protocol) for l in declared.listeners] == [(3334, "HTTP"), (3335, "HTTP")]
    assert declared.stickiness.enabled and declared.stickiness.cookie == "AWSELB"
    assert declared.stickiness.where.line == 11
    assert (declared.health.protocol, declared.health.path, declared.health.interval,
            declared.health.unhealthy) == ("HTTP", "/health", 5, 2)
    config = render_haproxy_config(spec_for(project, INSTANCES="2").balancer)
    assert "cookie AWSELB insert indirect nocache" in config
    assert "server i1 demo-proxy-1:3335 track sifu/i1 cookie i1" in config
    assert "http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost" in config
    assert "default-server inter 5s fall 2 rise 2" in config and "timeout check 2s" in config


def test_option_settings_in_the_list_form_and_the_albs_stickiness(project):
    (project / ".ebextensions").mkdir()
    (project / ".ebextensions" / "a.config").write_text(
        "option_settings:\n"
        "  - namespace: aws:elasticbeanstalk:environment:process:default\n"
        "    option_name: StickinessEnabled\n"
        "    value: true\n"
        "  - namespace: aws:elasticbeanstalk:command\n"
        "    option_name: BatchSize\n"
        "    value: 50\n"
        "  - namespace: aws:elb:healthcheck\n"
        "    option_name: Interval\n"
        "    value: 1\n")
    declared = read_balancer(project)
    assert declared.stickiness.enabled and declared.stickiness.cookie == "AWSALB"
    assert declared.stickiness.where.line == 3  # the option_name's line, as for environment properties
    assert declared.deployment.per_batch(4) == 2  # BatchSize alone is a percentage, as on EB
    assert declared.health.interval == 10  # 1 s is below EB's minimum: its default, and a problem named
    assert any(p.line == 9 and "Interval" in p.what for p in declared.problems)


def test_a_new_environment_of_two_instances_reaches_a_steady_state(project):
    engine = MemoryEngine({NGINX: {}, HAPROXY: {}})
    stack = Stack(load_settings(project, environ={"INSTANCES": "2"}), connect=lambda: engine)
    stack.converge()
    assert [op for op in engine.ops if op.startswith(("create demo", "haproxy", "start demo"))] == [
        "create demo-notebook-1", "start demo-notebook-1", "create demo-proxy-1", "start demo-proxy-1",
        "create demo-notebook-2", "start demo-notebook-2", "create demo-proxy-2", "start demo-proxy-2",
        "haproxy -c (throwaway)", "create demo-lb", "start demo-lb"]
    assert (project / ".devstack" / "lb" / "haproxy.cfg").is_file()
    assert (project / ".devstack" / "proxy-2" / "current").exists()
    assert not stack.plan()


def test_changing_instances_removes_what_the_stack_no_longer_has_first(project):
    engine = MemoryEngine({NGINX: {}, HAPROXY: {}})
    Stack(load_settings(project, environ={}), connect=lambda: engine).converge()
    engine.add_container("someone-else", {LABEL_PROJECT: "other", LABEL_SERVICE: "notebook"})
    engine.ops.clear()
    two = Stack(load_settings(project, environ={"INSTANCES": "2"}), connect=lambda: engine)
    two.converge()
    assert engine.ops[:2] == ["remove demo-notebook", "remove demo-proxy"]
    assert engine.container("someone-else") is not None
    engine.ops.clear()
    Stack(load_settings(project, environ={}), connect=lambda: engine).converge()
    assert set(engine.ops[:5]) == {"remove demo-notebook-1", "remove demo-proxy-1", "remove demo-notebook-2",
                                   "remove demo-proxy-2", "remove demo-lb"}
    assert {c.name for c in engine.containers("demo")} == {"demo-notebook", "demo-proxy"}


def test_the_lint_names_the_tcp_listener_in_front_of_jupyter_with_several_instances(project):
    from devstack.balancer.lint import lint_balancer

    with_fixture(project, "lb-tcp")
    assert lint_balancer(spec_for(project)) == []  # one instance: nothing to keep sticky
    [finding] = lint_balancer(spec_for(project, INSTANCES="2"))
    assert finding.describe().startswith(f"{project / '.ebextensions' / 'resources.config'}:8: the listener in "
                                         "front of Jupyter (3335) is TCP, with 2 instances")
    assert "unknown to the others" in finding.message and "ListenerProtocol: HTTP" in finding.fix


def test_the_lint_names_stickiness_off_and_is_quiet_when_it_is_on(project, tmp_path):
    from devstack.balancer.lint import lint_balancer

    with_fixture(project, "lb-sticky")
    assert lint_balancer(spec_for(project, INSTANCES="3")) == []
    config = project / ".ebextensions" / "lb.config"
    config.write_text(config.read_text().replace("Stickiness Policy: true", "Stickiness Policy: false"))
    [finding] = lint_balancer(spec_for(project, INSTANCES="3"))
    assert finding.lineno == 11 and "stickiness is off (as declared) with 3 instances" in finding.message
    assert "Stickiness Policy: true" in finding.fix
    other = tmp_path / "bare"
    other.mkdir()
    [finding] = lint_balancer(spec_for(other, INSTANCES="2"))  # nothing declared: EB's default, off
    assert "EB’s default" in finding.message and finding.file == other / ".ebextensions"


def test_one_instance_is_replaced_by_the_staging_flip(project):
    """The new container starts beside the old (renamed), the proxy flips to it by a reload, the old goes."""
    engine = MemoryEngine({NGINX: {}})
    Stack(load_settings(project, environ={}), connect=lambda: engine).converge()
    engine.add_container("demo-proxy-x", {})  # something foreign: never touched
    engine.ops.clear()
    changed = Stack(load_settings(project, environ={"SIFU_COMMAND": "python3 x.py"}), connect=lambda: engine)
    changed.converge()
    ops = engine.ops
    assert ops[:3] == ["rename demo-notebook demo-notebook-previous", "create demo-notebook", "start demo-notebook"]
    # The new one answered, the proxy was reloaded (nginx -t, then the reload) before the old one went.
    assert ops.index("start demo-notebook") < ops.index("exec nginx -t -c /etc/devstack-proxy/gen-2/ng") \
        < ops.index("remove demo-notebook-previous")
    assert not any(op.startswith("stop") for op in ops)
    assert {c.name for c in engine.containers("demo")} == {"demo-notebook", "demo-proxy"}
    assert not changed.plan()


def test_a_notebook_that_publishes_extra_ports_is_replaced_in_place(project):
    engine = MemoryEngine({NGINX: {}})
    Stack(load_settings(project, environ={"EXTRA_PORTS": "48888:8888"}), connect=lambda: engine).converge()
    engine.ops.clear()
    Stack(load_settings(project, environ={"EXTRA_PORTS": "48888:8888", "SIFU_COMMAND": "x"}),
          connect=lambda: engine).converge()
    assert engine.ops[:3] == ["remove demo-notebook", "create demo-notebook", "start demo-notebook"]


def test_a_rolling_deployment_replaces_one_instance_at_a_time(project):
    events = []
    engine = MemoryEngine({NGINX: {}, HAPROXY: {}})
    Stack(load_settings(project, environ={"INSTANCES": "3"}), connect=lambda: engine).converge()
    engine.ops.clear()
    Stack(load_settings(project, environ={"INSTANCES": "3", "SIFU_COMMAND": "x"}), notify=events.append,
          connect=lambda: engine).converge()
    replaced = [op for op in engine.ops if op.startswith(("remove demo-notebook", "start demo-notebook"))]
    assert replaced == ["remove demo-notebook-1", "start demo-notebook-1", "remove demo-notebook-2",
                        "start demo-notebook-2", "remove demo-notebook-3", "start demo-notebook-3"]
    said = [e.message for e in events if "deployment" in e.message]
    assert said[0].startswith("deployment (Rolling, 1 at a time): batch 1 of 3: instance 1 out of the rotation")
    assert "deployment (Rolling): batch 3 of 3 in service (instance 3): deployment complete" in said
    progress = [(e.batch, e.batches, e.instances, e.phase) for e in events if isinstance(e, DeploymentProgress)]
    assert progress == [(1, 3, (1,), PHASE_OUT), (1, 3, (1,), PHASE_IN), (2, 3, (2,), PHASE_OUT),
                        (2, 3, (2,), PHASE_IN), (3, 3, (3,), PHASE_OUT), (3, 3, (3,), PHASE_COMPLETE)]


def declare_deployment(project: Path, **options: str) -> None:
    (project / ".ebextensions").mkdir(exist_ok=True)
    lines = "".join(f"    {key}: {value}\n" for key, value in options.items())
    (project / ".ebextensions" / "deploy.config").write_text(
        f"option_settings:\n  aws:elasticbeanstalk:command:\n{lines}")


def redeploy(project: Path, instances: int) -> tuple[MemoryEngine, list]:
    """A stack of `instances` up, then a setting changed that recreates every notebook container."""
    events: list = []
    engine = MemoryEngine({NGINX: {}, HAPROXY: {}})
    Stack(load_settings(project, environ={"INSTANCES": str(instances)}), connect=lambda: engine).converge()
    engine.ops.clear()
    Stack(load_settings(project, environ={"INSTANCES": str(instances), "SIFU_COMMAND": "x"}), notify=events.append,
          connect=lambda: engine).converge()
    return engine, [e for e in events if isinstance(e, DeploymentProgress)]


def test_batches_follow_the_batch_size_in_instance_order():
    instances = [InstanceSpec(k, f"notebook-{k}", f"proxy-{k}", None) for k in range(1, 6)]
    every = lambda i: True  # noqa: E731
    assert batch_of(instances[2], instances, 2, every) == Batch(2, 3, (instances[2], instances[3]), last=False)
    assert batch_of(instances[4], instances, 2, every) == Batch(3, 3, (instances[4],), last=True)
    # Only instance 2 is replaced: its batch is the deployment's last, and has it alone.
    assert batch_of(instances[1], instances, 2, lambda i: i.number == 2) == Batch(1, 3, (instances[1],), last=True)


def test_a_batch_size_of_two_takes_two_instances_out_together(project):
    declare_deployment(project, BatchSizeType="Fixed", BatchSize="2")
    engine, progress = redeploy(project, 4)
    replaced = [op for op in engine.ops if op.startswith(("remove demo-notebook", "start demo-notebook"))]
    assert replaced == ["remove demo-notebook-1", "start demo-notebook-1", "remove demo-notebook-2",
                        "start demo-notebook-2", "remove demo-notebook-3", "start demo-notebook-3",
                        "remove demo-notebook-4", "start demo-notebook-4"]
    assert [(e.batch, e.batches, e.instances, e.phase) for e in progress] == [
        (1, 2, (1, 2), PHASE_OUT), (1, 2, (1, 2), PHASE_IN), (2, 2, (3, 4), PHASE_OUT), (2, 2, (3, 4), PHASE_COMPLETE)]


def test_immutable_starts_every_new_container_beside_the_old_one_and_keeps_capacity(project):
    declare_deployment(project, DeploymentPolicy="Immutable")
    engine, progress = redeploy(project, 2)
    assert not any(op.startswith("remove demo-notebook-1") and op.endswith("-1") for op in engine.ops)
    for k in (1, 2):  # beside the old one, which goes only after the flip
        assert engine.ops.index(f"rename demo-notebook-{k} demo-notebook-{k}-previous") \
            < engine.ops.index(f"start demo-notebook-{k}") < engine.ops.index(f"remove demo-notebook-{k}-previous")
    assert [(e.policy, e.batch, e.batches, e.instances, e.phase) for e in progress] == [
        ("Immutable", 1, 1, (1, 2), PHASE_BESIDE), ("Immutable", 1, 1, (1, 2), PHASE_COMPLETE)]
    assert {c.name for c in engine.containers("demo")} == {
        "demo-notebook-1", "demo-proxy-1", "demo-notebook-2", "demo-proxy-2", "demo-lb"}


def test_a_deployment_s_progress_reaches_the_live_facts_and_status_json():
    from devstack.ui.live import LiveState
    from devstack.ui.view import render_status, status_to_json

    state = LiveState()
    state.on_event(DeploymentProgress("batch 2 of 3 out", "lb", policy="Rolling", batch=2, batches=3,
                                      instances=(2,), phase=PHASE_OUT))
    facts = LiveFacts.from_json(json.loads(json.dumps(state.facts().to_json())))  # as `status` reads live.json
    status = StackStatus("demo", datetime.now(timezone.utc), (), (), {}, live=facts)
    deployment = status_to_json(status)["deployment"]
    assert {k: deployment[k] for k in ("policy", "batch", "batches", "instances", "phase")} == {
        "policy": "Rolling", "batch": 2, "batches": 3, "instances": [2], "phase": PHASE_OUT}
    console = Console(width=200, record=True)
    console.print(render_status(status))
    assert "deployment: Rolling: batch 2 of 3 (instance 2) out of service since" in console.export_text()


def test_the_runtime_api_refusing_a_command_is_an_error_naming_it():
    import socket
    import threading

    from devstack.balancer.runtime import set_server_state
    from devstack.errors import EngineError

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    answers = iter([b"", b"No such server.\n"])

    def serve() -> None:  # haproxy's runtime API: one command per connection, then it closes
        for answer in (next(answers), next(answers)):
            conn, _ = server.accept()
            conn.recv(1024)
            conn.sendall(answer)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    address = server.getsockname()
    set_server_state(address, "sifu", "i1", "maint")  # accepted: nothing said
    with pytest.raises(EngineError, match="refused `set server sifu/i9 state maint`: No such server"):
        set_server_state(address, "sifu", "i9", "maint")
    server.close()


def test_up_d_writes_what_it_is_doing_for_status_and_clears_it_at_the_end(tmp_path):
    from devstack.snapshot import load_live_facts
    from devstack.ui.live import LiveRecorder

    passed = []
    recorder = LiveRecorder(tmp_path, passed.append)
    event = DeploymentProgress("batch 1 of 2 out", "lb", policy="Rolling", batch=1, batches=2, instances=(1,),
                               phase=PHASE_OUT)
    recorder(event)
    assert passed == [event]  # still printed as before
    facts = load_live_facts(tmp_path)  # what `devstack status` beside it reads
    assert facts is not None and facts.deployment.batch == 1 and facts.activity == "batch 1 of 2 out"
    kept = recorder.close()
    assert load_live_facts(tmp_path) is None and kept.deployment == facts.deployment and not kept.activity
