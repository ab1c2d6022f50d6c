from pathlib import Path

from devstack.docker.engine import ContainerInfo, ImageInfo
from devstack.reconcile.plan import plan_image, plan_service
from devstack.settings import load_settings
from devstack.spec import LABEL_CONFIG_HASH, LABEL_CONTEXT_HASH, load_stack


def spec_for(tmp_path: Path, **environ):
    return load_stack(load_settings(tmp_path, environ=environ), (1000, 1000))


def container(labels, state="running"):
    return ContainerInfo(id="c1", name="x", project="p", service="notebook", state=state, status=state,
                         image_id="sha256:1", labels=labels)


def test_image_plan(tmp_path):
    image = spec_for(tmp_path).image("base")
    assert plan_image(image, "h1", None).verb == "build"
    assert plan_image(image, "h1", ImageInfo("i", (), {LABEL_CONTEXT_HASH: "h0"}, None)).reason.startswith(
        "its build context")
    assert plan_image(image, "h1", ImageInfo("i", (), {LABEL_CONTEXT_HASH: "h1"}, None)) is None
    assert plan_image(image, "h1", ImageInfo("i", (), {LABEL_CONTEXT_HASH: "h1"}, None), force=True).verb == "build"


def test_service_plan_reaches_a_steady_state(tmp_path):
    service = spec_for(tmp_path).service("notebook")
    desired = service.config_hash("sha256:1", "secrets")
    assert plan_service(service, desired, None).verb == "create"
    assert plan_service(service, desired, container({LABEL_CONFIG_HASH: "old"})).verb == "recreate"
    assert plan_service(service, desired, container({LABEL_CONFIG_HASH: desired}, state="exited")).verb == "start"
    assert plan_service(service, desired, container({LABEL_CONFIG_HASH: desired})) is None


def test_config_hash_follows_what_matters(tmp_path):
    a = spec_for(tmp_path).service("notebook")
    b = spec_for(tmp_path, SIFU_PORT="4334").service("notebook")
    assert a.config_hash("img", "s") == spec_for(tmp_path).service("notebook").config_hash("img", "s")
    assert a.config_hash("img", "s") != a.config_hash("img2", "s")  # rebuilt image
    assert a.config_hash("img", "s") != a.config_hash("img", "s2")  # rotated secret
    assert a.config_hash("img", "s") != b.config_hash("img", "s")  # environment changed


def test_secrets_never_reach_the_container_environment(tmp_path):
    (tmp_path / ".env").write_text("DEPLOYMENT_TOKEN=ghp_canary\nJUPYTER_TOKEN=jt_canary\nOTHER=1\n")
    env = dict(spec_for(tmp_path).service("notebook").environment)
    assert "DEPLOYMENT_TOKEN" not in env and "JUPYTER_TOKEN" not in env and env["OTHER"] == "1"


def test_proxy_publishes_on_bind_address_only(tmp_path):
    ports = spec_for(tmp_path, BIND_ADDRESS="127.0.0.1").service("proxy").ports
    assert {(p.host_ip, p.host_port, p.container_port) for p in ports} == {
        ("127.0.0.1", 3334, 3334), ("127.0.0.1", 3335, 3335)}


def test_sifu_src_is_mounted_read_only_over_the_images_sifu(tmp_path):
    (tmp_path / "sifu").mkdir()
    mounts = spec_for(tmp_path, SIFU_SRC="sifu").service("notebook").mounts
    assert [(m.source, m.target, m.read_only) for m in mounts if m.target == "/opt/sifu"] == [
        ((tmp_path / "sifu").resolve(), "/opt/sifu", True)]
    assert all(m.target != "/opt/sifu" for m in spec_for(tmp_path).service("notebook").mounts)


def test_proxy_templates_setting_chooses_the_templates_folder(tmp_path):
    assert spec_for(tmp_path, PROXY_TEMPLATES="mine").proxy.server_templates == (tmp_path / "mine").resolve()
    assert (spec_for(tmp_path).proxy.server_templates / "nginx.conf.j2").is_file()  # the bundled ones


def test_kernel_idle_wait_must_be_a_number_of_seconds(tmp_path):
    import pytest

    from devstack.errors import ConfigError

    assert load_settings(tmp_path, environ={"KERNEL_IDLE_WAIT": "2.5"}).kernel_idle_wait == 2.5
    for bad in ("soon", "-1"):
        with pytest.raises(ConfigError, match="KERNEL_IDLE_WAIT"):
            load_settings(tmp_path, environ={"KERNEL_IDLE_WAIT": bad})


def test_people_are_sent_to_the_host_edx_shares_a_site_with(tmp_path):
    def public(**environ):
        spec = spec_for(tmp_path, **environ)
        return spec.public_host, spec.probe_host

    assert public() == ("localhost", "127.0.0.1")  # EDX_HOSTNAME=localhost:8000 by default
    assert public(EDX_HOSTNAME="127.0.0.1:8000") == ("127.0.0.1", "127.0.0.1")
    assert public(BIND_ADDRESS="0.0.0.0") == ("localhost", "127.0.0.1")
    assert public(EDX_HOSTNAME="lms.example.test:80") == ("127.0.0.1", "127.0.0.1")
    assert public(BIND_ADDRESS="10.1.2.3") == ("10.1.2.3", "10.1.2.3")  # localhost does not reach it
    assert spec_for(tmp_path).urls()["login"] == "http://localhost:3334/login"
