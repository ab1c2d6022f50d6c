"""A snapshot of the stack: what the status command, `--json` and the live view show. Data only.

Views only read snapshots; collecting one (`reconcile.running.Running.status`) is the only part
that talks to the engine. A running `up` or `watch` also writes what it is doing (activity, build step, last
error, last change's timeline) to `.devstack/live.json`, so that `devstack status`
beside it prints the same content as the live view.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .balancer.health import RequestStats
from .events import PHASE_COMPLETE
from .probes import PROBE_USER_AGENT, ProbeResult

LIVE_STATE_FILE = "live.json"
LOG_LINES = 8


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
class InstanceStatus:
    """One instance as EB's enhanced health shows it: the load balancer's view and its last minute."""

    number: int
    notebook: str  # its containers
    proxy: str
    lb_status: str  # UP, DOWN, MAINT, ... as the load balancer's health checks say; "" without one
    lb_check: str  # the last check's result (L7OK, L4CON, L7STS ...)
    requests: RequestStats


@dataclass(frozen=True)
class StackStatus:
    project: str
    taken_at: datetime
    services: tuple[ServiceStatus, ...]
    probes: tuple[ProbeResult, ...]
    urls: dict[str, str]
    live: LiveFacts = field(default_factory=lambda: LiveFacts())  # what a watching devstack adds
    logs: tuple[str, ...] = ()  # the latest log lines
    # EB's enhanced health: per instance, and the environment's (every instance's requests together).
    instances: tuple[InstanceStatus, ...] = ()
    environment: RequestStats | None = None


@dataclass(frozen=True)
class DeploymentFacts:
    """The latest deployment's progress, as EB's console shows it: batch K of M, and what that batch is
    doing (events.PHASE_*), since `at` (HH:MM:SS)."""

    policy: str
    batch: int
    batches: int
    instances: tuple[int, ...]
    phase: str
    at: str = ""

    def describe(self) -> str:
        which = ", ".join(str(number) for number in self.instances)
        if self.phase == PHASE_COMPLETE:
            return f"{self.policy}: complete, {self.batches} batch{'es' if self.batches != 1 else ''} ({self.at})"
        return (f"{self.policy}: batch {self.batch} of {self.batches} (instance {which}) {self.phase}"
                + (f" since {self.at}" if self.at else ""))


@dataclass(frozen=True)
class LiveFacts:
    """What a watching devstack knows and the engine does not: what is happening now, the last error,
    the timeline of the last applied change (label, milliseconds since saved), the folders watched
    (empty: nobody watches), what it last did to keep the stack up, and the latest deployment's progress."""

    activity: str = ""
    build: BuildProgress | None = None
    last_error: str = ""
    timeline: tuple[tuple[str, float], ...] = ()
    watching: tuple[str, ...] = ()
    recovery: str = ""  # what keeping the stack up did last: a container restored, the engine lost or back
    deployment: DeploymentFacts | None = None  # the latest deployment's progress

    def to_json(self) -> dict[str, Any]:
        return {"pid": os.getpid(), **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LiveFacts:
        build, deployment = data.get("build"), data.get("deployment")
        return cls(
            activity=str(data.get("activity") or ""),
            build=BuildProgress(**build) if isinstance(build, dict) else None,
            last_error=str(data.get("last_error") or ""),
            timeline=tuple((str(label), float(ms)) for label, ms in data.get("timeline") or ()),
            watching=tuple(str(folder) for folder in data.get("watching") or ()),
            recovery=str(data.get("recovery") or ""),
            deployment=DeploymentFacts(**{**deployment, "instances": tuple(deployment.get("instances") or ())})
            if isinstance(deployment, dict) else None,
        )


def save_live_facts(state_dir: Path, facts: LiveFacts) -> None:
    """Replace `.devstack/live.json` atomically (readers never see half a file)."""
    if not state_dir.is_dir():
        return
    tmp = state_dir / f".{LIVE_STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(facts.to_json()))
    os.replace(tmp, state_dir / LIVE_STATE_FILE)


def clear_live_facts(state_dir: Path) -> None:
    try:
        data = json.loads((state_dir / LIVE_STATE_FILE).read_text())
        if data.get("pid") == os.getpid():
            (state_dir / LIVE_STATE_FILE).unlink()
    except (OSError, ValueError, AttributeError):
        pass


def load_live_facts(state_dir: Path) -> LiveFacts | None:
    """What a running `up`/`watch` last wrote, if that process is still alive."""
    try:
        data = json.loads((state_dir / LIVE_STATE_FILE).read_text())
        os.kill(int(data["pid"]), 0)
        return LiveFacts.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def with_live_facts(status: StackStatus, facts: LiveFacts | None) -> StackStatus:
    if facts is None:
        return status
    return replace(status, live=facts)


def is_probe_line(line: str) -> bool:
    """The proxy's access log line of one of devstack's own probes: not news."""
    return PROBE_USER_AGENT in line


@dataclass(frozen=True)
class CheckResult:
    """One row of `devstack doctor`."""

    check: str
    status: str  # pass, info, warn, fail
    detail: str
    fix: str = ""
