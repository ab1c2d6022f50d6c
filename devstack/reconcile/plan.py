"""Desired stack + what the engine has -> a plan. Pure: no engine, no file system.

`plan_stack` is the one place that decides what each hash is made of (an image's: its context
and its parent's ID; a container's: its spec, its image's ID, and for the notebook the secrets'
fingerprint), so `up`, the watcher asking whether a recreate is coming, and the applier all agree.
Steps come in the order they must be applied: the proxy's image and the load balancer's (pulled
first, so that a missing one stops `up` before anything is built or started), images (base first),
the network, the containers of services the stack no longer has (INSTANCES changed), then for each
instance the notebook container, the proxy's configuration (the notebook's address), the proxy
container; with several instances, last, the load balancer's configuration and container.
A step that needs what an earlier one produces (a new image's ID, the notebook's new IP) is
listed with `ready=False`: the applier applies the ready ones, observes again, and plans again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from ..docker.engine import ContainerInfo, ImageInfo, NetworkInfo, VolumeInfo
from ..errors import ConflictError
from ..spec import LABEL_CONFIG_HASH, LABEL_CONTEXT_HASH, LABEL_SERVICE, ImageSpec, ServiceSpec, StackSpec


class Verb(str, Enum):
    BUILD = "build"
    PULL = "pull"
    CREATE_NETWORK = "create network"
    REMOVE_NETWORK = "remove network"  # an empty duplicate of the project's network
    REMOVE = "remove"  # a service's container under an older name
    CREATE = "create"
    RECREATE = "recreate"
    START = "start"
    LOAD_PROXY_CONFIG = "load proxy configuration"
    CREATE_VOLUME = "create volume"
    WAIT_READY = "wait for"  # a service that must answer before what follows (the coupled database)
    LOAD_LB_CONFIG = "load load balancer configuration"


@dataclass(frozen=True)
class Step:
    verb: Verb
    target: str  # an image or service name, the network's name, or a container's name (REMOVE)
    reason: str
    ready: bool = True  # False: waits for an earlier step's result
    container_id: str = ""  # REMOVE, RECREATE, START: the container it acts on
    config_hash: str = ""  # CREATE, RECREATE: the label the new container carries
    context_hash: str = ""  # BUILD: the label the new image carries
    network_id: str = ""  # REMOVE_NETWORK: which of the networks of that name

    def __str__(self) -> str:
        return f"{self.verb.value} {self.target}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.steps)

    def ready_steps(self) -> tuple[Step, ...]:
        """The steps that can be applied now: those before the first that waits for another's result."""
        ready = []
        for step in self.steps:
            if not step.ready:
                break
            ready.append(step)
        return tuple(ready)

    def touches(self, service: str, *verbs: Verb) -> bool:
        return any(s.target == service and (not verbs or s.verb in verbs) for s in self.steps)

    def recreates(self, service: str) -> bool:
        """Whether the service's running container is about to be replaced (its processes end)."""
        return self.touches(service, Verb.RECREATE)


@dataclass(frozen=True)
class Observed:
    """What the engine has for this stack, read once (observe.py)."""

    images: Mapping[str, ImageInfo]  # by reference (the spec's tags, the proxy's image); missing: absent
    containers: Mapping[str, ContainerInfo]  # by container name, whoever owns it
    labelled: tuple[ContainerInfo, ...] = ()  # every container carrying this project's label
    network: NetworkInfo | None = None
    # Other networks of the same name (the engine allows several): the network is then ambiguous.
    duplicate_networks: tuple[NetworkInfo, ...] = ()
    # The configuration each instance's sidecar serves, by its proxy service's name.
    proxies: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    lb_config: str | None = None  # the load balancer's configuration, as written; None: none yet
    volumes: Mapping[str, VolumeInfo] = field(default_factory=dict)  # by name: the stack's named volumes
    ready: frozenset[str] = frozenset()  # services whose readiness check passed (the coupled database)

    def notebook_address(self, spec: StackSpec, service: str = "notebook") -> str:
        return notebook_address(spec, self.containers.get(spec.service(service).container_name))


def notebook_address(spec: StackSpec, notebook: ContainerInfo | None) -> str:
    """Where the proxy reaches the notebook container: its IP on the network they share (the seed's hook
    reads .NetworkSettings.IPAddress, empty on a user-defined network), or the host's loopback; "" when
    it is not running."""
    if notebook is None or not notebook.running:
        return ""
    return spec.network.upstream_host or notebook.ips.get(spec.network.name, "")


@dataclass(frozen=True)
class Inputs:
    """What the project's files say, read at the edge (stack.py)."""

    contexts: Mapping[str, str]  # image name -> digest of its build context (files, build args)
    secrets: str  # the generated secrets' fingerprint: a rotated secret means a new container
    # Each instance's proxy configuration for its notebook's observed address (by proxy service name);
    # missing or None while that notebook has none.
    proxies: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    lb_config: str | None = None  # the load balancer's configuration, rendered (None: no load balancer)
    force: frozenset[str] = frozenset()  # images to build whatever their hash says (`devstack build`)


def image_hash(context_digest: str, parent_id: str, database_volume: str = "") -> str:
    """The label an image carries: its context, the ID of the image it is built FROM, and for a build
    that migrates the coupled database, when that database's volume was made (a volume removed by
    `down --volumes` and made anew is an empty database: the build migrates it again, as each EB deploy
    builds anew)."""
    text = f"{context_digest}\nparent={parent_id}" + (f"\ndatabase-volume={database_volume}" if database_volume else "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_image(image: ImageSpec, desired_hash: str, observed: ImageInfo | None, force: bool = False,
               migrates: bool = False) -> Step | None:
    if force:
        return Step(Verb.BUILD, image.name, "requested", context_hash=desired_hash)
    if observed is None:
        return Step(Verb.BUILD, image.name, f"{image.tag} does not exist yet", context_hash=desired_hash)
    if observed.labels.get(LABEL_CONTEXT_HASH) != desired_hash:
        also = ", or the database volume its build migrates was made anew," if migrates else ""
        return Step(Verb.BUILD, image.name, f"its build context ({image.context}) changed{also} since {image.tag} "
                    "was built", context_hash=desired_hash)
    return None


def plan_service(service: ServiceSpec, desired_hash: str, observed: ContainerInfo | None) -> Step | None:
    if observed is None:
        return Step(Verb.CREATE, service.name, f"{service.container_name} does not exist", config_hash=desired_hash)
    if observed.labels.get(LABEL_CONFIG_HASH) != desired_hash:
        return Step(Verb.RECREATE, service.name, "its image or configuration changed", container_id=observed.id,
                    config_hash=desired_hash)
    if not observed.running:
        return Step(Verb.START, service.name, f"{service.container_name} is {observed.status}",
                    container_id=observed.id)
    return None


def plan_stack(spec: StackSpec, observed: Observed, inputs: Inputs) -> Plan:
    """Every step that brings what the engine has to the desired stack, with the reason for each.
    Raises ConflictError when a name the stack needs is held by something devstack did not create."""
    steps: list[Step] = []
    # Pulled before anything is built or created: a missing image must leave nothing half-started.
    proxy_image = _pulled(spec.service("proxy"), observed, steps)
    lb_image = _pulled(spec.service(spec.balancer.service), observed, steps) if spec.balancer is not None else None
    image_steps: list[Step] = []
    image_ids = _plan_images(spec, observed, inputs, image_steps)
    if spec.database is None:
        steps += image_steps
        if not spec.network.host_mode:
            _plan_network(spec, observed, steps)
    else:
        # The coupled database answers before the final image is built: its build may migrate it.
        final = spec.service("notebook").build
        steps += [s for s in image_steps if s.target != final]
        if not spec.network.host_mode:
            _plan_network(spec, observed, steps)
        waiting = _plan_database(spec, observed, steps)
        steps += [replace(s, ready=False) if waiting and s.verb is Verb.BUILD else s
                  for s in image_steps if s.target == final]
    steps += _plan_leftovers(spec, observed)
    notebook_image = None
    for number, instance in enumerate(spec.instance_list):
        notebook, proxy = spec.service(instance.notebook), spec.service(instance.proxy)
        if number == 0:  # every instance runs the same image: one pull, with the first
            notebook_image = image_ids.get("notebook") if notebook.build else _pulled(notebook, observed, steps)
        notebook_steps = _plan_container(spec, notebook, observed, notebook_image, inputs.secrets, steps)
        rendered = inputs.proxies.get(instance.proxy)
        served = observed.proxies.get(instance.proxy, {})
        if notebook_steps or rendered is None:
            steps.append(Step(Verb.LOAD_PROXY_CONFIG, proxy.name, "the notebook container gets a new address",
                              ready=False))
        elif dict(rendered) != dict(served):
            reason = "its configuration changed" if served else "it has no configuration yet"
            steps.append(Step(Verb.LOAD_PROXY_CONFIG, proxy.name, reason))
        _plan_container(spec, proxy, observed, proxy_image, "", steps)
    if spec.balancer is not None:
        _plan_balancer(spec, observed, inputs, lb_image, steps)
    return Plan(tuple(steps))


def _plan_balancer(spec: StackSpec, observed: Observed, inputs: Inputs, image: str | None,
                   steps: list[Step]) -> None:
    """The load balancer: its configuration (checked before it is written), its container (its image
    was pulled first).
    Its configuration names the proxies by their container names, so an instance's new address never
    changes it; only what the project declares does, and a change is a reload, not a recreate."""
    assert spec.balancer is not None
    service = spec.service(spec.balancer.service)
    if inputs.lb_config != observed.lb_config:
        reason = "its declarations changed" if observed.lb_config else "it has no configuration yet"
        steps.append(Step(Verb.LOAD_LB_CONFIG, service.name, reason, ready=image is not None))
    _plan_container(spec, service, observed, image, "", steps)


# A service of the instances' kind: what INSTANCES adds or takes away.
_INSTANCE_SERVICE = re.compile(r"^(notebook|proxy)(-\d+)?$|^lb$")


def _plan_leftovers(spec: StackSpec, observed: Observed) -> list[Step]:
    """The containers of instances (or of a load balancer) the stack no longer has: removed first, since
    what replaces them publishes the same ports. Only this project's, found by label."""
    wanted = {service.name for service in spec.services}
    return [Step(Verb.REMOVE, old.name, f"the stack now has {len(spec.instance_list)} instance"
                 f"{'s' if len(spec.instance_list) > 1 else ''} (INSTANCES), and no {old.labels[LABEL_SERVICE]}",
                 container_id=old.id)
            for old in observed.labelled
            if _INSTANCE_SERVICE.match(old.labels.get(LABEL_SERVICE, "")) and old.labels[LABEL_SERVICE] not in wanted]


def _pulled(service: ServiceSpec, observed: Observed, steps: list[Step]) -> str | None:
    """The ID of a service's image that is pulled, not built; a pull step when it is not here."""
    found = observed.images.get(service.image)
    if found is None:
        steps.append(Step(Verb.PULL, service.name, f"{service.image} ({service.image_origin}) is not on this machine"))
        return None
    return found.id


def _plan_images(spec: StackSpec, observed: Observed, inputs: Inputs, steps: list[Step]) -> dict[str, str | None]:
    """Image steps, base first; the IDs the images will have (None: not known until built)."""
    ids: dict[str, str | None] = {}
    for image in spec.images:
        parent_id = ids.get(image.parent) if image.parent else ""
        if parent_id is None:  # its parent is rebuilt first
            steps.append(Step(Verb.BUILD, image.name, f"the {image.parent} image it is built from is rebuilt",
                              ready=False))
            ids[image.name] = None
            continue
        found = observed.images.get(image.tag)
        migrates = spec.build_migrates(image)
        volume = observed.volumes.get(spec.database.volume) if migrates and spec.database is not None else None
        desired = image_hash(inputs.contexts[image.name], parent_id, volume.created if volume is not None else "")
        step = plan_image(image, desired, found, force=image.name in inputs.force, migrates=migrates)
        if step is not None:
            steps.append(step)
        ids[image.name] = None if step is not None or found is None else found.id
    return ids


def _plan_database(spec: StackSpec, observed: Observed, steps: list[Step]) -> bool:
    """The coupled database's steps: its volume, its image, its container, the wait until it accepts
    connections. Returns whether it is still to answer (what needs it waits)."""
    database = spec.database
    assert database is not None
    volume = observed.volumes.get(database.volume)
    if volume is None:
        steps.append(Step(Verb.CREATE_VOLUME, database.volume, "the database keeps its data there"))
    elif not spec.owns(volume):
        raise ConflictError(f"volume {database.volume} exists and was not created by devstack for project "
                            f"{spec.project}: remove it yourself or set DEVSTACK_PROJECT to another name")
    service = spec.service(database.service)
    mine = _plan_container(spec, service, observed, _pulled(service, observed, steps), "", steps)
    if mine or database.service not in observed.ready:
        steps.append(Step(Verb.WAIT_READY, database.service, f"{database.describe()} must accept connections "
                                                             "before the final image is built"))
        return True
    return False


def _plan_network(spec: StackSpec, observed: Observed, steps: list[Step]) -> None:
    name = spec.network.name
    if observed.network is None:
        steps.append(Step(Verb.CREATE_NETWORK, name, "the stack's containers share it"))
        return
    for network in (observed.network, *observed.duplicate_networks):
        if not spec.owns(network):
            raise ConflictError(f"network {name} ({network.id[:12]}) exists and was not created by devstack for "
                                f"project {spec.project}: remove it yourself or set DEVSTACK_PROJECT to another name")
    for network in duplicates_to_remove(observed.network, observed.duplicate_networks):
        steps.append(Step(Verb.REMOVE_NETWORK, name, f"an empty duplicate ({network.id[:12]}) of the project's "
                          "network makes its name ambiguous", network_id=network.id))


def duplicates_to_remove(network: NetworkInfo, duplicates: tuple[NetworkInfo, ...]) -> list[NetworkInfo]:
    """Of several networks of one name, all of this project: the empty ones to remove so that one is left
    (the one holding containers, else the oldest). Two holding containers: a ConflictError that says how
    to start over, since removing either would cut containers off."""
    if not duplicates:
        return []
    networks = sorted((network, *duplicates), key=lambda n: n.created)
    in_use = [n for n in networks if n.containers]
    if len(in_use) > 1:
        raise ConflictError(f"{len(networks)} networks are named {network.name} ({', '.join(n.id[:12] for n in networks)})"
                            f" and {len(in_use)} of them hold containers: run `devstack down`, then `devstack up`")
    keep = in_use[0] if in_use else networks[0]
    return [n for n in networks if n is not keep]


def _plan_container(spec: StackSpec, service: ServiceSpec, observed: Observed, image_id: str | None, extra: str,
                    steps: list[Step]) -> list[Step]:
    """The service's steps (appended to `steps` and returned). `image_id` None: its image is not there yet."""
    found = owned(spec, service, observed.containers.get(service.container_name))
    mine = [Step(Verb.REMOVE, old.name, f"the {service.name} container is now named {service.container_name}",
                 container_id=old.id)
            for old in observed.labelled
            if old.labels.get(LABEL_SERVICE) == service.name and old.name != service.container_name]
    if image_id is None:
        if found is None:
            mine.append(Step(Verb.CREATE, service.name, f"{service.container_name} does not exist", ready=False))
        else:
            mine.append(Step(Verb.RECREATE, service.name, "its image is rebuilt", ready=False, container_id=found.id))
    else:
        step = plan_service(service, service.config_hash(image_id, extra), found)
        if step is not None:
            mine.append(step)
    steps += mine
    return mine


def owned(spec: StackSpec, service: ServiceSpec, found: ContainerInfo | None) -> ContainerInfo | None:
    """The service's container if it is this project's; a container of that name that devstack did not
    create for it is a conflict (never removed, never entered)."""
    if found is not None and not spec.owns(found):
        raise ConflictError(
            f"container {service.container_name} exists and was not created by devstack for project {spec.project}: "
            f"rename or remove it yourself, or set {_name_setting(spec, service)} to another name")
    return found


def _name_setting(spec: StackSpec, service: ServiceSpec) -> str:
    """The setting that names this container: NOTEBOOK_CONTAINER_NAME when it is set, else the project."""
    chosen = service.name == "notebook" and service.container_name != f"{spec.project}-notebook"
    return "NOTEBOOK_CONTAINER_NAME" if chosen else "DEVSTACK_PROJECT"
