"""Pure functions from a `StackStatus` to what a person or a script reads.

`render_status` builds a rich renderable (the live view displays it, the
status command prints it once); `status_to_json` is the `--json` form;
`event_line` is the one plain line per event printed without a TTY.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import rich.cells
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..events import PHASE_COMPLETE, Activity, BuildOutput, ChangeFailed, Event, Warned
from ..snapshot import BuildProgress, CheckResult, LiveFacts, StackStatus

_STATE_STYLE = {"running": "green", "missing": "dim", "created": "yellow"}
_HEALTH_STYLE = {"healthy": "green", "unhealthy": "red", "starting": "yellow",
                 "accepting connections": "green", "not accepting connections": "red"}


def forget_drawn_widths() -> None:
    """Empty rich's cache of the width of each string it drew (an LRU of 4,096 strings, kept for the
    whole process). The live view draws a new log line for each request the proxy logs, and each
    change's timings: the cache would fill with them for tens of minutes (about 1 MB, and the pymalloc
    arenas its strings pin), so RSS would not be flat. Emptied on each slow tick, it holds what is on
    screen; measuring those again costs microseconds. (A private helper of rich: a rich without it
    only keeps its cache.)"""
    cache = getattr(rich.cells, "cached_cell_len", None)
    if cache is not None and hasattr(cache, "cache_clear"):
        cache.cache_clear()


def humanize_age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def services_table(status: StackStatus) -> Table:
    table = Table(title=f"devstack · {status.project}", title_justify="left", expand=False)
    for column in ("service", "container", "state", "health", "uptime", "restarts", "image", "built", "ports"):
        table.add_column(column, no_wrap=column != "ports")
    for svc in status.services:
        state_style = _STATE_STYLE.get(svc.state, "red")
        table.add_row(
            svc.service,
            svc.container,
            Text(svc.state, style=state_style),
            Text(svc.health or "-", style=_HEALTH_STYLE.get(svc.health, "")),
            humanize_age(svc.started_at, status.taken_at),
            str(svc.restarts),
            f"{svc.image} {svc.image_id}".strip(),
            humanize_age(svc.image_built, status.taken_at) + (" ago" if svc.image_built else ""),
            "\n".join(svc.ports) or "-",
        )
    return table


def probes_table(status: StackStatus) -> Table:
    table = Table(title="through the proxy", title_justify="left", expand=False)
    for column in ("check", "url", "result", "ms"):
        table.add_column(column)
    for result in status.probes:
        table.add_row(
            result.probe.hop,
            result.probe.url,
            Text(("ok: " if result.ok else "FAIL: ") + result.detail, style="green" if result.ok else "red"),
            f"{result.elapsed_ms:.0f}",
        )
    return table


_LB_STYLE = {"UP": "green", "DOWN": "red", "MAINT": "dim"}


def health_table(status: StackStatus) -> Table:
    """EB's enhanced health: per instance and for the environment, over the last minute."""
    table = Table(title="health (last minute, from the proxies' healthd logs)", title_justify="left", expand=False)
    for column in ("instance", "load balancer", "req/s", "2xx", "3xx", "4xx", "5xx", "p50", "p90", "p99"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("instance", "load balancer") else "right")

    def figures(stats) -> list[str]:  # noqa: ANN001 - RequestStats
        shares = [f"{stats.shares.get(name, 0.0):.0f}%" for name in ("2xx", "3xx", "4xx", "5xx")]
        latency = [f"{value:.0f} ms" if value is not None else "-" for value in (stats.p50, stats.p90, stats.p99)]
        return [f"{stats.per_second:.1f}", *shares, *latency]

    for instance in status.instances:
        lb = instance.lb_status or "-"
        shown = Text(lb + (f" ({instance.lb_check})" if instance.lb_check and lb != "UP" else ""),
                     style=_LB_STYLE.get(lb.split()[0], "yellow"))
        table.add_row(f"{instance.number} ({instance.notebook})", shown, *figures(instance.requests))
    if status.environment is not None and len(status.instances) > 1:
        up = sum(i.lb_status.startswith("UP") for i in status.instances)
        table.add_row(Text("environment", style="bold"), f"{up}/{len(status.instances)} in service",
                      *figures(status.environment))
    return table


def render_status(status: StackStatus) -> RenderableType:
    parts: list[RenderableType] = [services_table(status)]
    if status.instances:
        parts.append(health_table(status))
    if status.probes:
        parts.append(probes_table(status))
    urls = Text("open ")
    urls.append(status.urls.get("login", ""), style="bold cyan")
    urls.append("  (Sifu logs you into Jupyter at ")
    urls.append(status.urls.get("jupyter", ""), style="cyan")
    urls.append(")")
    if "http" in status.urls:
        urls.append("; port 80's listener (HTTP_PORT) at ")
        urls.append(status.urls["http"], style="cyan")
    parts.append(urls)
    live = status.live
    if live.activity or live.build:
        parts.append(_activity(live))
    elif live.watching:
        parts.append(Text(f"now: watching {', '.join(live.watching)} (save a file to apply it)", style="dim"))
    if live.deployment is not None:
        parts.append(Text(f"deployment: {live.deployment.describe()}",
                          style="green" if live.deployment.phase == PHASE_COMPLETE else "yellow"))
    if live.recovery:
        parts.append(Text(f"kept up: {live.recovery}", style="yellow"))
    if live.timeline:
        parts.append(Text("last change: " + "  →  ".join(f"{label} {ms:.0f} ms" for label, ms in live.timeline)))
    if live.last_error:
        parts.append(Panel(Text(live.last_error, style="red"), title="last error", title_align="left"))
    if status.logs:
        parts.append(Panel(Text("\n".join(status.logs)), title="latest logs", title_align="left"))
    return Group(*parts)


def _activity(live: LiveFacts) -> RenderableType:
    if live.build is None:
        return Text(f"now: {live.activity}", style="yellow")
    return build_progress(live.build)


def build_progress(build: BuildProgress) -> RenderableType:
    """`building notebook [=====     ] step 3/12: RUN ...`: the live view and `devstack build` show this."""
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        Text(f"building {build.image}", style="yellow"),
        ProgressBar(total=max(build.total, 1), completed=build.step, width=30),
        Text(f"step {build.step}/{build.total}: {build.instruction[:60]}"),
    )
    return grid


def status_to_json(status: StackStatus) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    live = status.live
    return {
        "project": status.project,
        "taken_at": when(status.taken_at),
        "urls": status.urls,
        "services": [
            {
                "service": s.service,
                "container": s.container,
                "state": s.state,
                "health": s.health or None,
                "started_at": when(s.started_at),
                "restarts": s.restarts,
                "image": s.image,
                "image_id": s.image_id,
                "image_built": when(s.image_built),
                "ports": list(s.ports),
            }
            for s in status.services
        ],
        "probes": [
            {"check": r.probe.hop, "url": r.probe.url, "ok": r.ok, "status": r.status, "detail": r.detail,
             "expected": r.probe.expected, "ms": round(r.elapsed_ms, 1)}
            for r in status.probes
        ],
        "activity": live.activity or None,
        "build": ({"image": live.build.image, "step": live.build.step, "total": live.build.total,
                   "instruction": live.build.instruction} if live.build else None),
        "last_error": live.last_error or None,
        "timeline": [{"step": label, "ms": round(ms, 1)} for label, ms in live.timeline],
        "watching": list(live.watching),
        "recovery": live.recovery or None,
        "deployment": ({"policy": d.policy, "batch": d.batch, "batches": d.batches, "instances": list(d.instances),
                        "phase": d.phase, "since": d.at or None} if (d := live.deployment) is not None else None),
        "logs": list(status.logs),
        "instances": [
            {"instance": i.number, "notebook": i.notebook, "proxy": i.proxy,
             "load_balancer": {"status": i.lb_status or None, "check": i.lb_check or None},
             **i.requests.to_json()}
            for i in status.instances
        ],
        "environment": status.environment.to_json() if status.environment is not None else None,
    }


def event_line(event: Event) -> str:
    """One plain line for an event (printed as is without a TTY); a failure with its output."""
    if isinstance(event, BuildOutput):
        return f"[build {event.target} {event.step}/{event.total}] {event.message}"
    if isinstance(event, ChangeFailed):
        return f"error: {event.full_text()}"
    if isinstance(event, Warned):
        return f"warning: {event.message}"
    if isinstance(event, Activity):
        return f"now: {event.message}"
    return event.message


# -- doctor ---------------------------------------------------------------------------

_DOCTOR_STYLE = {"pass": "green", "info": "dim", "warn": "yellow", "fail": "bold red"}


def render_doctor(results: list[CheckResult]) -> RenderableType:
    """One table of checks: status, what was checked, what was found, the fix."""
    table = Table(title="devstack doctor", title_justify="left", expand=False)
    for column in ("", "check", "found", "fix"):
        table.add_column(column, overflow="fold")
    for result in results:
        table.add_row(Text(result.status, style=_DOCTOR_STYLE.get(result.status, "")), result.check,
                      result.detail, result.fix or "-")
    counts = {status: sum(r.status == status for r in results) for status in ("pass", "info", "warn", "fail")}
    summary = Text(", ".join(f"{n} {status}" for status, n in counts.items() if n),
                   style="bold red" if counts["fail"] else "green")
    return Group(table, summary)


def doctor_to_json(results: list[CheckResult]) -> dict[str, Any]:
    return {
        "ok": not any(r.status == "fail" for r in results),
        "checks": [{"check": r.check, "status": r.status, "detail": r.detail, "fix": r.fix or None} for r in results],
    }


def doctor_lines(results: list[CheckResult]) -> list[str]:
    """The same checks as plain lines, for output that is not a terminal."""
    lines = [f"{r.status:<4}  {r.check}: {r.detail}" + (f" (fix: {r.fix})" if r.fix else "") for r in results]
    failures = sum(r.status == "fail" for r in results)
    lines.append(f"{failures} failed" if failures else "no check failed")
    return lines
