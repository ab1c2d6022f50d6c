"""The production repository as it is: its own Dockerfiles, Dockerrun.aws.json and supervisord.conf
read as EB reads them, the stack described from them, their traps named with file and line."""

import json
import shutil
from pathlib import Path

import pytest

from devstack.app_lint import ebextensions_inventory, lint_app
from devstack.errors import ConfigError
from devstack.probes import stack_probes
from devstack.settings import load_settings
from devstack.spec import load_stack
from devstack.spec.app import copied_sources, dockerfile_from, read_dockerrun
from devstack.watch.classify import classify, watch_targets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ECR = "353198996426.dkr.ecr.us-west-2.amazonaws.com/proversity-docker-jupyter:latest"


def production(tmp_path, **environ):
    folder = tmp_path / "jupyter-server"
    shutil.copytree(FIXTURES / "jupyter-server", folder)
    settings = load_settings(folder, environ=environ)
    return folder, settings, load_stack(settings, (1000, 1000))


def test_the_projects_dockerfiles_are_the_images_base_first_tagged_as_the_final_from(tmp_path):
    folder, _, spec = production(tmp_path)
    base, final = spec.images
    assert (base.name, base.tag, base.context, base.build_args) == ("base", ECR, folder / "base-image", ())
    assert (final.name, final.context, final.parent, final.build_args) == ("notebook", folder, "base", ())
    assert spec.app.own and "tagged with that name here, never pulled" in spec.app.reason
    notebook = spec.service("notebook")
    assert notebook.build == "notebook" and notebook.entrypoint is None and notebook.command is None
    # devstack's state and the notebooks are never part of the final build's context.
    assert set(final.ignored) == {".devstack", "notebooks"}
    # production's Dockerfile reads three files of the repository; nothing else makes it out of date.
    assert final.read == ("docker_envs", "supervisord.conf", "jupyter_cors.sh")
    assert final.reads("supervisord.conf") and final.reads("Dockerfile") and not final.reads("README.md")
    assert dict(final.overlays) == {"docker_envs": folder / ".devstack/build/docker_envs"}


def test_dockerrun_v1_gives_the_mounts_the_ports_and_the_log_folder(tmp_path):
    folder, _, spec = production(tmp_path)
    mounts = {m.target: m.source for m in spec.service("notebook").mounts}
    assert mounts["/notebooks"] == folder / "notebooks"  # NOTEBOOKS_DIR stands in for EFS
    assert mounts["/var/log/general"] == folder / ".devstack/logs"
    assert mounts["/tmp/docker_envs"] == folder / ".devstack/docker_envs"
    assert (spec.network.sifu.process_port, spec.network.jupyter.process_port) == (3334, 3335)
    # None of devstack's internals reach the project's container.
    assert not [k for k, _ in spec.service("notebook").environment if k.startswith(("DEVSTACK_", "NB_"))]


def test_a_project_without_dockerfile_runs_dockerruns_image(tmp_path):
    (tmp_path / "Dockerrun.aws.json").write_text(json.dumps({
        "AWSEBDockerrunVersion": "1", "Image": {"Name": "example/app:2", "Update": "false"},
        "Ports": [{"ContainerPort": "8001"}, {"ContainerPort": "8002"}]}))
    spec = load_stack(load_settings(tmp_path, environ={}), (1000, 1000))
    assert spec.images == ()
    notebook = spec.service("notebook")
    assert (notebook.image, notebook.build, notebook.image_origin) == (
        "example/app:2", None, "Image.Name of Dockerrun.aws.json")
    assert (spec.network.sifu.process_port, spec.network.jupyter.process_port) == (8001, 8002)
    assert not spec.app.pull_each_up  # "Update": "false"


def test_images_bundled_keeps_devstacks_own(tmp_path):
    _, _, spec = production(tmp_path, IMAGES="bundled")
    assert not spec.app.own and spec.image("notebook").context.name == "notebook"
    assert spec.app.reason.endswith("(IMAGES=bundled)")


@pytest.mark.parametrize("text, message", [
    ('{"AWSEBDockerrunVersion": "1",\n  "Ports": [}', "Dockerrun.aws.json:2: not JSON"),
    ('{\n  "AWSEBDockerrunVersion": "3"\n}', "Dockerrun.aws.json:2: unknown AWSEBDockerrunVersion '3'"),
    ('{\n  "AWSEBDockerrunVersion": 2,\n  "containerDefinitions": []\n}', "Dockerrun.aws.json:2: "
                                                                      "AWSEBDockerrunVersion 2 (multi-container"),
    ('{"AWSEBDockerrunVersion": "1",\n "Ports": [{"ContainerPort": "http"}]}', "ContainerPort 'http' is not a port"),
])
def test_a_bad_dockerrun_is_one_line_naming_the_file_and_line(tmp_path, text, message):
    (tmp_path / "Dockerrun.aws.json").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        read_dockerrun(tmp_path / "Dockerrun.aws.json")


def test_from_and_copy_sources_are_read_as_the_builder_reads_them(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE=registry.example.com/team/base:7\nFROM ${BASE} AS app\n"
                          "COPY --chown=1:1 a.txt lib/ /opt/\nCOPY --from=app /x /y\n"
                          'ADD ["b c.txt", "/srv/"]\nRUN true\n')
    found = dockerfile_from(dockerfile)
    assert (found.line, found.what) == (2, "registry.example.com/team/base:7")
    assert copied_sources(dockerfile) == ("a.txt", "lib", "b c.txt")
    dockerfile.write_text("FROM x\nCOPY . /app\n")
    assert copied_sources(dockerfile) is None


def test_readiness_of_the_projects_own_processes(tmp_path):
    _, _, spec = production(tmp_path)
    sifu, gate, with_cookie = stack_probes(spec, "secret", "token")
    assert sifu.url.endswith(":3334/") and sifu.expected == "below 500" and sifu.passes(404)
    assert gate.expect == 403 and not with_cookie.headers and with_cookie.passes(302)
    _, _, spec = production(tmp_path / "b", SIFU_HEALTH_PATH="/api/health")
    assert stack_probes(spec, "s", "t")[0].url.endswith("/api/health")


def test_the_traps_are_named_with_file_and_line(tmp_path):
    folder, _, spec = production(tmp_path)
    found = {(f.code, f.file.name, f.lineno) for f in lint_app(spec)}
    assert {("websocket-url", "jupyter_cors.sh", 2), ("allow-origin-any", "jupyter_cors.sh", 4),
            ("allow-from", "jupyter_cors.sh", 5), ("cors-wildcard", "jupyter_cors.sh", 5),
            ("token-copy", "Dockerfile", 19)} <= found
    shutil.copy(folder / "traps/supervisord.conf", folder / "supervisord.conf")
    [name] = [f for f in lint_app(load_stack(load_settings(folder, environ={}), (1000, 1000)))
              if f.code == "supervisor-name"]
    assert name.severity == "error" and name.where() == f"{folder / 'supervisord.conf'}:8"
    assert "Invalid name: 'jupyter notebook' because of character: ' '" in name.message


def test_the_ebextensions_inventory_says_what_devstack_does_in_each_ones_place(tmp_path):
    folder, _, _ = production(tmp_path)
    entries = {(e.kind, e.name.rsplit("/", 1)[-1]): e.here for e in ebextensions_inventory(folder)}
    assert entries[("hook", "01aset_up_token.sh")].startswith("DEPLOYMENT_TOKEN comes from .env")
    assert entries[("hook", "01aset_up_all.rb")].startswith("devstack writes docker_envs")
    assert entries[("hook", "01aset_up_efs.sh")].startswith("NOTEBOOKS_DIR stands in for EFS")
    assert entries[("hook", "00aopenresty.sh")].startswith("the proxy runs OpenResty")
    assert entries[("hook", "02flip.sh")].startswith("devstack writes the upstreams")
    assert entries[("packages", "yum: nfs-utils, ruby-devel")].startswith("not reproduced")
    assert entries[("Resources", "AWSEBLoadBalancer")].startswith("not reproduced")


def test_watching_maps_each_production_file_to_its_action(tmp_path):
    folder, settings, spec = production(tmp_path)
    targets = watch_targets(settings, spec)

    def plan(rel):
        return classify([str(folder / rel)], targets)

    assert plan("supervisord.conf").notebook and not plan("supervisord.conf").base
    assert plan("base-image/Dockerfile").images == ("base", "notebook")
    assert plan("overrides.yml").settings and plan("Dockerrun.aws.json").settings
    assert plan(".ebextensions/01_eb_files.config").settings
    proxy = plan(".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-sifu-proxy.conf")
    assert proxy.proxy and not proxy.images  # read by no Dockerfile: no rebuild
    assert plan("README.md").empty and plan("notebooks/a.ipynb").empty and plan(".devstack/docker_envs").empty


def test_up_says_when_the_projects_edx_hostname_is_replaced_by_devstacks(tmp_path):
    from devstack.reconcile.database import environment_notes

    folder, _, spec = production(tmp_path)
    assert not [n for n in environment_notes(spec) if "EDX_HOSTNAME" in n.message]  # the same value
    overrides = folder / "overrides.yml"
    overrides.write_text(overrides.read_text().replace("EDX_HOSTNAME: localhost:8000", "EDX_HOSTNAME: lms.example.com"))
    spec = load_stack(load_settings(folder, environ={}), (1000, 1000))
    [note] = [n for n in environment_notes(spec) if "EDX_HOSTNAME" in n.message]
    assert note.message == (f"{folder / 'overrides.yml'}:7: EDX_HOSTNAME is 'lms.example.com' there; the container "
                            "gets devstack's EDX_HOSTNAME, 'localhost:8000' (set EDX_HOSTNAME in .env to choose it)")
