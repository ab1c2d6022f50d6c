"""What the core tells whoever shows it: small frozen dataclasses, dispatched on their type.

The core emits them (already redacted) through a `Notify` callback; the CLI prints them, the
live view folds them into its state. Nothing here imports the core, so a view needs no core
module to render an event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    message: str
    target: str = ""  # the image, service or network it is about ("" for the stack)


@dataclass(frozen=True)
class Acted(Event):
    """The stack changed or is about to: a build started, a container was created, removed, stopped."""


@dataclass(frozen=True)
class BuildOutput(Event):
    """One line of an image build; step and total follow the builder's `Step N/M`."""

    step: int = 0
    total: int = 0
    instruction: str = ""

    @property
    def is_step(self) -> bool:
        return self.message.startswith("Step ")


@dataclass(frozen=True)
class ImageBuilt(Event):
    image_id: str = ""


@dataclass(frozen=True)
class ProxyLoaded(Event):
    """A new proxy configuration passed `nginx -t` and is served (or will be, by a sidecar starting)."""

    generation: str = ""


@dataclass(frozen=True)
class Info(Event):
    pass


@dataclass(frozen=True)
class Warned(Event):
    pass


@dataclass(frozen=True)
class Ready(Event):
    """The stack answers through the proxy."""


@dataclass(frozen=True)
class Watching(Event):
    folders: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangeSeen(Event):
    """A batch of saved files, and what applying it will do."""

    files: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Activity(Event):
    """What a change being applied is doing now (waiting for kernels, reloading, ...)."""


@dataclass(frozen=True)
class ChangeFailed(Event):
    """Applying a change failed; what runs keeps running. `tail`: the build's or the containers' last lines."""

    tail: tuple[str, ...] = ()
    step: str = ""

    def full_text(self) -> str:
        return "\n".join([self.message, *(f"  | {line}" for line in self.tail)])


@dataclass(frozen=True)
class ChangeApplied(Event):
    """Milliseconds from the save to each step of applying it."""

    timeline: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class NothingToApply(Event):
    pass


@dataclass(frozen=True)
class EngineEvent:
    """One event of the engine's stream about a project's container (or network), as devstack names it."""

    kind: str  # "container" or "network"
    action: str  # create, start, die, destroy, health_status: healthy, ...
    name: str  # the container's or network's name
    service: str = ""  # the container's devstack.service label
    id: str = ""

    def describe(self) -> str:
        return f"{self.service or self.name or '?'}: {self.action}"


@dataclass(frozen=True)
class EngineLost(Warned):
    """The engine's event stream ended (the daemon restarted, say): devstack reconnects with backoff."""


@dataclass(frozen=True)
class EngineBack(Info):
    """The engine answers again after `EngineLost`; what stopped meanwhile is restored next."""

    down_seconds: float = 0.0


@dataclass(frozen=True)
class Restoring(Activity):
    """A container of the stack stopped without devstack stopping it: it is being started again."""


@dataclass(frozen=True)
class Restored(Event):
    """The containers that had stopped run again and the stack answers through the proxy."""

    seconds: float = 0.0


@dataclass(frozen=True)
class RestoreFailed(ChangeFailed):
    """A stopped container could not be restored, or it crash-loops and devstack stopped trying;
    `tail`: its last log lines."""


@dataclass(frozen=True)
class DeploymentProgress(Activity):
    """A deployment replacing notebook containers as EB's does (`aws:elasticbeanstalk:command`): where it
    is, batch by batch. `phase` is one of the PHASE_* names below."""

    policy: str = ""  # Rolling, AllAtOnce, Immutable, ...; "staging" for the one-instance flip
    batch: int = 0  # 1-based
    batches: int = 0
    instances: tuple[int, ...] = ()  # the batch's instances
    phase: str = ""

    @property
    def complete(self) -> bool:
        return self.phase == PHASE_COMPLETE


PHASE_OUT = "out of service"  # the batch left the load balancer's rotation
PHASE_BESIDE = "starting beside the old"  # new containers start while the old ones serve
PHASE_IN = "in service"  # the batch is back in the rotation (or its proxy flipped to the new container)
PHASE_COMPLETE = "complete"  # the last batch is in service


Notify = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A `Notify` for callers that show nothing."""
