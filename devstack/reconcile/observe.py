"""What the engine has for one stack, read in one pass: the input of the plan."""

from __future__ import annotations

from ..docker.engine import Engine
from ..proxy.render import ProxyConfigStore
from ..spec import StackSpec
from .plan import Observed


def observe(engine: Engine, spec: StackSpec) -> Observed:
    refs = [image.tag for image in spec.images] + [service.image for service in spec.services]
    images = {ref: found for ref in dict.fromkeys(refs) if (found := engine.image(ref)) is not None}
    containers = {service.container_name: found for service in spec.services
                  if (found := engine.container(service.container_name)) is not None}
    networks = [] if spec.network.host_mode else engine.networks_named(spec.network.name)
    return Observed(
        images=images,
        containers=containers,
        labelled=tuple(engine.containers(spec.project)),
        network=networks[0] if networks else None,
        duplicate_networks=tuple(networks[1:]),
        proxy_files=ProxyConfigStore(spec.proxy.config_dir).current_files() or {},
    )
