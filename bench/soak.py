"""Benchmark 8: a soak: a foreground `devstack up` kept busy for minutes.

devstack: `devstack up` in the foreground on a terminal (a pseudo-terminal: the rich live view,
the watcher, the event stream and the log followers all run; `--plain`: without a terminal), for
`--minutes` (10 by default) while, at the same time:
- a proxy template is saved every `--proxy-every` seconds (3): a header's value changes, so each
  save is a check, a swap and a reload;
- `.env` is saved every `--env-every` seconds (20) with a new variable value, so each save recreates
  the notebook container (a real change, not a save of the same content);
- a request loop asks Sifu's health on the Sifu port, through the proxy, every `--request-every`
  seconds (0.1), each on a new loopback connection.
Reported: requests, and failed requests split by when they failed: while a recreate was being
applied (from an `.env` save until the stack answered again: the rebuild gap that the load-balanced
issue's staging flip is for) or otherwise, that is on proxy reloads (goal 0); the longest gap per
recreate; the devstack process's memory (VmRSS) at the start, after the first minute, at the end and
its peak (goal: flat after the first minute); and what is left at the end: proxy generations in
`.devstack/proxy/`, the project's containers, whether its image tags still name the images they
named (the soak builds nothing), and untagged images devstack built that appeared meanwhile (on the
whole engine: another run's count too).

With `--trace-every 60`, one line a minute: RSS, threads, open fds, and where the resident anonymous memory
is (the main heap, glibc's other malloc arenas, the rest), to tell a leak of objects from arenas.

    .venv/bin/python bench/soak.py [--minutes 10] [--plain] [--trace-every SECONDS]
"""

from __future__ import annotations

import argparse
import http.client
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import docker, set_header, make_project, median, report
from helpers import Background, OnTerminal  # the tests' harness; _common put tests/ on the path

HEADER = "X-Devstack-Soak"
# After an .env save, failures count as the recreate's until the stack answers again (at most this long).
RECREATE_WINDOW_MAX_SECONDS = 60.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# glibc reserves each malloc arena but the main one as a 64 MiB-aligned mapping (HEAP_MAX_SIZE).
ARENA_ALIGN = 64 * 1024 * 1024


def process_figures(pid: int) -> dict[str, float]:
    """What `--trace-every` prints: VmRSS, threads, open fds, and the resident anonymous memory split into
    the main heap ([heap]), glibc's other arenas (mappings starting on a 64 MiB boundary) and the rest
    (thread stacks, large malloc'd blocks, Python's own arenas)."""
    figures = {"rss_mb": rss_mb(pid), "threads": len(list(Path(f"/proc/{pid}/task").iterdir())),
               "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())), "heap_mb": 0.0, "arenas": 0,
               "arenas_mb": 0.0, "other_anon_mb": 0.0}
    kind = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header
            start = int(fields[0].split("-")[0], 16)
            path = fields[5] if len(fields) > 5 else ""
            kind = ("heap_mb" if path == "[heap]" else None if path or fields[4] != "0" else
                    "arenas_mb" if start % ARENA_ALIGN == 0 and fields[1].startswith("rw") else "other_anon_mb")
            if kind == "arenas_mb":
                figures["arenas"] += 1
        elif fields[0] == "Rss:" and kind is not None:
            figures[kind] += int(fields[1]) / 1024
    return figures


def trace_line(seconds: float, figures: dict[str, float]) -> str:
    return (f"  {seconds / 60:5.1f} min  RSS {figures['rss_mb']:6.1f} MB  threads {figures['threads']:3.0f}  "
            f"fds {figures['fds']:3.0f}  heap {figures['heap_mb']:5.1f} MB  arenas {figures['arenas']:2.0f} "
            f"({figures['arenas_mb']:5.1f} MB)  other anon {figures['other_anon_mb']:5.1f} MB")


def health(port: int) -> tuple[bool, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
        return status == 200, str(status)
    except OSError as exc:
        return False, type(exc).__name__
    finally:
        connection.close()


def tagged_images(project) -> dict[str, str]:  # noqa: ANN001 - BenchProject
    """The image each of the project's tags names (the soak builds nothing: they must stay)."""
    tags = [project.settings["BASE_IMAGE_TAG"], project.settings["NOTEBOOK_IMAGE_TAG"]]
    return {tag: docker("image", "inspect", "--format", "{{.Id}}", tag, check=False).strip() for tag in tags}


def untagged_devstack_images() -> set[str]:
    """Untagged images devstack built, any project's: the engine is shared, so another run's count too."""
    out = docker("images", "--filter", "label=devstack.image", "--filter", "dangling=true", "-q", "--no-trunc")
    return set(out.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--proxy-every", type=float, default=3.0)
    parser.add_argument("--env-every", type=float, default=20.0)
    parser.add_argument("--request-every", type=float, default=0.1)
    parser.add_argument("--plain", action="store_true", help="no terminal: plain lines instead of the live view")
    parser.add_argument("--trace-every", type=float, default=0.0, metavar="SECONDS",
                        help="print the process's RSS, threads, fds and malloc arenas this often (0: never)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    project = make_project(root, "soak")
    templates = project.own_templates()
    sources = [templates / "sites-enabled" / name for name in ("sifu.conf.j2", "jupyter.conf.j2")]
    project.run("up", "-d")  # built and created once, before the clock starts
    images_before = untagged_devstack_images()
    tags_before = tagged_images(project)
    argv = [sys.executable, "-m", "devstack", "up"]
    if args.plain:
        process = subprocess.Popen(argv, cwd=project.dir, env=project.cli_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        Background(process).wait_for_line("watching ", timeout=300)  # drains its output from then on
    else:
        env = project.cli_env(COLUMNS="160", LINES="50")
        env.pop("NO_COLOR", None)
        shown = OnTerminal(argv, project.dir, env)
        shown.wait_for("watching")
        process = shown.process

    stop = threading.Event()
    requests: list[tuple[float, bool, str]] = []  # (monotonic time, ok, status or error)
    env_saves: list[float] = []
    proxy_saves: list[float] = []
    memory: list[tuple[float, float]] = []  # (seconds since start, MB)

    def request_loop() -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            ok, detail = health(project.sifu_port)
            requests.append((time.monotonic(), ok, detail))
            next_at += args.request_every
            stop.wait(max(0.0, next_at - time.monotonic()))

    started = time.monotonic()
    memory.append((0.0, rss_mb(process.pid)))
    traced: list[dict[str, float]] = []

    def trace(seconds: float) -> None:
        figures = process_figures(process.pid)
        traced.append({"minute": round(seconds / 60, 1), **{k: round(v, 1) for k, v in figures.items()}})
        print(trace_line(seconds, figures), flush=True)

    if args.trace_every:
        trace(0.0)
    threading.Thread(target=request_loop, daemon=True).start()
    duration = args.minutes * 60
    next_proxy, next_env, next_sample = started + args.proxy_every, started + args.env_every, started + 10
    next_trace = started + args.trace_every
    saves = 0
    try:
        while time.monotonic() - started < duration:
            now = time.monotonic()
            if process.poll() is not None:
                raise SystemExit(f"devstack exited during the soak (code {process.returncode})")
            if now >= next_env:
                env_saves.append(time.monotonic())
                project.write_env(DEVSTACK_SOAK=str(len(env_saves)))
                next_env += args.env_every
            if now >= next_proxy:
                saves += 1
                proxy_saves.append(time.monotonic())
                set_header(sources, HEADER, f"soak-{saves}")
                next_proxy += args.proxy_every
            if now >= next_sample:
                memory.append((now - started, rss_mb(process.pid)))
                next_sample += 10
            if args.trace_every and now >= next_trace:
                trace(now - started)
                next_trace += args.trace_every
            time.sleep(0.05)
        memory.append((time.monotonic() - started, rss_mb(process.pid)))
        if args.trace_every:
            trace(time.monotonic() - started)
    finally:
        stop.set()
        time.sleep(0.3)
        generations = sorted(p.name for p in (project.dir / ".devstack" / "proxy").glob("gen-*"))
        containers = docker("ps", "-a", "--filter", f"label=devstack.project={project.name}", "-q").split()
        images_left = untagged_devstack_images() - images_before
        tags_kept = tagged_images(project) == tags_before
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        project.down()

    # Failures while a recreate was applied: from an .env save until the first success after it failed.
    windows = []
    for saved in env_saves:
        end, failing = saved + RECREATE_WINDOW_MAX_SECONDS, False
        for at, ok, _ in requests:
            if at < saved:
                continue
            if not ok:
                failing = True
            elif failing:
                end = at
                break
        windows.append((saved, min(end, saved + RECREATE_WINDOW_MAX_SECONDS)))
    in_window = lambda at: any(start <= at <= end for start, end in windows)  # noqa: E731
    failed = [(at, detail) for at, ok, detail in requests if not ok]
    on_recreate = [f for f in failed if in_window(f[0])]
    otherwise = [f for f in failed if not in_window(f[0])]
    gaps = []
    for start, end in windows:
        inside = [at for at, _ in on_recreate if start <= at <= end]
        gaps.append((max(inside) - min(inside) + args.request_every) if inside else 0.0)
    after_first_minute = next((mb for t, mb in memory if t >= 60), memory[-1][1])
    mode = "plain lines" if args.plain else "live view on a terminal"
    report("soak", f"Benchmark 8: soak, {args.minutes:g} min of a foreground up ({mode}): proxy save every "
           f"{args.proxy_every:g} s, .env save every {args.env_every:g} s, request every {args.request_every:g} s", [
               ("gap per recreate (.env save: requests failing)", gaps, "s"),
               ("devstack RSS, sampled every 10 s", [mb for _, mb in memory], "MB"),
           ], {
               "requests": len(requests),
               "failed_requests": len(failed),
               "failed_on_proxy_reloads_or_otherwise": len(otherwise),
               "failed_while_recreating_after_env_saves": len(on_recreate),
               "failures_otherwise_detail": sorted({d for _, d in otherwise}),
               "proxy_saves": len(proxy_saves),
               "env_saves": len(env_saves),
               "rss_mb": {"start": round(memory[0][1], 1), "after_first_minute": round(after_first_minute, 1),
                          "end": round(memory[-1][1], 1), "peak": round(max(mb for _, mb in memory), 1)},
               "rss_growth_after_first_minute_mb": round(memory[-1][1] - after_first_minute, 1),
               "left_at_end": {"proxy_generations": generations, "project_containers": len(containers),
                               "project_images_unchanged": tags_kept,
                               "untagged_devstack_images_new_on_the_engine": len(images_left)},
               "goal": "0 failed requests on proxy reloads; RSS flat after the first minute",
               "median_gap_s": round(median(gaps), 3),
               **({"trace": traced} if args.trace_every else {}),
           },
           command=f"python bench/soak.py --minutes {args.minutes:g}" + (" --plain" if args.plain else ""))


if __name__ == "__main__":
    main()
