"""What devstack does with a stack that runs: its containers, logs and events, commands inside it,
Sifu restarts and Jupyter's kernels. Ownership is by label: a foreign container of our name is
never entered."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from ..docker.engine import ContainerInfo, now
from ..errors import DevstackError, EngineError, NotReady
from ..events import Acted, EngineEvent
from ..probes import ProbeResult, check_once, list_kernels, stack_probes
from ..state import load_secrets
from ..hosts import url_host
from .database import accepts_connections
from .plan import notebook_address, owned
from ..balancer.health import WINDOW_SECONDS, RequestStats, parse_healthd, read_healthd, request_stats
from ..snapshot import InstanceStatus, ServiceStatus, StackStatus, is_probe_line

if TYPE_CHECKING:
    from .stack import Stack


class Running:
    def __init__(self, stack: Stack):
        self._stack = stack

    @property
    def _spec(self):  # noqa: ANN202 - StackSpec; the stack's current description (a watcher replaces it)
        return self._stack.spec

    # -- what runs -----------------------------------------------------------------

    def container(self, service: str) -> ContainerInfo | None:
        """The service's container, whatever its state; None when there is none. A foreign container of
        its name is a ConflictError."""
        try:
            spec = self._spec.service(service)
        except KeyError:
            raise EngineError(f"this project has no {service} container"
                              + (": it runs a database only when its environment names RDS_* variables and no "
                                 "RDS_HOSTNAME" if service == "rds" else "")) from None
        return owned(self._spec, spec, self._stack.engine().container(spec.container_name))

    def running_container(self, service: str) -> ContainerInfo:
        """The service's running container, ours by label (a foreign one of that name is never entered)."""
        found = self.container(service)
        if found is None or not found.running:
            raise EngineError(f"the {service} container is not running: start the stack with `devstack up -d`")
        return found

    def not_running(self) -> list[str]:
        """The names of the stack's containers that are missing or stopped."""
        return [s.container_name for s in self._spec.services
                if (found := self.container(s.name)) is None or not found.running]

    def check_alive(self) -> None:
        """Fail fast instead of waiting out the timeout: a container that stopped, or a program
        that supervisor gave up on (FATAL), will not come back by itself."""
        engine = self._stack.engine()
        containers = {service.name: engine.container(service.container_name) for service in self._spec.services}
        for service in self._spec.services:
            found = containers[service.name]
            if found is None or not found.running:
                state = "missing" if found is None else found.status
                raise NotReady(f"container {service.container_name} is {state} while waiting for the stack "
                               "to answer", logs=self.last_logs(service.name))
        for instance in self._spec.instance_list:
            notebook = self._spec.service(instance.notebook)
            try:
                _, output = engine.exec(containers[notebook.name].id, ["supervisorctl", "status"])
            except EngineError:
                return  # an image without supervisorctl: the probes' timeout decides
            fatal = [line.split()[0] for line in output.splitlines() if " FATAL " in f" {line} "]
            if fatal:
                raise NotReady(f"supervisor gave up on {', '.join(fatal)} in container {notebook.container_name} "
                               "(it exited repeatedly right after starting): its log lines are below",
                               logs=self.last_logs(notebook.name, lines=30))

    def status(self, with_probes: bool = True, log_lines: int = 0) -> StackStatus:
        """A snapshot for the status view: each service's container and image, the probes, the latest logs."""
        engine, spec = self._stack.engine(), self._spec
        services = []
        for service in spec.services:
            container = engine.container(service.container_name)
            image = engine.image(container.image_id) if container else engine.image(service.image)
            if container is None:
                services.append(ServiceStatus(service.name, service.container_name, "missing", "", None, 0,
                                              service.image, _short(image.id) if image else "",
                                              image.created if image else None, ()))
                continue
            health = container.health
            if spec.database is not None and service.name == spec.database.service and container.running:
                # The database has no Docker healthcheck (one every few seconds would cost an idle stack
                # CPU): its readiness is asked now, the way `up` waits for it.
                ready = accepts_connections(engine, spec.database, container)
                health = "accepting connections" if ready else "not accepting connections"
            services.append(ServiceStatus(
                service=service.name,
                container=container.name,
                state=container.status,
                health=health,
                started_at=container.started_at,
                restarts=container.restart_count,
                image=service.image,
                image_id=_short(container.image_id),
                image_built=image.created if image else None,
                ports=container.ports,
            ))
        probes = tuple(self.probe()) if with_probes and any(s.state == "running" for s in services) else ()
        logs: tuple[str, ...] = ()
        if log_lines:
            try:
                logs = tuple(line for line in self.last_logs(lines=log_lines) if not is_probe_line(line))
            except DevstackError:
                logs = ()
        instances, environment = self.instance_health() if any(s.state == "running" for s in services) else ((), None)
        return StackStatus(spec.project, now(), tuple(services), probes, spec.urls(), logs=logs,
                           instances=instances, environment=environment)

    def instance_health(self) -> tuple[tuple[InstanceStatus, ...], RequestStats]:
        """What EB's enhanced health shows: each instance's last minute from its proxy's healthd log, the
        load balancer's view of it, and the environment's requests together."""
        engine, spec = self._stack.engine(), self._spec
        health = self.lb_health()
        backends = {b.instance: b.name for b in spec.balancer.backends} if spec.balancer else {}
        instances, every = [], []
        moment = time.time()
        for instance in spec.instance_list:
            proxy = self.container(instance.proxy)
            requests = []
            if proxy is not None and proxy.running:
                try:
                    _, output = engine.exec(proxy.id, ["sh", "-c", read_healthd(moment - WINDOW_SECONDS)])
                    requests = parse_healthd(output.splitlines())
                except EngineError:
                    requests = []
            every += requests
            seen = health.get(backends.get(instance.number, ""))
            instances.append(InstanceStatus(
                instance.number, spec.service(instance.notebook).container_name,
                spec.service(instance.proxy).container_name, seen.status if seen else "",
                seen.check if seen else "", request_stats(requests, moment)))
        return tuple(instances), request_stats(every, moment)

    def lb_health(self):  # noqa: ANN201 - dict[str, balancer.stats.InstanceHealth], by backend ("i1", ...)
        """The load balancer's view of each instance (its health checks); empty without a running one."""
        from ..balancer.stats import fetch_stats, stats_address

        balancer = self._spec.balancer
        if balancer is None:
            return {}
        found = self.container(balancer.service)
        address = stats_address(found.ports) if found is not None and found.running else None
        if address is None:
            return {}
        try:
            return fetch_stats(address, balancer)
        except httpx.HTTPError:
            return {}

    def wait_instances(self, timeout: float, interval: float = 0.5) -> None:
        """With several instances, until each is in service: the load balancer's health checks pass, and
        its Jupyter answers in its own container. (The health check asks Sifu only, as EB's asks one URL:
        through the load balancer alone, an instance whose Jupyter is still starting would get requests.)"""
        deadline = time.monotonic() + timeout
        while True:
            waiting = self._instances_not_ready()
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise NotReady(f"not ready after {timeout:.0f}s: {'; '.join(waiting)}",
                               logs=self.last_logs(lines=10))
            time.sleep(interval)

    def _instances_not_ready(self) -> list[str]:
        from .deploy import answers_check

        spec, engine = self._spec, self._stack.engine()
        health = self.lb_health()
        waiting = []
        for instance, backend in zip(spec.instance_list, spec.balancer.backends if spec.balancer else ()):
            seen = health.get(backend.name)
            if seen is None or not seen.in_service:
                waiting.append(f"the load balancer has instance {instance.number} "
                               f"{'unknown' if seen is None else f'{seen.status} ({seen.check})'}")
                continue
            notebook = self.container(instance.notebook)
            if notebook is None or not notebook.running:
                waiting.append(f"{spec.service(instance.notebook).container_name} is not running")
                continue
            try:
                code, _ = engine.exec(notebook.id, answers_check(spec.network.jupyter.process_port))
            except EngineError:
                continue  # an image without python3: the load balancer's view decides
            if code != 0:
                waiting.append(f"Jupyter does not answer yet in {notebook.name}")
        return waiting

    def probe(self) -> list[ProbeResult]:
        secrets = load_secrets(self._stack.settings)
        if secrets is None:
            return []
        return check_once(stack_probes(self._spec, secrets.sifu_secret, secrets.jupyter_token), timeout=2.0)

    def remains(self) -> tuple[bool, bool]:
        """Whether any container of the project is left, and whether its network is (host mode has none)."""
        engine, spec = self._stack.engine(), self._spec
        network = not spec.network.host_mode and bool(engine.networks(spec.project))
        return bool(engine.containers(spec.project)), network

    def events(self) -> Iterator[EngineEvent]:
        """The engine's events about this project (blocking)."""
        return self._stack.engine().events(self._spec.project)

    # -- logs ------------------------------------------------------------------------

    def last_logs(self, service: str | None = None, lines: int = 15) -> list[str]:
        """The last log lines of the stack's containers (one service, or all), redacted."""
        engine, redact = self._stack.engine(), self._stack.redact
        collected: list[str] = []
        for spec in self._spec.services:
            if service and spec.name != service:
                continue
            found = engine.container(spec.container_name)
            if found is None:
                continue
            collected += [f"{spec.name} | {redact(line)}" for line in engine.log_lines(found.id, tail=lines)
                          if line.strip()]
        return collected

    def log_lines(self, container_id: str, tail: int | str = "all", follow: bool = False,
                  since: datetime | None = None) -> Iterator[str]:
        """One container's log lines (`since`: from then on), redacted."""
        redact = self._stack.redact
        return (redact(line) for line in self._stack.engine().log_lines(container_id, tail=tail, follow=follow,
                                                                         since=since))

    def stream_logs(self, service: str | None, tail: int | str, follow: bool) -> Iterator[str]:
        """The logs of the stack's containers (one service, or all) as `service | line`, redacted,
        merged in the order lines arrive."""
        targets = [(spec.name, found) for spec in self._spec.services if service in (None, spec.name, service_kind(spec.name))
                   if (found := self._stack.engine().container(spec.container_name)) is not None]
        if not targets:
            raise EngineError(f"no container of project {self._spec.project} to show: run `devstack up`")
        width = max(len(name) for name, _ in targets)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(name: str, container_id: str) -> None:
            try:
                for line in self.log_lines(container_id, tail=tail, follow=follow):
                    lines.put(f"{name.ljust(width)} | {line}")
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

    # -- commands inside ------------------------------------------------------------

    def exec_user(self, service: str) -> str:
        """Who `shell` and `exec` run as by default: in the notebook container the user Jupyter runs as
        (so files they write in /notebooks belong to the folder's owner, not root); root elsewhere."""
        environment = dict(self._spec.service(service).environment)
        if "NB_UID" in environment:
            return f"{environment['NB_UID']}:{environment.get('NB_GID', environment['NB_UID'])}"
        return ""

    def shell(self, service: str, user: str | None) -> int:
        """An interactive shell (bash when the image has it); its exit code."""
        container = self.running_container(service)
        return self._stack.engine().exec_interactive(
            container.id, ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"],
            user=self.exec_user(service) if user is None else user)

    def exec_stream(self, service: str, command: list[str], user: str | None
                    ) -> tuple[Iterator[tuple[bytes | None, bytes | None]], Callable[[], int]]:
        container = self.running_container(service)
        return self._stack.engine().exec_stream(container.id, command,
                                                user=self.exec_user(service) if user is None else user)

    def restart_sifu(self) -> None:
        """Restart only the Sifu program (supervisorctl), in every instance; Jupyter and its kernels keep
        running."""
        for instance in self._spec.instance_list:
            self._restart_sifu_in(instance.notebook)

    def _restart_sifu_in(self, service: str) -> None:
        name = self._spec.service(service).container_name
        notebook = self.container(service)
        if notebook is None or not notebook.running:
            raise EngineError(f"container {name} is not running, so Sifu cannot be restarted in it: run `devstack up`")
        program = self._spec.app.sifu_program  # the name the image's supervisord.conf gives it
        code, output = self._stack.engine().exec(notebook.id, ["supervisorctl", "restart", program])
        if code != 0 or "ERROR" in output:
            raise NotReady(f"supervisorctl could not restart Sifu in {name} ({' '.join(output.split())}): "
                           "its last log lines are below; fix the code and save again",
                           logs=self.last_logs(service, lines=20))
        self._stack.notify(Acted(f"restarted Sifu in {name} (supervisorctl); Jupyter and its kernels untouched",
                                 service))

    def busy_kernels(self) -> list[str]:
        """IDs of the Jupyter kernels busy executing, on every instance (each has kernels of its own).
        Asked of Jupyter itself at each notebook container's address first (the proxy may be what is
        being repaired), then through the proxy or the load balancer (where the host cannot reach a
        container's address, Docker Desktop's VM say). A DevstackError when an instance answers neither way."""
        secrets = load_secrets(self._stack.settings)
        if secrets is None:
            return []
        busy: list[str] = []
        for instance in self._spec.instance_list:
            found = self.container(instance.notebook)
            if found is None or not found.running:
                continue  # a stopped instance runs no kernel
            failures = []
            for url, host in self._kernel_list_urls(found):
                try:
                    kernels = list_kernels(url, secrets.sifu_secret, secrets.jupyter_token, host=host)
                except NotReady as exc:
                    failures.append(str(exc))
                    continue
                busy += [str(k.get("id", "?")) for k in kernels if k.get("execution_state") == "busy"]
                break
            else:
                raise NotReady(f"no answer from Jupyter in {self._spec.service(instance.notebook).container_name}: "
                               + "; ".join(failures))
        return busy

    def _kernel_list_urls(self, notebook: ContainerInfo) -> list[tuple[str, str]]:
        """Where a notebook container's Jupyter kernel list is asked: (URL, Host header), directly, then
        through the stack's published port (which reaches this instance only when it is the only one)."""
        spec = self._spec
        urls = []
        address = notebook_address(spec, notebook)
        if address:
            # Jupyter answers only the stack's names (DNS rebinding): the Host is the public one.
            urls.append((f"http://{url_host(address)}:{spec.network.jupyter.process_port}/api/kernels",
                         url_host(spec.public_host)))
        if len(spec.instance_list) == 1:
            urls.append((spec.urls(spec.probe_host)["jupyter"] + "api/kernels", ""))
        return urls

    # -- restoring -------------------------------------------------------------------

    def stopped(self) -> tuple[list[ContainerInfo], list[str]]:
        """The stack's containers that exist but do not run (in the spec's order), and the names of
        the services that have no container at all."""
        stopped, missing = [], []
        for service in self._spec.services:
            found = self.container(service.name)
            if found is None:
                missing.append(service.name)
            elif not found.running:
                stopped.append(found)
        return stopped, missing


def service_kind(service: str) -> str:
    """An instance's service by its kind: notebook-2 -> notebook (`logs notebook` shows every instance's)."""
    head, _, number = service.rpartition("-")
    return head if head and number.isdigit() else service


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
