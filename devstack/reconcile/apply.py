"""The one place that changes the stack: it carries out a plan's steps, in order."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from ..docker.engine import Engine
from ..errors import ConflictError, EngineError
from ..events import Acted, Notify
from ..redact import Redactor
from ..spec import LABEL_CONFIG_HASH, LABEL_IMAGE, LABEL_SERVICE, ImageSpec, StackSpec
from .database import build_password_in_effect, wait_until_accepting
from .images import build_image
from .lb_config import load_lb_config
from .plan import Step, Verb, notebook_address
from .proxy_config import ProxyLoader

StepHook = Callable[[Step], None]


class Applier:
    """Applies steps to one stack's engine objects. Remembers the images that builds and recreates
    replaced, and removes them once nothing uses them."""

    def __init__(self, engine: Engine, spec: StackSpec, notify: Notify, redact: Redactor,
                 refuse_secrets: Callable[[ImageSpec], None] | None = None):
        self.engine = engine
        self.spec = spec
        self.notify = notify
        self.redact = redact
        self.refuse_secrets = refuse_secrets or (lambda image: None)
        self.proxy = ProxyLoader(engine, spec, notify)  # the (first) instance's
        self._proxies: dict[str, ProxyLoader] = {}  # the other instances', by proxy service name
        self.images: dict[str, ImageSpec] = {image.name: image for image in spec.images}
        self.no_cache = False
        self._superseded: set[str] = set()
        # What was created since `created` was last cleared, in order: ("container" | "network", id, name).
        # `up` removes it again when applying fails, so a failed `up` leaves the stack as it found it.
        self.created: list[tuple[str, str, str]] = []

    def describe(self, spec: StackSpec) -> None:
        """The stack was described again (the project's proxy files changed)."""
        self.spec = self.proxy.spec = spec
        for loader in self._proxies.values():
            loader.spec = spec

    def apply(self, step: Step) -> None:
        if step.verb is not Verb.LOAD_PROXY_CONFIG:  # the loader says what it loaded, and whether
            self.notify(Acted(self.redact(str(step)), step.target))
        handler = {
            Verb.BUILD: self._build,
            Verb.PULL: self._pull,
            Verb.CREATE_NETWORK: self._create_network,
            Verb.REMOVE_NETWORK: self._remove_network,
            Verb.REMOVE: self._remove_renamed,
            Verb.CREATE: self._create,
            Verb.RECREATE: self._create,
            Verb.START: self._start,
            Verb.LOAD_PROXY_CONFIG: self._load_proxy_config,
            Verb.CREATE_VOLUME: self._create_volume,
            Verb.WAIT_READY: self._wait_ready,
            Verb.LOAD_LB_CONFIG: self._load_lb_config,
        }[step.verb]
        handler(step)

    # -- one handler per verb ------------------------------------------------

    def _build(self, step: Step) -> None:
        image = self.images[step.target]
        before = self.engine.image(image.tag)
        self.refuse_secrets(image)
        with build_password_in_effect(self.engine, self.spec, self.notify) if self.spec.build_migrates(image) \
                else nullcontext():
            image_id = build_image(self.engine, image, step.context_hash, self.no_cache, self.notify, self.redact)
        if before is not None and before.id != image_id:
            self._superseded.add(before.id)

    def _pull(self, step: Step) -> None:
        service = self.spec.service(step.target)
        try:
            self.engine.pull(service.image)
        except EngineError as exc:
            raise EngineError(f"{service.image_origin}={service.image} is not on this machine and pulling it failed "
                              f"({exc}): pull or load it yourself, or name an image you have") from None

    def _create_volume(self, step: Step) -> None:
        assert self.spec.database is not None
        labels = {**self.spec.labels, LABEL_SERVICE: self.spec.database.service}
        self.engine.create_volume(step.target, labels)

    def _wait_ready(self, step: Step) -> None:
        wait_until_accepting(self.engine, self.spec, self.notify, self.redact)

    def _create_network(self, step: Step) -> None:
        network = self.engine.create_network(step.target, self.spec.labels)
        self.created.append(("network", network.id, step.target))

    def _remove_network(self, step: Step) -> None:
        self.engine.remove_network(step.network_id)

    def _remove_renamed(self, step: Step) -> None:
        self.engine.remove(step.container_id, step.target)

    def _create(self, step: Step) -> None:
        service = self.spec.service(step.target)
        if step.container_id:
            old = self.engine.container(step.container_id)
            self.engine.remove(step.container_id, service.container_name)
            if old is not None:
                self._superseded.add(old.image_id)
        network = self.spec.network.name
        container_id = self.engine.create_container(service, network, {LABEL_CONFIG_HASH: step.config_hash})
        self.created.append(("container", container_id, service.container_name))
        self.engine.start(container_id, service.container_name)

    def _start(self, step: Step) -> None:
        self.engine.start(step.container_id, self.spec.service(step.target).container_name)

    def _load_proxy_config(self, step: Step) -> None:
        self.load_proxy_config(step.target)

    def _load_lb_config(self, step: Step) -> None:
        load_lb_config(self.engine, self.spec)

    def loader(self, proxy: str) -> ProxyLoader:
        """The loader of one instance's sidecar (each keeps its own shell open there)."""
        first = self.spec.instance_list[0].proxy
        if proxy in ("proxy", first):
            return self.proxy
        if proxy not in self._proxies:
            self._proxies[proxy] = ProxyLoader(self.engine, self.spec, self.notify, proxy)
        return self._proxies[proxy]

    def load_proxy_config(self, proxy: str | None = None, moved_only: bool = False) -> bool:
        """Load the configuration for where each instance's notebook is now (or one instance's: its proxy
        service's name); one inspect each: this runs on every saved proxy file, within the reload's 0.3 s."""
        changed = False
        for instance in self.spec.instance_list:
            if proxy is not None and proxy not in (instance.proxy, "proxy" if instance.number == 1 else ""):
                continue
            notebook = self.engine.container(self.spec.service(instance.notebook).container_name)
            address, loader = notebook_address(self.spec, notebook), self.loader(instance.proxy)
            if moved_only and address and address == loader.address:
                continue
            changed = loader.load(address) or changed
        return changed

    def superseded(self, image_id: str) -> None:
        """An image a replaced container used: removed with the others once nothing uses it."""
        self._superseded.add(image_id)

    # -- afterwards ---------------------------------------------------------------

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
            self.notify(Acted(f"remove image {image_id.removeprefix('sha256:')[:12]}: replaced by a rebuild, "
                              "no longer used", found.labels[LABEL_IMAGE]))
