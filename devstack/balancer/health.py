"""EB's enhanced health, from the proxies' `healthd` logs: requests per second, the share of each status
class, and latency percentiles, over the last minute. Pure: log lines in, figures out.

A healthd line, as the EB host's nginx writes it (nginx.conf's `log_format healthd`):
`$msec"$uri"$status"$request_time"$upstream_response_time"$http_x_forwarded_for`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0  # EB's enhanced health reports over the last minute (its 10 s refresh aside)
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True)
class Request:
    at: float  # epoch seconds
    status: int
    seconds: float  # nginx's $request_time


@dataclass(frozen=True)
class RequestStats:
    requests: int = 0
    per_second: float = 0.0
    shares: dict[str, float] = field(default_factory=dict)  # "2xx" -> percent of the requests
    p50: float | None = None  # milliseconds
    p90: float | None = None
    p99: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"requests": self.requests, "per_second": round(self.per_second, 2),
                "shares": {k: round(v, 1) for k, v in self.shares.items()},
                "latency_ms": {"p50": _ms(self.p50), "p90": _ms(self.p90), "p99": _ms(self.p99)}}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def parse_healthd(lines: Iterable[str]) -> list[Request]:
    found = []
    for line in lines:
        parts = line.strip().split('"')
        if len(parts) < 4:
            continue
        try:
            found.append(Request(float(parts[0]), int(parts[2]), float(parts[3])))
        except ValueError:
            continue  # a line cut in two by a rotation, or another format
    return found


def request_stats(requests: Iterable[Request], now: float, window: float = WINDOW_SECONDS) -> RequestStats:
    recent = [r for r in requests if now - window <= r.at <= now]
    if not recent:
        return RequestStats(shares={name: 0.0 for name in STATUS_CLASSES})
    shares = {name: 100.0 * sum(1 for r in recent if r.status // 100 == int(name[0])) / len(recent)
              for name in STATUS_CLASSES}
    latencies = sorted(r.seconds * 1000 for r in recent)
    return RequestStats(len(recent), len(recent) / window, shares,
                        _percentile(latencies, 50), _percentile(latencies, 90), _percentile(latencies, 99))


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest rank: the smallest value with at least `percent` of the values at or below it."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def read_healthd(since: float) -> str:
    """Run in a proxy (`sh -c`): the lines of the last two hourly healthd files (the last minute may span
    two) logged from `since` on (epoch seconds; the container's clock is the host's). Filtered where the
    files are: they grow with every request for an hour, and reading them whole made each snapshot
    (every 10 s while devstack watches) parse, and hold at once, more lines the longer it ran: 6,000 after
    10 minutes at 10 requests a second (1.7 MB of objects at once), up to 40,000 (12 MB). Now bounded by
    the window's request rate, and by the tail whatever the rate. An image without awk gets the tails
    unfiltered."""
    tails = 'ls -1 application.log.* 2>/dev/null | tail -n 2 | while read -r f; do tail -n 20000 "$f"; done'
    keep = f"awk -F'\"' '$1 + 0 >= {since:.3f}'"
    return (f"cd /var/log/nginx/healthd 2>/dev/null || exit 0; "
            f"if command -v awk >/dev/null 2>&1; then {tails} | {keep}; else {tails}; fi")
