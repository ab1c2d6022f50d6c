"""A snapshot of the stack: what the status command, `--json` and the live view show.

Views only read snapshots; collecting one is the only part that talks to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .engine import now
from .probes import ProbeResult
from .reconcile import Controller


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    container: str
    state: str  # running, exited (1), created, missing
    health: str  # healthy, unhealthy, starting, or "" when the image has no healthcheck
    started_at: datetime | None
    restarts: int
    image: str
    image_id: str  # short
    image_built: datetime | None
    ports: tuple[str, ...]


@dataclass(frozen=True)
class BuildProgress:
    image: str
    step: int
    total: int
    instruction: str


@dataclass(frozen=True)
class StackStatus:
    project: str
    taken_at: datetime
    services: tuple[ServiceStatus, ...]
    probes: tuple[ProbeResult, ...]
    urls: dict[str, str]
    # What the live view adds: what is happening now, the last error, recent logs,
    # and the timeline of the last applied change (label, milliseconds since saved).
    activity: str = ""
    build: BuildProgress | None = None
    last_error: str = ""
    logs: tuple[str, ...] = ()
    timeline: tuple[tuple[str, float], ...] = field(default_factory=tuple)


def collect_status(controller: Controller, with_probes: bool = True) -> StackStatus:
    engine = controller.engine
    services = []
    for spec in controller.spec.services:
        container = engine.container(spec.container_name)
        image = engine.image(container.image_id) if container else engine.image(spec.image)
        if container is None:
            services.append(ServiceStatus(spec.name, spec.container_name, "missing", "", None, 0, spec.image,
                                          _short(image.id) if image else "", image.created if image else None, ()))
            continue
        services.append(ServiceStatus(
            service=spec.name,
            container=container.name,
            state=container.status,
            health=container.health,
            started_at=container.started_at,
            restarts=container.restart_count,
            image=spec.image,
            image_id=_short(container.image_id),
            image_built=image.created if image else None,
            ports=container.ports,
        ))
    probes = tuple(controller.probe()) if with_probes and any(s.state == "running" for s in services) else ()
    return StackStatus(controller.spec.project, now(), tuple(services), probes, controller.spec.urls())


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
