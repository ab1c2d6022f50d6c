"""The load balancer's view of each instance: haproxy's statistics (its CSV), as ELB's instance health."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import httpx

from ..spec import LB_STATS_PORT, BalancerSpec
from .render import listener_name


@dataclass(frozen=True)
class InstanceHealth:
    backend: str  # "i1", "i2", ...
    status: str  # UP, DOWN, MAINT (stopped or removed: its name no longer resolves), "UP 1/2" while rising ...
    check: str  # the last check's result: L7OK, L4CON (refused), L7STS (wrong status), ...
    since: int  # seconds since the status last changed

    @property
    def in_service(self) -> bool:
        """ELB's InService: the load balancer sends it requests."""
        return self.status.startswith("UP")


def parse_stats(text: str, balancer: BalancerSpec) -> dict[str, InstanceHealth]:
    """Each instance's health as the backend that checks it (the first listener's) reports it."""
    checker = listener_name(balancer.listeners[0])
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    found = {}
    for row in rows:
        if row.get("pxname") == checker and row.get("svname") not in ("FRONTEND", "BACKEND"):
            found[row["svname"]] = InstanceHealth(row["svname"], row.get("status", ""), row.get("check_status", ""),
                                                  int(row.get("lastchg") or 0))
    return found


def stats_address(ports: tuple[str, ...]) -> str | None:
    """Where the engine published haproxy's statistics port ("127.0.0.1:32768"), from `ContainerInfo.ports`."""
    for port in ports:
        address, _, inside = port.partition("->")
        if inside.split("/")[0] == str(LB_STATS_PORT):
            return address
    return None


def fetch_stats(address: str, balancer: BalancerSpec, timeout: float = 2.0) -> dict[str, InstanceHealth]:
    response = httpx.get(f"http://{address}/stats;csv", timeout=timeout, trust_env=False)
    response.raise_for_status()
    return parse_stats(response.text, balancer)
