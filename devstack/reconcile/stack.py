"""One project's stack, as the commands and the watcher drive it: observe, plan, apply, until the
plan is empty; and stop or remove what it made."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..docker.engine import ContainerInfo, Engine
from ..errors import ConflictError, DevstackError, EngineError, NotReady
from ..events import Acted, Info, Notify, Ready, Warned, ignore
from ..lock import DEFAULT_WAIT_SECONDS, Holder, project_lock, waiting_line
from ..probes import ProbeResult, stack_probes, wait_until_ready
from ..proxy.lint import Finding
from ..balancer.render import render_haproxy_config
from ..proxy.render import render_proxy_config
from ..redact import Redactor
from ..settings import Settings
from ..spec import LABEL_IMAGE, ImageSpec, StackSpec, load_stack
from ..state import ensure_secrets, load_secrets
from . import preflight
from .apply import Applier, StepHook
from .deploy import Deployer
from .images import context_digests, prepare_images, refuse_secrets_in_context
from .observe import observe
from .plan import Inputs, Plan, Step, Verb, plan_stack
from .running import Running, service_kind
from .stop_order import DATABASE_SERVICE, DATABASE_STOP_TIMEOUT_SECONDS, stop_waves

# Each round applies the steps whose inputs are known, then observes again: base, final, notebook,
# configuration, proxy take at most this many rounds; more means something undoes what was applied.
MAX_ROUNDS = 8


class Stack:
    """Brings one project's stack to its desired state and reports what it does (as typed events)."""

    def __init__(self, settings: Settings, notify: Notify = ignore, connect: Callable[[], Engine] = Engine.connect,
                 redactor: Redactor | None = None, lock_wait: float | None = DEFAULT_WAIT_SECONDS):
        self.settings = settings
        self.lock = project_lock(settings.state_dir)
        self.lock_wait = lock_wait
        self.up_began = False
        self.spec: StackSpec = load_stack(settings)
        self.notify = notify
        self.redact = redactor or Redactor()
        self.redact.add(*settings.secret_values())
        self.redact.add(*self.spec.secret_values())
        secrets = load_secrets(settings)
        if secrets:
            self.redact.add(*secrets.values())
        self._connect = connect
        self._engine: Engine | None = None
        self._applier: Applier | None = None
        self.running = Running(self)

    def engine(self) -> Engine:
        """The connected engine (on first use). For the core's own modules; commands and views go
        through the Stack's methods."""
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def describe_again(self) -> None:
        """Read the project's files again (its own proxy files are found when the stack is described)."""
        self.spec = load_stack(self.settings)
        self.redact.add(*self.spec.secret_values())
        if self._applier is not None:
            self._applier.describe(self.spec)  # keeps the shell open in the sidecar

    def applier(self) -> Applier:
        if self._applier is None:
            self._applier = Applier(self.engine(), self.spec, self._say, self.redact,
                                    refuse_secrets=lambda image: refuse_secrets_in_context(image, self.settings))
        return self._applier

    def _say(self, event) -> None:  # noqa: ANN001 - an events.Event, redacted where it was made
        self.notify(event)

    @contextmanager
    def exclusive(self, forever: bool = False, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """This process alone changes the stack while the block runs (see lock.py). Another holder is
        waited for up to `lock_wait` seconds (`--lock-wait`), or with `forever` as long as it takes."""
        def waiting(holder: Holder | None) -> None:
            self.notify(Info(waiting_line(holder)))

        with self.lock.held(waiting, None if forever else self.lock_wait, cancelled):
            yield

    # -- observe, plan, apply --------------------------------------------------------

    def plan(self, force: frozenset[str] = frozenset()) -> Plan:
        """What applying would do now, and why. Nothing in the engine changes; the project's secrets are
        generated if missing (they are hashed into the notebook's config), and Sifu is fetched if
        SIFU_REPO is set."""
        return self._plan(self._inputs_source(force))

    def converge(self, force: frozenset[str] = frozenset(), no_cache: bool = False, images_only: bool = False,
                 before: StepHook | None = None, after: StepHook | None = None) -> list[Step]:
        """Apply plans until the plan is empty; returns the steps applied. `before` and `after` see each
        step (the watcher waits for busy kernels before a recreate, and times each step). Holds the
        project's lock (re-entrant: `up` and the watcher hold it already; `build` takes it here)."""
        with self.exclusive():
            return self._converge(force, no_cache, images_only, before, after)

    def _converge(self, force: frozenset[str], no_cache: bool, images_only: bool, before: StepHook | None,
                  after: StepHook | None) -> list[Step]:
        source = self._inputs_source(force)
        applier = self.applier()
        applier.images.update({image.name: image for image in source.images})
        applier.no_cache = no_cache
        applied: list[Step] = []
        deployer = Deployer(self)
        for _ in range(MAX_ROUNDS):
            plan = self._plan(source)
            steps = [s for s in plan.ready_steps() if not images_only or s.verb is Verb.BUILD
                     or s.target in self._build_needs()]
            if not steps:
                break
            for step in steps:
                if before is not None:
                    before(step)
                if deployer.handles(step):  # a notebook replaced as EB deploys: rolling, or the staging flip
                    deployer.apply(step, plan)
                else:
                    applier.apply(step)
                applied.append(step)
                if after is not None:
                    after(step)
                if step.verb is Verb.BUILD:
                    source.force = source.force - {step.target}  # built as asked: the next round plans by hash
        else:
            raise EngineError(f"the stack did not settle after {MAX_ROUNDS} rounds; still to do: "
                              + "; ".join(str(s) for s in self._plan(source).steps))
        applier.remove_superseded_images()
        return applied

    def _build_needs(self) -> set[str]:
        """What a build alone (`devstack build`) still starts: the coupled database, its volume and the
        network, since the final image's build may migrate it."""
        database = self.spec.database
        return set() if database is None else {database.service, database.volume, self.spec.network.name}

    def _inputs_source(self, force: frozenset[str]) -> _InputsSource:
        preflight.write_docker_envs(self.spec)  # before the contexts are read: the final build may COPY it
        images = prepare_images(self.spec, self.settings, self._say, self.redact)
        secrets = ensure_secrets(self.settings)
        self.redact.add(*secrets.values())
        return _InputsSource(images, context_digests(images), secrets.fingerprint(), force)

    def _plan(self, source: _InputsSource) -> Plan:
        observed = observe(self.engine(), self.spec)
        proxies = {}
        for instance in self.spec.instance_list:
            address = observed.notebook_address(self.spec, instance.notebook)
            proxies[instance.proxy] = render_proxy_config(instance.proxy_spec, address).files if address else None
        balancer = self.spec.balancer
        inputs = Inputs(source.digests, source.secrets, proxies=proxies,
                        lb_config=render_haproxy_config(balancer) if balancer is not None else None,
                        force=source.force)
        return plan_stack(self.spec, observed, inputs)

    def reload_proxy(self, moved_only: bool = False) -> bool:
        """The proxy's own reconcile, without the images': load the configuration for the notebook's
        current address if it differs from what is served (`moved_only`: only for a notebook whose
        address is not the one last loaded). Returns whether it did."""
        return self.applier().load_proxy_config(moved_only=moved_only)

    def restore(self, containers: list[ContainerInfo]) -> None:
        """Start again containers of the stack that stopped without devstack stopping them (killed,
        crashed, or stopped by a daemon restart), as EB's agent restarts a dead container: each as it
        is, not recreated (what it runs is what ran). The notebook first, then the proxy's configuration
        for the notebook's address (it may have a new IP), then the proxy, so that nginx never starts
        on a stale upstream."""
        applier = self.applier()
        by_service = {container.service: container for container in containers}
        for service in self.spec.services:
            found = by_service.get(service.name)
            if found is not None:
                applier.apply(Step(Verb.START, service.name, f"{found.name} is {found.status}",
                                   container_id=found.id))
            if service.name == "notebook":
                notebook = self.running.container("notebook")
                if notebook is not None and notebook.running:
                    self.reload_proxy()

    def release(self) -> None:
        """What this stack keeps open besides its engine connection (a stack made anew takes over)."""
        if self._applier is not None:
            self._applier.proxy.close()

    def cancel_builds(self) -> None:
        """End the builds in flight (devstack is ending); nothing when no engine was connected."""
        if self._engine is not None:
            self._engine.cancel_builds()

    def report_lint(self) -> list[Finding]:
        return preflight.report_lint(self)

    # -- the commands -----------------------------------------------------------------

    def up(self, ready_timeout: float = 180.0) -> list[ProbeResult]:
        """Everything to the desired state, then wait until it answers through the proxy. Everything
        that can be checked is checked first; when applying fails, what this `up` created is removed
        again (what existed before it is left)."""
        with self.exclusive():
            self.up_began = True  # a Ctrl-C before this (waiting for another devstack) has nothing to stop
            preflight.check(self)
            applier = self.applier()
            applier.created.clear()
            try:
                self.converge()
            except DevstackError:
                self._remove_created(applier)
                raise
            return self.wait_ready(ready_timeout)

    def _remove_created(self, applier: Applier) -> None:
        for kind, object_id, name in reversed(applier.created):
            try:
                if kind == "container":
                    self.engine().remove(object_id, name)
                else:
                    self.engine().remove_network(object_id)
            except DevstackError as exc:
                self.notify(Warned(f"could not remove {kind} {name}, which this `up` created: {exc}", name))
                continue
            self.notify(Acted(f"removed {kind} {name} again: this `up` created it and failed", name))
        applier.created.clear()

    def build(self, images: set[str], no_cache: bool = False) -> None:
        self.converge(force=frozenset(images), no_cache=no_cache, images_only=True)

    def wait_ready(self, timeout: float, stop: threading.Event | None = None) -> list[ProbeResult]:
        """Wait until the stack answers through the proxy; `stop` set cuts the wait short (NotReady)."""
        secrets = ensure_secrets(self.settings)
        probes = stack_probes(self.spec, secrets.sifu_secret, secrets.jupyter_token)
        started = time.monotonic()
        try:
            results = wait_until_ready(probes, timeout, still_alive=self.running.check_alive,
                                       stopped=stop.is_set if stop is not None else lambda: False)
            if self.spec.balancer is not None:
                self.running.wait_instances(max(1.0, timeout - (time.monotonic() - started)))
        except NotReady as exc:
            raise NotReady(self.redact(str(exc)), logs=exc.logs or self.running.last_logs()) from None
        self.notify(Ready("ready: Sifu and Jupyter answer through the proxy" if self.spec.balancer is None else
                          f"ready: Sifu and Jupyter answer through the load balancer, and its "
                          f"{len(self.spec.instance_list)} instances are in service"))
        return results

    def stop(self, services: tuple[str, ...] = (), cancelled: Callable[[], bool] = lambda: False) -> None:
        """Stop the project's containers (or these services'), keep them (compose's Ctrl-C). They are
        stopped in waves (stop_order.py: the database after the notebooks), each wave side by side:
        what a Ctrl-C waits for is then the slowest container's stop, not the sum. `cancelled` ends a
        wait for another devstack's lock (StackBusy), never a stop under way."""
        with self.exclusive(cancelled=cancelled):
            engine = self.engine()
            names = self._container_names(services)
            running = [container for container in engine.containers(self.spec.project)
                       if container.running and (names is None or container.name in names)]
            for wave in stop_waves(container.service for container in running):
                self._stop_side_by_side(engine, [c for c in running if c.service in wave.services], wave.timeout)

    def _stop_side_by_side(self, engine: Engine, containers: list[ContainerInfo], timeout: int) -> None:
        """Stop these containers at once; the first error is raised once all have been asked (a wave
        that failed is not followed by the next: a notebook still running may still need the database)."""
        errors: list[DevstackError] = []

        def stop_one(container: ContainerInfo) -> None:
            try:
                engine.stop(container.id, container.name, timeout=timeout)
            except DevstackError as exc:
                errors.append(exc)
                return
            self.notify(Acted(f"stop {container.name}", container.service))

        threads = [threading.Thread(target=stop_one, args=(c,), name=f"devstack-stop-{c.service}")
                   for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def start(self, services: tuple[str, ...] = (), ready_timeout: float = 180.0) -> None:
        """Start the stopped containers of the stack (or of these services), then point each instance's
        proxy at its notebook's address, which a restart may change."""
        with self.exclusive():
            engine = self.engine()
            names = self._container_names(services)
            started = []
            for service in self.spec.services:
                if names is not None and service.container_name not in names:
                    continue
                found = self.running.container(service.name)
                if found is None:
                    raise EngineError(f"container {service.container_name} does not exist: run `devstack up`")
                if not found.running:
                    engine.start(found.id, found.name)
                    self.notify(Acted(f"start {found.name}", service.name))
                    started.append(service.name)
            if started:
                self.reload_proxy()
                if self.spec.balancer is not None:
                    self.running.wait_instances(ready_timeout)
                    self.notify(Ready("ready: every instance is in service behind the load balancer"))

    def _container_names(self, services: tuple[str, ...]) -> set[str] | None:
        """The containers these services name ("notebook" and "proxy": every instance's); None: all."""
        if not services:
            return None
        names = set()
        for wanted in services:
            matching = [s.container_name for s in self.spec.services if wanted in (s.name, service_kind(s.name))]
            if not matching:
                known = ", ".join(s.name for s in self.spec.services)
                raise EngineError(f"the stack has no service {wanted}: it has {known}")
            names.update(matching)
        return names

    def down(self, remove_images: bool = False, remove_volumes: bool = False,
             cancelled: Callable[[], bool] = lambda: False) -> None:
        """Remove the project's containers and network, found by label; nothing else. The database's
        volume is kept unless `remove_volumes` (`down --volumes`). With `remove_images`, also the images
        devstack built that no other project's container uses."""
        with self.exclusive(cancelled=cancelled):
            engine = self.engine()
            remove_project(engine, self.spec.project, self.notify)
            if remove_volumes:
                for volume in engine.volumes(self.spec.project):
                    engine.remove_volume(volume.name)
                    self.notify(Acted(f"remove volume {volume.name} (its data is deleted)", "volume"))
            elif self.spec.database is not None and engine.volume(self.spec.database.volume) is not None:
                self.notify(Info(f"kept volume {self.spec.database.volume} (the database's data): "
                                 "`devstack down --volumes` removes it", self.spec.database.service))
            if remove_images:
                remove_unshared_images(engine, self.spec.project, [(i.tag, i.name) for i in reversed(self.spec.images)],
                                       self.notify)


def remove_project(engine: Engine, project: str, notify: Notify) -> None:
    """Remove a project's containers and networks, found by its label alone: this needs no setting
    but the project's name (so `down` works while `.env` is invalid). The coupled database goes last,
    after its clean shutdown (a removal kills at once, and MySQL would recover from its redo log at the
    next start); the others are removed at once, as compose's `down` does after its stop."""
    containers = engine.containers(project)
    for container in sorted(containers, key=lambda c: c.service == DATABASE_SERVICE):
        if container.service == DATABASE_SERVICE and container.running:
            engine.stop(container.id, container.name, timeout=DATABASE_STOP_TIMEOUT_SECONDS)
        engine.remove(container.id, container.name)
        notify(Acted(f"remove container {container.name}", container.service))
    for network in engine.networks(project):
        engine.remove_network(network.id)
        notify(Acted(f"remove network {network.name}", "network"))


def remove_unshared_images(engine: Engine, project: str, images: list[tuple[str, str]], notify: Notify) -> None:
    """Remove each (tag, image name) that devstack built, unless another project's stack uses it: a
    container of it was created from that tag (two projects with the default tags share one), or its
    image is one that such a container's image was built from (a shared base). A tag on the very image
    another project runs under another tag is only a second name: removing it just untags."""
    by_tag: dict[str, str] = {}  # tag -> the other project's container created from it
    by_ancestor: dict[str, str] = {}  # image ID -> the other project's container whose image is built from it
    lineages: dict[str, list[str]] = {}  # containers of one image share its lineage
    for container in engine.containers():
        if container.project == project:
            continue
        who = f"project {container.project}'s container {container.name}"
        by_tag.setdefault(full_tag(container.image_ref), who)
        if container.image_id not in lineages:
            lineages[container.image_id] = engine.image_lineage(container.image_id)
        for image_id in lineages[container.image_id][1:]:
            by_ancestor.setdefault(image_id, who)
    for tag, name in images:
        found = engine.image(tag)
        if found is None or LABEL_IMAGE not in found.labels:
            continue  # not built by devstack: not ours to remove
        user = by_tag.get(full_tag(tag)) or by_ancestor.get(found.id)
        if user:
            notify(Warned(f"kept image {tag}: {user} uses it", name))
            continue
        try:
            engine.remove_image(tag)
            notify(Acted(f"remove image {tag}", name))
        except (ConflictError, EngineError) as exc:
            notify(Warned(f"kept image {tag}: {exc}", name))


def full_tag(ref: str) -> str:
    """`name` and `name:latest` are one tag."""
    return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else f"{ref}:latest"


@dataclass
class _InputsSource:
    """What one converge reads from the project's files once: the prepared images and their digests."""

    images: tuple[ImageSpec, ...]
    digests: dict[str, str]
    secrets: str
    force: frozenset[str]
