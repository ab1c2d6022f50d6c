"""What the engine has for one stack, read in one pass: the input of the plan."""

from __future__ import annotations

from ..docker.engine import Engine
from ..proxy.render import ProxyConfigStore
from ..spec import StackSpec
from .database import accepts_connections, database_container
from .lb_config import current_lb_config
from .plan import Observed


def observe(engine: Engine, spec: StackSpec) -> Observed:
    refs = [image.tag for image in spec.images] + [service.image for service in spec.services]
    images = {ref: found for ref in dict.fromkeys(refs) if (found := engine.image(ref)) is not None}
    containers = {service.container_name: found for service in spec.services
                  if (found := engine.container(service.container_name)) is not None}
    networks = [] if spec.network.host_mode else engine.networks_named(spec.network.name)
    volumes = {}
    ready: frozenset[str] = frozenset()
    if spec.database is not None:
        if (volume := engine.volume(spec.database.volume)) is not None:
            volumes[volume.name] = volume
        if accepts_connections(engine, spec.database, database_container(engine, spec)):
            ready = frozenset({spec.database.service})
    return Observed(
        images=images,
        containers=containers,
        labelled=tuple(engine.containers(spec.project)),
        network=networks[0] if networks else None,
        duplicate_networks=tuple(networks[1:]),
        proxies={instance.proxy: ProxyConfigStore(instance.proxy_spec.config_dir).current_files() or {}
                 for instance in spec.instance_list},
        lb_config=current_lb_config(spec.balancer) if spec.balancer is not None else None,
        volumes=volumes,
        ready=ready,
    )
