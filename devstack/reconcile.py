"""Desired stack vs what the engine has: a plan (pure), then one place that applies it.

`plan_image` and `plan_service` compare a spec's hash with the label on what
exists and say what to do, and why. `Controller` observes, plans and applies,
in dependency order: base image, final image, network, notebook container,
proxy configuration (the notebook's IP), proxy container. Applying twice
changes nothing the second time.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import context as build_context
from .engine import BuildEvent, ContainerInfo, ContainerShell, Engine, ImageInfo
from .eb import docker_envs_text
from .errors import ConfigError, ConflictError, EngineError, NotReady, ProxyConfigError
from .lint import Finding, lint_stack
from .probes import ProbeResult, check_once, list_kernels, stack_probes, wait_until_ready
from .proxy import RELOAD_AND_WAIT, ProxyConfigStore, explain_nginx_error, render_proxy_config
from .redact import Redactor
from .settings import Settings
from .sifu import fetch_sifu_source, with_sifu_source
from .stack import (
    LABEL_CONFIG_HASH,
    LABEL_CONTEXT_HASH,
    LABEL_IMAGE,
    LABEL_PROJECT,
    LABEL_SERVICE,
    PROXY_PREPARE,
    SIFU_MOUNT,
    ImageSpec,
    ServiceSpec,
    StackSpec,
    describe_stack,
)
from .state import ensure_secrets, ensure_state_dir, load_secrets

# The setting that names each image's build context, for errors.
CONTEXT_SETTING = {"base": "BASE_CONTEXT", "notebook": "NOTEBOOK_CONTEXT"}


@dataclass(frozen=True)
class Action:
    verb: str  # build, create, recreate, start
    target: str  # an image or service name
    reason: str

    def __str__(self) -> str:
        return f"{self.verb} {self.target}: {self.reason}"


@dataclass(frozen=True)
class Event:
    """Something the user may want to see: the CLI and the live view decide how."""

    kind: str  # action, build, proxy, info, warning, ready
    message: str
    target: str = ""
    build: BuildEvent | None = None
    data: dict[str, Any] = field(default_factory=dict)


Notify = Callable[[Event], None]


def plan_image(image: ImageSpec, desired_hash: str, observed: ImageInfo | None, force: bool = False) -> Action | None:
    if force:
        return Action("build", image.name, "requested")
    if observed is None:
        return Action("build", image.name, f"{image.tag} does not exist yet")
    if observed.labels.get(LABEL_CONTEXT_HASH) != desired_hash:
        return Action("build", image.name, f"its build context ({image.context}) changed since {image.tag} was built")
    return None


def plan_service(service: ServiceSpec, desired_hash: str, observed: ContainerInfo | None) -> Action | None:
    if observed is None:
        return Action("create", service.name, f"{service.container_name} does not exist")
    if observed.labels.get(LABEL_CONFIG_HASH) != desired_hash:
        return Action("recreate", service.name, "its image or configuration changed")
    if not observed.running:
        return Action("start", service.name, f"{service.container_name} is {observed.status}")
    return None


def host_ids(notebooks_dir: Path | None) -> tuple[int, int]:
    """Whose files the notebook writes: the owner of the notebooks folder (so `sudo devstack` still
    leaves them to the folder's owner), or the user running devstack."""
    if notebooks_dir is not None and notebooks_dir.exists():
        st = notebooks_dir.stat()
        return st.st_uid, st.st_gid
    return os.getuid(), os.getgid()


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


class Controller:
    """Brings one project's stack to its desired state and reports what it does."""

    def __init__(self, settings: Settings, notify: Notify | None = None,
                 connect: Callable[[], Engine] = Engine.connect, redactor: Redactor | None = None):
        self.settings = settings
        self.spec: StackSpec = describe_stack(settings, *host_ids(settings.notebooks_path))
        self.notify: Notify = notify or (lambda event: None)
        self.redact = redactor or Redactor()
        self.redact.add(*settings.secret_values())
        secrets = load_secrets(settings)
        if secrets:
            self.redact.add(*secrets.values())
        self._connect = connect
        self._engine: Engine | None = None
        self.proxy_store = ProxyConfigStore(self.spec.proxy.config_dir)
        # (the sidecar's ID and start time, a shell open in it): a restart ends the shell, so it keys it too.
        self._proxy_shell: tuple[tuple[str, Any], ContainerShell] | None = None
        # IDs of images that a rebuild or a recreate replaced: removed once nothing uses them.
        self._superseded: set[str] = set()

    def describe_again(self) -> None:
        """Describe the stack anew from the same settings: the project's own proxy files are found
        when it is described, so a watcher does this when one comes, changes or goes."""
        self.spec = describe_stack(self.settings, *host_ids(self.settings.notebooks_path))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def _say(self, kind: str, message: str, target: str = "", **data: Any) -> None:
        self.notify(Event(kind, self.redact(message), target, data=data))

    # -- images ----------------------------------------------------------

    def ensure_images(self, force: set[str] | None = None, no_cache: bool = False) -> dict[str, str]:
        """Build, base first, every image that is missing, out of date or in `force`; returns image IDs."""
        force = force or set()
        images = self._images_with_sifu()
        for image in images:
            build_context.check_context(image, CONTEXT_SETTING.get(image.name, image.name))
        ids: dict[str, str] = {}
        for image in images:
            parent_id = ids.get(image.parent, "") if image.parent else ""
            desired = build_context.context_hash(image, parent_id)
            observed = self.engine.image(image.tag)
            action = plan_image(image, desired, observed, force=image.name in force)
            if action is None:
                assert observed is not None
                ids[image.name] = observed.id
                continue
            self._refuse_secrets_in_context(image)
            self._say("action", str(action), image.name)
            ids[image.name] = self._build(image, desired, no_cache)
            if observed is not None and observed.id != ids[image.name]:
                self._superseded.add(observed.id)
        return ids

    def _images_with_sifu(self) -> tuple[ImageSpec, ...]:
        """The images to build; with SIFU_REPO set, the final one gets Sifu's source fetched on the host.
        The fetch comes first, so a fetch that fails leaves every image and container as it was."""
        if not self.settings.sifu_repo:
            return self.spec.images
        source = fetch_sifu_source(self.settings, self.redact)
        if source.offline:
            self._say("warning", f"Sifu: {source.offline}. Building from {source.describe()}, the last commit "
                      "resolved for this SIFU_REF; it may be behind upstream until the host answers again", "notebook")
        else:
            how = "fetched on the host" if source.fetched else "unchanged since the last fetch"
            self._say("info", f"Sifu: SIFU_REPO={source.describe()}, {how} (only its files go into the build)",
                      "notebook")
        return tuple(with_sifu_source(image, source.folder) if image.name == "notebook" else image
                     for image in self.spec.images)

    def _refuse_secrets_in_context(self, image: ImageSpec) -> None:
        """A build context holding a secret (a `.deployment_token` copied along, say) would put it in the
        image or at least hand it to the engine: stop, and say which file."""
        secrets = {"DEPLOYMENT_TOKEN": self.settings.deployment_token.get_secret_value(),
                   "JUPYTER_TOKEN": self.settings.jupyter_token.get_secret_value()}
        generated = load_secrets(self.settings)
        if generated is not None:
            secrets.update({"the generated Jupyter token": generated.jupyter_token,
                            "the Sifu cookie secret": generated.sifu_secret})
        found = build_context.file_holding_secret(image, secrets)
        if found is not None:
            item, secret = found
            raise ConfigError(f"{item.path} holds {secret} and is in the build context of the {image.name} image "
                              f"(as {item.arcname}): devstack never sends a secret into a build; move that file "
                              "out of the context, or list it in the context's .dockerignore")

    def _build(self, image: ImageSpec, desired_hash: str, no_cache: bool) -> str:
        labels = {LABEL_IMAGE: image.name, LABEL_CONTEXT_HASH: desired_hash}

        def on_event(event: BuildEvent) -> None:
            self.notify(Event("build", self.redact(event.line), image.name, build=event))

        if build_context.labels_fit_in_dockerfile(image.context / image.dockerfile):
            in_dockerfile, by_api = labels, {}
        else:
            in_dockerfile, by_api = {}, labels
        with build_context.context_tar(image, labels=in_dockerfile) as tar:
            image_id = self.engine.build(tar, image.tag, dict(image.build_args), by_api, no_cache, on_event)
        self._say("info", f"built {image.tag} ({image_id.removeprefix('sha256:')[:12]})", image.name)
        return image_id

    # -- the stack -------------------------------------------------------

    def up(self, ready_timeout: float = 180.0) -> list[ProbeResult]:
        """Everything to the desired state, then wait until it answers through the proxy."""
        self.report_lint()
        self.check_ports()
        if self.settings.sifu_src_path is not None:
            self._say("info", f"Sifu: running from SIFU_SRC={self.settings.sifu_src_path} (mounted over {SIFU_MOUNT})")
        elif not self.settings.sifu_repo:
            self._say("info", "Sifu: using the development stand-in bundled with devstack (SIFU_REPO is not set)")
        if self.spec.notebooks_dir is not None:
            self.spec.notebooks_dir.mkdir(parents=True, exist_ok=True)
        else:
            name = self.spec.service("notebook").container_name
            self._say("warning", f"NOTEBOOKS_DIR is empty, so nothing is mounted at /notebooks: notebooks live only "
                      f"in container {name} and are lost with it (`devstack down`, `up --rm`, or a recreate "
                      "when the image or settings change)", "notebook")
        if self.settings.network_mode == "host" and self.settings.extra_ports:
            ports = ", ".join(f"{p.host_port}:{p.container_port}" for p in self.settings.extra_ports)
            self._say("warning", f"NETWORK_MODE=host publishes nothing, so EXTRA_PORTS/-p ({ports}) have no effect: "
                      "the notebook's processes listen on the host's own ports", "notebook")
        image_ids = self.ensure_images()
        self.reconcile_services(image_ids)
        return self.wait_ready(ready_timeout)

    def check_ports(self) -> None:
        """Fail before building anything when a container name is taken by something that is not ours,
        or a host port the stack needs is held by something other than the service's own container."""
        for problem in self.port_problems():
            raise ConflictError(problem)

    def port_problems(self) -> list[str]:
        """One line per host port the stack needs that something else holds (names it and the fix)."""
        owned = {service.name: self._owned_container(service) for service in self.spec.services}
        problems = []
        for port in self.spec.host_ports:
            ours = owned.get(port.service)
            if ours is not None and ours.running and (
                    self.spec.network_mode == "host"  # our own container binds the host's port itself
                    or any(p.startswith(f"{port.address}:{port.port}->") for p in ours.ports)):
                continue
            if not port_is_free(port.address, port.port):
                problems.append(f"host port {port.address}:{port.port} ({port.setting}) is already in use"
                                f"{self._holder(port.port)}: stop what holds it, or {port.fix}")
        return problems

    def _holder(self, port: int) -> str:
        for container in self.engine.containers():
            if any(f":{port}->" in p for p in container.ports):
                return f" by container {container.name} (project {container.project})"
        return ""

    def reconcile_services(self, image_ids: dict[str, str]) -> None:
        spec = self.spec
        self.check_sources()
        network = "host" if spec.network_mode == "host" else self._ensure_network()
        secrets = ensure_secrets(self.settings)
        self.redact.add(*secrets.values())
        self.write_docker_envs()
        notebook = self._reconcile_service(spec.service("notebook"), image_ids["notebook"], network,
                                           extra=secrets.fingerprint())
        proxy_image = self._proxy_image_id()  # before the first `nginx -t`, which runs in that image
        self.refresh_proxy(notebook)
        proxy_spec = spec.service("proxy")
        self._reconcile_service(proxy_spec, proxy_image, network)
        self.remove_superseded_images()

    def remove_superseded_images(self) -> None:
        """Remove the images that rebuilds replaced, once no container uses them: devstack built them,
        and untagged they only fill the disk (each base rebuild leaves hundreds of MB). An image that
        has a tag again, was not built by devstack, or is still used by any container is kept."""
        for image_id in sorted(self._superseded):
            found = self.engine.image(image_id)
            if found is None or found.tags or LABEL_IMAGE not in found.labels:
                self._superseded.discard(image_id)
                continue
            try:
                self.engine.remove_image(image_id)  # never forced: the engine refuses while a container uses it
            except (ConflictError, EngineError):
                continue  # still in use: tried again after the next reconcile
            self._superseded.discard(image_id)
            self._say("action", f"remove image {image_id.removeprefix('sha256:')[:12]}: replaced by a rebuild, "
                      "no longer used", found.labels[LABEL_IMAGE])

    def write_docker_envs(self) -> None:
        """Production's docker_envs for the mount, before the container exists (a bind mount of a
        missing file would become a folder). Written in place: a running container keeps seeing it."""
        path = self.spec.docker_envs_path
        if path is None:
            return
        ensure_state_dir(self.spec.state_dir)
        content = docker_envs_text(dict(self.spec.service("notebook").environment))
        try:
            if path.read_text() == content:
                return
        except OSError:
            pass
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
        path.chmod(0o644)  # read by the notebook user; it holds no secret (see eb.docker_envs_text)

    def check_sources(self) -> None:
        """Folders to bind-mount must exist: Docker would create a missing one, empty and owned by root."""
        src = self.settings.sifu_src_path
        if src is not None and not src.is_dir():
            raise ConfigError(f"SIFU_SRC={src}: no such folder: point it at your Sifu checkout, or leave it empty")

    def plan_services(self, image_ids: dict[str, str]) -> list[Action]:
        """What `reconcile_services` would do with these images, without doing it."""
        secrets = load_secrets(self.settings)
        nginx = self.engine.image(self.settings.nginx_image)
        wanted = (
            (self.spec.service("notebook"), image_ids["notebook"], secrets.fingerprint() if secrets else ""),
            (self.spec.service("proxy"), nginx.id if nginx else "", ""),
        )
        actions = []
        for service, image_id, extra in wanted:
            action = plan_service(service, service.config_hash(image_id, extra), self._owned_container(service))
            if action is not None:
                actions.append(action)
        return actions

    def _ensure_network(self) -> str:
        name = self.spec.network
        existing = self.engine.network(name)
        if existing is None:
            self.engine.create_network(name, self.spec.labels)
            self._say("action", f"create network {name}", "network")
        elif existing.labels.get(LABEL_PROJECT) != self.spec.project:
            raise ConflictError(f"network {name} exists and was not created by devstack for project "
                                f"{self.spec.project}: remove it yourself or set DEVSTACK_PROJECT to another name")
        return name

    def _owned_container(self, service: ServiceSpec) -> ContainerInfo | None:
        """The service's container, if one exists; a container of that name that is not ours is a conflict."""
        found = self.engine.container(service.container_name)
        if found is not None and found.labels.get(LABEL_PROJECT) != self.spec.project:
            setting = "NOTEBOOK_CONTAINER_NAME" if service.name == "notebook" and \
                self.settings.notebook_container_name else "DEVSTACK_PROJECT"
            raise ConflictError(
                f"container {service.container_name} exists and was not created by devstack for project "
                f"{self.spec.project}: rename or remove it yourself, or set {setting} to another name")
        return found

    def _remove_renamed(self, service: ServiceSpec) -> None:
        """The service's containers under an older name (NOTEBOOK_CONTAINER_NAME changed): found by label."""
        for old in self.engine.containers(self.spec.project, service.name):
            if old.name != service.container_name:
                self._say("action", f"remove {old.name}: the {service.name} container is now named "
                          f"{service.container_name}", service.name)
                self.engine.remove(old.id, old.name)

    def _reconcile_service(self, service: ServiceSpec, image_id: str, network: str, extra: str = "") -> ContainerInfo:
        desired_hash = service.config_hash(image_id, extra)
        observed = self._owned_container(service)
        self._remove_renamed(service)
        action = plan_service(service, desired_hash, observed)
        if action is not None:
            self._say("action", str(action), service.name)
            if action.verb in ("create", "recreate"):
                if observed is not None:
                    self.engine.remove(observed.id, observed.name)
                    if observed.image_id != image_id:
                        self._superseded.add(observed.image_id)
                container_id = self.engine.create_container(service, network, {LABEL_CONFIG_HASH: desired_hash})
            else:
                assert observed is not None
                container_id = observed.id
            self.engine.start(container_id, service.container_name)
        found = self.engine.container(service.container_name)
        if found is None:
            raise EngineError(f"container {service.container_name} vanished right after it was started")
        return found

    def _proxy_image_id(self) -> str:
        ref = self.settings.nginx_image
        found = self.engine.image(ref)
        if found is None:
            self._say("action", f"pull {ref} (NGINX_IMAGE)", "proxy")
            try:
                self.engine.pull(ref)
            except EngineError as exc:
                raise EngineError(f"NGINX_IMAGE={ref} is not on this machine and pulling it failed ({exc}): "
                                  f"pull or load it yourself, or set NGINX_IMAGE to an nginx image you have") from None
            found = self.engine.image(ref)
            assert found is not None
        return found.id

    # -- the proxy's configuration ------------------------------------------

    def refresh_proxy(self, notebook: ContainerInfo | None = None) -> bool:
        """Render the configuration for the notebook's current IP; if it changed, check it with
        `nginx -t` in the sidecar, swap it in and reload nginx. Returns whether anything changed."""
        notebook = notebook or self.engine.container(self.spec.service("notebook").container_name)
        if notebook is None or not notebook.running:
            raise EngineError("the notebook container is not running, so the proxy has no upstream: run `devstack up`")
        # The seed's hook reads .NetworkSettings.IPAddress, which is empty for a container on a
        # user-defined network: the IP that counts is the one on the network the proxy shares.
        ip = self.spec.proxy.upstream_host or notebook.ips.get(self.spec.network, "")
        if not ip:
            raise EngineError(f"container {notebook.name} has no IP on network {self.spec.network}: "
                              "recreate it with `devstack up`")
        rendered = render_proxy_config(self.spec.proxy, ip)
        if self.proxy_store.current_files() == rendered.files:
            return False
        ensure_state_dir(self.spec.state_dir)
        generation = self.proxy_store.stage(rendered)
        proxy = self.engine.container(self.spec.service("proxy").container_name)
        if proxy is not None and proxy.running:
            code, output = self._in_proxy(proxy, ["nginx", "-t", "-c", self.proxy_store.container_path(generation)])
            if code != 0:
                self.proxy_store.discard(generation)
                raise ProxyConfigError("nginx rejected the new proxy configuration, the running one is kept: "
                                       + explain_nginx_error(output, generation, rendered))
            self.proxy_store.activate(generation)
            # SIGHUP to nginx's master: re-read the configuration, no dropped connections; done when
            # no worker of the old configuration accepts connections any more.
            code, output = self._in_proxy(proxy, ["sh", "-c", RELOAD_AND_WAIT])
            if code == 3:
                raise ProxyConfigError(f"nginx was told to load {generation} but its old workers still accept "
                                       f"connections after 5 s ({output.strip()}): see `devstack logs proxy`")
            if code != 0:
                self.engine.signal(proxy.id, proxy.name, "SIGHUP")
            self._say("proxy", f"proxy configuration {generation} checked and reloaded (notebook at {ip})", "proxy")
        else:
            # No sidecar to ask yet: the same nginx checks it in a throwaway container of its image,
            # so that a configuration nginx rejects is never the one the sidecar starts with.
            proxy_spec = self.spec.service("proxy")
            check = f"{PROXY_PREPARE} && exec nginx -t -c {self.proxy_store.container_path(generation)}"
            code, output = self.engine.run_once(
                self.settings.nginx_image, ["/bin/sh", "-c"], [check], proxy_spec.mounts,
                {**self.spec.labels, LABEL_SERVICE: "proxy-check"})
            if code != 0:
                self.proxy_store.discard(generation)
                raise ProxyConfigError("nginx rejected the proxy configuration, so the proxy was not started: "
                                       + explain_nginx_error(output, generation, rendered))
            self.proxy_store.activate(generation)
            self._say("proxy", f"proxy configuration {generation} checked and written (notebook at {ip})", "proxy")
        return True

    def report_lint(self) -> list[Finding]:
        """The proxy lint and the frame/cookie check, before anything starts: reported, not enforced
        (EB would load the same files; `nginx -t` in the sidecar is what refuses a configuration)."""
        findings = lint_stack(self.spec, self.settings)
        for finding in findings:
            self._say("warning", finding.describe(), "proxy")
        return findings

    # -- Sifu and the kernels, inside the running notebook container ----------

    def restart_sifu(self) -> None:
        """Restart only the Sifu program (supervisorctl); Jupyter and its kernels keep running."""
        name = self.spec.service("notebook").container_name
        notebook = self.engine.container(name)
        if notebook is None or not notebook.running:
            raise EngineError(f"container {name} is not running, so Sifu cannot be restarted in it: run `devstack up`")
        code, output = self.engine.exec(notebook.id, ["supervisorctl", "restart", "sifu"])
        if code != 0 or "ERROR" in output:
            raise NotReady(f"supervisorctl could not restart Sifu in {name} ({' '.join(output.split())}): "
                           "its last log lines are below; fix the code and save again",
                           logs=self.last_logs("notebook", lines=20))
        self._say("action", f"restarted Sifu in {name} (supervisorctl); Jupyter and its kernels untouched", "notebook")

    def busy_kernels(self) -> list[str]:
        """IDs of the Jupyter kernels busy executing, asked through the proxy with the cookie and token."""
        secrets = load_secrets(self.settings)
        if secrets is None:
            return []
        kernels = list_kernels(self.spec, secrets.sifu_secret, secrets.jupyter_token)
        return [str(k.get("id", "?")) for k in kernels if k.get("execution_state") == "busy"]

    def _in_proxy(self, proxy: ContainerInfo, argv: list[str]) -> tuple[int, str]:
        """Run a command in the sidecar through a shell kept open there (watching reloads often);
        a plain exec when that shell cannot be had."""
        shell = self._proxy_shell
        key = (proxy.id, proxy.started_at)
        if shell is None or shell[0] != key:
            if shell is not None:
                shell[1].close()
            try:
                self._proxy_shell = shell = (key, self.engine.open_shell(proxy.id, proxy.name))
            except EngineError:
                self._proxy_shell = None
                return self.engine.exec(proxy.id, argv)
        try:
            return shell[1].run(argv)
        except (OSError, ValueError):
            shell[1].close()
            self._proxy_shell = None
            return self.engine.exec(proxy.id, argv)

    # -- readiness -------------------------------------------------------

    def wait_ready(self, timeout: float) -> list[ProbeResult]:
        secrets = ensure_secrets(self.settings)
        probes = stack_probes(self.spec, secrets.sifu_secret, secrets.jupyter_token)
        try:
            results = wait_until_ready(probes, timeout, still_alive=self._check_alive)
        except NotReady as exc:
            raise NotReady(self.redact(str(exc)), logs=exc.logs or self.last_logs()) from None
        self._say("ready", "ready: Sifu and Jupyter answer through the proxy")
        return results

    def _check_alive(self) -> None:
        """Fail fast instead of waiting out the timeout: a container that stopped, or a program
        that supervisor gave up on (FATAL), will not come back by itself."""
        for service in self.spec.services:
            found = self.engine.container(service.container_name)
            if found is None or not found.running:
                state = "missing" if found is None else found.status
                raise NotReady(f"container {service.container_name} is {state} while waiting for the stack "
                               "to answer", logs=self.last_logs(service.name))
        notebook = self.spec.service("notebook")
        found = self.engine.container(notebook.container_name)
        if found is not None:
            try:
                _, output = self.engine.exec(found.id, ["supervisorctl", "status"])
            except EngineError:
                return  # an image without supervisorctl: the probes' timeout decides
            fatal = [line.split()[0] for line in output.splitlines() if " FATAL " in f" {line} "]
            if fatal:
                raise NotReady(f"supervisor gave up on {', '.join(fatal)} in container {notebook.container_name} "
                               "(it exited repeatedly right after starting): its log lines are below",
                               logs=self.last_logs("notebook", lines=30))

    def last_logs(self, service: str | None = None, lines: int = 15) -> list[str]:
        """The last log lines of the stack's containers (one service, or all), redacted."""
        collected: list[str] = []
        for spec in self.spec.services:
            if service and spec.name != service:
                continue
            found = self.engine.container(spec.container_name)
            if found is None:
                continue
            collected += [f"{spec.name} | {self.redact(line)}" for line in self.engine.log_lines(found.id, tail=lines)
                          if line.strip()]
        return collected

    def stream_logs(self, service: str | None, tail: int | str, follow: bool) -> Iterator[str]:
        """The logs of the stack's containers (one service, or all) as `service | line`, redacted,
        merged in the order lines arrive."""
        targets = [(spec.name, found) for spec in self.spec.services if service in (None, spec.name)
                   if (found := self.engine.container(spec.container_name)) is not None]
        if not targets:
            raise EngineError(f"no container of project {self.spec.project} to show: run `devstack up`")
        width = max(len(name) for name, _ in targets)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(name: str, container_id: str) -> None:
            try:
                for line in self.engine.log_lines(container_id, tail=tail, follow=follow):
                    lines.put(f"{name.ljust(width)} | {self.redact(line)}")
            finally:
                lines.put(None)  # this stream is done

        for name, found in targets:
            threading.Thread(target=pump, args=(name, found.id), name=f"devstack-logs-{name}", daemon=True).start()
        finished = 0
        while finished < len(targets):
            line = lines.get()
            if line is None:
                finished += 1
            else:
                yield line

    def probe(self) -> list[ProbeResult]:
        secrets = load_secrets(self.settings)
        if secrets is None:
            return []
        return check_once(stack_probes(self.spec, secrets.sifu_secret, secrets.jupyter_token), timeout=2.0)

    # -- running commands in the stack --------------------------------------

    def running_container(self, service: str) -> ContainerInfo:
        """The service's running container, ours by label (a foreign one of that name is never entered)."""
        found = self._owned_container(self.spec.service(service))
        if found is None or not found.running:
            raise EngineError(f"the {service} container is not running: start the stack with `devstack up -d`")
        return found

    def exec_user(self, service: str) -> str:
        """Who `shell` and `exec` run as by default: in the notebook container the user Jupyter runs as
        (so files they write in /notebooks belong to the folder's owner, not root); root elsewhere."""
        environment = dict(self.spec.service(service).environment)
        if "NB_UID" in environment:
            return f"{environment['NB_UID']}:{environment.get('NB_GID', environment['NB_UID'])}"
        return ""

    # -- stopping --------------------------------------------------------

    def stop(self) -> None:
        """Stop the project's containers, keep them (compose's Ctrl-C)."""
        for container in self.engine.containers(self.spec.project):
            if container.running:
                self.engine.stop(container.id, container.name)
                self._say("action", f"stop {container.name}", container.service)

    def down(self, remove_images: bool = False) -> None:
        """Remove the project's containers and network, found by label; nothing else."""
        for container in self.engine.containers(self.spec.project):
            self.engine.remove(container.id, container.name)
            self._say("action", f"remove container {container.name}", container.service)
        for network in self.engine.networks(self.spec.project):
            self.engine.remove_network(network.id)
            self._say("action", f"remove network {network.name}", "network")
        if remove_images:
            for image in reversed(self.spec.images):
                found = self.engine.image(image.tag)
                if found is None or LABEL_IMAGE not in found.labels:
                    continue  # not built by devstack: not ours to remove
                try:
                    self.engine.remove_image(image.tag)
                    self._say("action", f"remove image {image.tag}", image.name)
                except (ConflictError, EngineError) as exc:
                    self._say("warning", f"kept image {image.tag}: {exc}", image.name)
