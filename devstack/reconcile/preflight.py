"""What `up` checks and prepares before anything changes: the lint, the ports, the folders it mounts,
the environment the notebook container gets.

`port_problems` is the one port check and `notebooks_problem` the one notebooks-folder check: `up`
refuses to start on one (or warns), `doctor` shows each.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..docker.engine import ContainerInfo, Engine
from ..app_lint import ebextensions_inventory, lint_app
from ..envlimits import EnvProblem, environment_problems
from ..errors import ConfigError, ConflictError, EngineError, ProxyConfigError
from ..events import Info, Warned
from ..balancer.lint import lint_balancer
from ..proxy.lint import MODULE_MISSING, Finding, lint_stack
from ..spec import BUILD_DOCKER_ENVS, HostPort, StackSpec
from ..spec.app import dockerfile_from
from ..spec.project import docker_envs_text
from ..state import ensure_state_dir, write_private
from .database import environment_notes

if TYPE_CHECKING:
    from .stack import Stack


def check(stack: Stack) -> None:
    """Report the lint; refuse a folder that cannot be mounted, a value the container could not start
    with, a taken port; warn of what would fail later (a notebooks folder Jupyter cannot write, a
    value production would refuse); say what the stack will be like."""
    settings, spec = stack.settings, stack.spec
    stack.notify(Info(spec.app.reason, "notebook"))
    stack.notify(Info(spec.proxy.choice.describe(), "proxy"))
    for note in environment_notes(spec):
        stack.notify(note)
    # The project's own files first: they need no engine, so a bad one is named even without one.
    report_lint(stack, enforce=True)
    report_app(stack)
    check_sources(stack)
    check_environment(stack)
    if settings.sifu_src_path is not None:
        stack.notify(Info(f"Sifu: running from SIFU_SRC={settings.sifu_src_path} (mounted over {spec.app.sifu_path})"))
    elif not settings.sifu_repo and not spec.app.own:
        stack.notify(Info("Sifu: using the development stand-in bundled with devstack (SIFU_REPO is not set)"))
    if settings.sifu_repo and spec.app.own:
        stack.notify(Warned(f"SIFU_REPO does nothing with the project's own images: their Dockerfiles fetch Sifu "
                            f"themselves; to run another checkout, set SIFU_SRC (mounted over {spec.app.sifu_path})",
                            "notebook"))
    for mount in spec.service("notebook").mounts:
        # The folders EB's host provides (Dockerrun.aws.json's volumes, its log folder): this project's own.
        if mount.source.is_relative_to(spec.state_dir) and not mount.read_only:
            mount.source.mkdir(parents=True, exist_ok=True)
    problem = notebooks_problem(spec.notebooks_dir) if spec.notebooks_dir is not None else None
    if problem is not None:
        stack.notify(Warned(f"{problem.message}: {problem.fix}", "notebook"))
    check_final_from(stack)
    pull_dockerrun_image(stack)
    check_ports(stack)
    if spec.notebooks_dir is not None:
        make_notebooks_dir(spec.notebooks_dir)
    else:
        name = spec.service("notebook").container_name
        stack.notify(Warned(f"NOTEBOOKS_DIR is empty, so nothing is mounted at /notebooks: notebooks live only "
                            f"in container {name} and are lost with it (`devstack down`, `up --rm`, or a recreate "
                            "when the image or settings change)", "notebook"))
    if spec.network.host_mode and settings.extra_ports:
        ports = ", ".join(f"{p.host_port}:{p.container_port}" for p in settings.extra_ports)
        stack.notify(Warned(f"NETWORK_MODE=host publishes nothing, so EXTRA_PORTS/-p ({ports}) have no effect: "
                            "the notebook's processes listen on the host's own ports", "notebook"))


def report_lint(stack: Stack, enforce: bool = False) -> list[Finding]:
    """The proxy lint and the frame/cookie check, before anything starts: reported, not enforced
    (EB would load the same files; `nginx -t` in the sidecar is what refuses a configuration), except,
    with `enforce`, a directive of a module the flavour lacks: certain to be refused, and better named
    here (its module, the flavour that has it) than by nginx's `unknown directive`."""
    findings = lint_stack(stack.spec, stack.settings) + lint_balancer(stack.spec)
    refused = [f for f in findings if enforce and f.code == MODULE_MISSING]
    for finding in findings:
        if finding not in refused:
            stack.notify(Warned(finding.describe(), "lb" if finding.code.startswith("lb-") else "proxy"))
    if refused:
        raise ProxyConfigError(f"{refused[0].describe()} (nginx would refuse the file: nothing was started)")
    return findings


def report_app(stack: Stack) -> None:
    """The traps in the project's own app files, and what its .ebextensions ask that devstack does not."""
    for finding in lint_app(stack.spec):
        stack.notify(Warned(finding.describe(), "notebook"))
    if stack.spec.app.root is not None:
        entries = ebextensions_inventory(stack.spec.app.root)
        skipped = [e for e in entries if e.here.startswith("not reproduced")]
        if entries:
            stack.notify(Info(f".ebextensions: {len(entries)} entries, {len(entries) - len(skipped)} done by devstack "
                              f"in its own way, {len(skipped)} not reproduced (`devstack doctor` lists them)"))


def check_final_from(stack: Stack) -> None:
    """The image the project's final Dockerfile starts FROM, when no base build makes it, must be here or
    pullable: otherwise the build would fail halfway with the engine's words."""
    spec = stack.spec
    final = next((image for image in spec.images if image.name == "notebook"), None)
    if not spec.app.own or final is None or final.parent is not None:
        return
    found = dockerfile_from(final.context / final.dockerfile)
    if found is None or found.what == "scratch" or stack.engine().image(found.what) is not None:
        return
    try:
        stack.engine().pull(found.what)
    except EngineError as exc:
        raise ConfigError(f"{found.path}:{found.line}: FROM {found.what} is not built here (no base-image/Dockerfile), "
                          f"not on this machine, and pulling it failed ({exc}): build or pull it, or set BASE_CONTEXT "
                          "to the folder that builds it") from None


def pull_dockerrun_image(stack: Stack) -> None:
    """Dockerrun.aws.json's Image.Name with Update "true": pulled again, as EB does on each deploy; one
    that cannot be pulled but is here runs as it is (offline), with a line saying so."""
    if not stack.spec.app.pull_each_up:
        return
    service = stack.spec.service("notebook")
    try:
        stack.engine().pull(service.image)
    except EngineError as exc:
        if stack.engine().image(service.image) is None:
            return  # the plan's pull step names it, before anything starts
        stack.notify(Warned(f"{service.image} ({service.image_origin}, Update true) could not be pulled again "
                            f"({exc}): running the copy on this machine", "notebook"))


def check_sources(stack: Stack) -> None:
    """Folders to bind-mount must exist: Docker would create a missing one, empty and owned by root."""
    src = stack.settings.sifu_src_path
    if src is not None and not src.is_dir():
        raise ConfigError(f"SIFU_SRC={src}: no such folder: point it at your Sifu checkout, or leave it empty")
    notebooks = stack.spec.notebooks_dir
    if notebooks is not None and notebooks.exists() and not notebooks.is_dir():
        raise ConfigError(f"NOTEBOOKS_DIR={notebooks} ({stack.settings.sources.get('NOTEBOOKS_DIR', 'default')}) "
                          "is a file, not a folder: point NOTEBOOKS_DIR at a folder (it is created if missing)")


def make_notebooks_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"NOTEBOOKS_DIR={folder}: cannot create it ({exc.strerror}): create it yourself, "
                          "or point NOTEBOOKS_DIR at a folder you can write") from None


@dataclass(frozen=True)
class FolderProblem:
    message: str
    fix: str


def notebooks_problem(folder: Path, uid: int | None = None) -> FolderProblem | None:
    """Whether Jupyter can write the notebooks folder. It runs as the folder's owner (so that what it
    writes is the owner's), hence the owner's permission bits decide, not who runs devstack (`uid`,
    whom the fix is written for)."""
    try:
        info = folder.stat()
    except OSError:
        return None
    if info.st_uid == 0:
        return None  # Jupyter runs as root, which writes whatever the mode says
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o300 == 0o300:
        return None
    me = os.getuid() if uid is None else uid
    fix = f"chmod u+rwx {folder}" if me in (0, info.st_uid) else f"sudo chmod u+rwx {folder}"
    return FolderProblem(f"NOTEBOOKS_DIR={folder} has mode {mode:o}: Jupyter runs as its owner (uid {info.st_uid}), "
                         "who cannot write it, so every save would fail with 403 Permission denied", fix)


def env_problems(spec: StackSpec) -> list[EnvProblem]:
    """The notebook's environment properties, every layer of them, against EB's limits and the kernel's."""
    properties = spec.environment.properties
    return environment_problems({key: prop.value for key, prop in properties.items()},
                                {key: prop.source for key, prop in properties.items()})


def check_environment(stack: Stack) -> None:
    """The notebook container's environment properties, against the kernel's and Elastic Beanstalk's
    limits: a value the container could not start with stops `up`; one production would refuse is a warning."""
    for problem in env_problems(stack.spec):
        if problem.fatal:
            raise ConfigError(problem.message)
        stack.notify(Warned(problem.message, "notebook"))


def check_ports(stack: Stack) -> None:
    """Refuse, before anything changes, a host port the stack needs that something else holds."""
    for problem in port_problems(stack.engine(), stack.spec):
        raise ConflictError(problem.describe())


@dataclass(frozen=True)
class PortProblem:
    port: HostPort
    holder: str  # " by container x (project y)", or ""

    def describe(self) -> str:
        return (f"host port {self.port.address}:{self.port.port} ({self.port.setting}) is already in use"
                f"{self.holder}: stop what holds it, or {self.port.fix}")


def port_problems(engine: Engine | None, spec: StackSpec) -> list[PortProblem]:
    """Each host port the stack needs that something other than the service's own container holds.
    Without an engine, only whether the port is free is known."""
    owned = {service.name: _own_container(engine, spec, service.container_name) for service in spec.services}
    problems = []
    for port in spec.host_ports:
        if holds(owned.get(port.service), port, spec):
            continue
        if not port_is_free(port.address, port.port):
            problems.append(PortProblem(port, _holder(engine, port.port)))
    return problems


def holds(container: ContainerInfo | None, port: HostPort, spec: StackSpec) -> bool:
    """Whether the stack's own running container is what holds the port."""
    return container is not None and container.running and (
        spec.network.host_mode  # our own container binds the host's port itself
        or any(p.startswith(f"{port.address}:{port.port}->") for p in container.ports))


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port whose old connections linger in TIME_WAIT is free for Docker too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _own_container(engine: Engine | None, spec: StackSpec, name: str) -> ContainerInfo | None:
    if engine is None:
        return None
    found = engine.container(name)
    return found if spec.owns(found) else None


def _holder(engine: Engine | None, port: int) -> str:
    if engine is None:
        return ""
    for container in engine.containers():
        if any(f":{port}->" in p for p in container.ports):
            return f" by container {container.name} (project {container.project})"
    return ""


def write_docker_envs(spec: StackSpec) -> None:
    """Production's docker_envs for the mount, before the container exists (a bind mount of a
    missing file would become a folder). Written in place: a running container keeps seeing it."""
    path = spec.docker_envs_path
    if path is None:
        return
    ensure_state_dir(spec.state_dir)
    environment = dict(spec.service("notebook").environment)
    if any(spec.copies_docker_envs(image) for image in spec.images):
        # The copy the final build COPYs into a layer: the database's password for builds in its place.
        for_build = dict(environment)
        if spec.database is not None and "RDS_PASSWORD" in for_build:
            for_build["RDS_PASSWORD"] = spec.database.build_password
        write_private(spec.state_dir / BUILD_DOCKER_ENVS, docker_envs_text(for_build), in_place=True)
    if not write_private(path, docker_envs_text(environment), in_place=True):
        return
    # It holds the environment properties, RDS_PASSWORD among them (never DEPLOYMENT_TOKEN or
    # JUPYTER_TOKEN): readable by its owner, the notebook user. Run as root, devstack hands it to that
    # user; run as someone else than the notebooks folder's owner, it cannot, and the file stays readable.
    uid, gid = int(environment.get("NB_UID", os.getuid())), int(environment.get("NB_GID", os.getgid()))
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
    path.chmod(0o600 if os.geteuid() in (0, uid) else 0o644)

