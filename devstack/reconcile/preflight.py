"""What `up` checks and prepares before anything changes: the lint, the ports, the folders it mounts.

`port_problems` is the one port check: `up` refuses to start on one, `doctor` shows each.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..docker.engine import ContainerInfo, Engine
from ..errors import ConfigError, ConflictError, ProxyConfigError
from ..events import Info, Warned
from ..proxy.lint import MODULE_MISSING, Finding, lint_stack
from ..spec import LABEL_PROJECT, SIFU_MOUNT, HostPort, StackSpec
from ..spec.project import docker_envs_text
from ..state import ensure_state_dir
from .database import environment_notes

if TYPE_CHECKING:
    from .stack import Stack


def check(stack: Stack) -> None:
    """Report the lint, refuse a taken port or a missing folder, and say what the stack will be like."""
    settings, spec = stack.settings, stack.spec
    stack.notify(Info(spec.proxy.choice.describe(), "proxy"))
    for note in environment_notes(spec):
        stack.notify(note)
    report_lint(stack, enforce=True)
    check_ports(stack)
    check_sources(stack)
    if settings.sifu_src_path is not None:
        stack.notify(Info(f"Sifu: running from SIFU_SRC={settings.sifu_src_path} (mounted over {SIFU_MOUNT})"))
    elif not settings.sifu_repo:
        stack.notify(Info("Sifu: using the development stand-in bundled with devstack (SIFU_REPO is not set)"))
    if spec.notebooks_dir is not None:
        spec.notebooks_dir.mkdir(parents=True, exist_ok=True)
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
    findings = lint_stack(stack.spec, stack.settings)
    refused = [f for f in findings if enforce and f.code == MODULE_MISSING]
    for finding in findings:
        if finding not in refused:
            stack.notify(Warned(finding.describe(), "proxy"))
    if refused:
        raise ProxyConfigError(f"{refused[0].describe()} (nginx would refuse the file: nothing was started)")
    return findings


def check_sources(stack: Stack) -> None:
    """Folders to bind-mount must exist: Docker would create a missing one, empty and owned by root."""
    src = stack.settings.sifu_src_path
    if src is not None and not src.is_dir():
        raise ConfigError(f"SIFU_SRC={src}: no such folder: point it at your Sifu checkout, or leave it empty")


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
    return found if found is not None and found.labels.get(LABEL_PROJECT) == spec.project else None


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
    content = docker_envs_text(environment)
    try:
        if path.read_text() == content:
            return
    except OSError:
        pass
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    # It holds the environment properties, RDS_PASSWORD among them (never DEPLOYMENT_TOKEN or
    # JUPYTER_TOKEN): readable by its owner, the notebook user. Run as root, devstack hands it to that
    # user; run as someone else than the notebooks folder's owner, it cannot, and the file stays readable.
    uid, gid = int(environment.get("NB_UID", os.getuid())), int(environment.get("NB_GID", os.getgid()))
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
    path.chmod(0o600 if os.geteuid() in (0, uid) else 0o644)
