"""Benchmark 1: a saved proxy configuration -> the new configuration answering on both ports.

devstack: a template saved while `devstack watch` runs (quiet period, render, `nginx -t` in
the sidecar, swap, reload). Baseline, in the same run, on a second stack: the same change made
by hand to the rendered files, then the proxy container restarted (`docker restart`) until it
answers. Also shown: the same by hand with `docker exec ... nginx -s reload` instead.
The clock starts before the file is written and stops when both 3334 and 3335 answer with
the new configuration (a header that changes with each save), polled on fresh connections.

    .venv/bin/python bench/proxy_reload.py [--runs 15] [--flavor nginx|openresty]
"""

from __future__ import annotations

import argparse
import http.client
import re
import tempfile
import time
from pathlib import Path

from _common import docker, set_header, make_project, median, report, wait_until

from devstack.watch.debounce import QUIET_SECONDS

HEADER = "X-Devstack-Bench"


def answering(project, value: str) -> bool:
    """Both listeners answer with the new header (Sifu's health; Jupyter's gate, which is a 403 without
    the cookie). A new connection each time, so that no keepalive connection to an old worker answers."""
    for port, path in ((project.sifu_port, "/health"), (project.jupyter_port, "/api/status")):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", path)
            if connection.getresponse().getheader(HEADER) != value:
                return False
        except OSError:
            return False
        finally:
            connection.close()
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--flavor", choices=("nginx", "openresty"), default="nginx", help="PROXY_FLAVOR of both stacks")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    # Two stacks side by side: restarting a proxy by hand must not disturb the one devstack watches.
    watched, manual = (make_project(root, label, PROXY_FLAVOR=args.flavor) for label in ("proxyw", "proxyh"))
    templates = watched.own_templates()
    sources = [templates / "sites-enabled" / name for name in ("sifu.conf.j2", "jupyter.conf.j2")]
    for project in (watched, manual):
        project.run("up", "-d")
    proxy = f"{manual.name}-proxy"
    rendered = manual.dir / ".devstack" / "proxy" / "current" / "sites-enabled"
    rendered_files = [rendered / "sifu.conf", rendered / "jupyter.conf"]
    watch = watched.start("watch")
    devstack, restart, reload, reported = [], [], [], []
    try:
        watch.wait_for_line("watching ")
        started_at = docker("inspect", "-f", "{{.State.StartedAt}}", f"{watched.name}-proxy").strip()
        for run in range(args.runs):
            # devstack: save the templates, wait for the new configuration to answer.
            value = f"devstack-{run}"
            mark = watch.mark()
            start = time.perf_counter()
            set_header(sources, HEADER, value)
            wait_until(lambda v=value: answering(watched, v), interval=0.01, what="devstack's reload")
            devstack.append(time.perf_counter() - start)
            applied = watch.wait_for_line("applied:", after=mark)
            reported.append(float(re.search(r"reloaded (\d+) ms", applied)[1]) / 1000)

            # Baseline: edit the configuration nginx reads, restart the container by hand.
            value = f"restart-{run}"
            start = time.perf_counter()
            set_header(rendered_files, HEADER, value)
            docker("restart", proxy)
            wait_until(lambda v=value: answering(manual, v), interval=0.01, what="the restarted proxy")
            restart.append(time.perf_counter() - start)

            # For reference: the same edit with a reload by hand.
            value = f"reload-{run}"
            start = time.perf_counter()
            set_header(rendered_files, HEADER, value)
            docker("exec", proxy, "nginx", "-s", "reload")
            wait_until(lambda v=value: answering(manual, v), interval=0.01, what="the reload by hand")
            reload.append(time.perf_counter() - start)
            time.sleep(0.3)
        restarted = docker("inspect", "-f", "{{.State.StartedAt}}", f"{watched.name}-proxy").strip() != started_at
    finally:
        watch.stop()
        for project in (watched, manual):
            project.down()
    ratio = median(devstack) / median(restart)
    name = "proxy_reload" if args.flavor == "nginx" else f"proxy_reload_{args.flavor}"
    report(name, "Benchmark 1: proxy configuration saved -> new configuration answering on 3334 and 3335", [
        ("devstack watch (save -> answering)", devstack, "s"),
        ("  devstack's own timeline: save -> reloaded (old workers no longer accepting)", reported, "s"),
        ("baseline: docker restart proxy", restart, "s"),
        ("reference: docker exec nginx -s reload", reload, "s"),
    ], {"flavor": args.flavor,
        "ratio_devstack_to_restart": round(ratio, 3),
        "quiet_period_s": QUIET_SECONDS,
        "watched_sidecar_restarted": restarted,
        "ratio_devstack_to_reload_by_hand": round(median(devstack) / median(reload), 3),
        "target_median_s": 0.3, "target_met": median(devstack) <= 0.3},
        command=f"python bench/proxy_reload.py --runs {args.runs} --flavor {args.flavor}")


if __name__ == "__main__":
    main()
