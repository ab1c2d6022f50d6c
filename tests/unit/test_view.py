from datetime import datetime, timedelta, timezone

from rich.console import Console

from devstack.probes import Probe, ProbeResult
from devstack.snapshot import BuildProgress, LiveFacts, ServiceStatus, StackStatus
from devstack.ui.view import forget_drawn_widths, humanize_age, render_status, status_to_json

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def snapshot(**extra):
    services = (
        ServiceStatus("notebook", "p-notebook", "running", "healthy", NOW - timedelta(minutes=5), 1,
                      "proversity/notebook", "abcdef123456", NOW - timedelta(hours=2), ()),
        ServiceStatus("proxy", "p-proxy", "exited (1)", "", None, 0, "nginx:stable", "123456abcdef", None,
                      ("127.0.0.1:3334->3334/tcp",)),
    )
    probes = (ProbeResult(Probe("Sifu through the proxy", "http://127.0.0.1:3334/health", 200), True, 200,
                          "answered 200", 3.2),)
    logs = extra.pop("logs", ())
    return StackStatus("p", NOW, services, probes, {"login": "http://127.0.0.1:3334/login",
                                                    "jupyter": "http://127.0.0.1:3335/"}, LiveFacts(**extra), logs)


def text_of(renderable) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_status_view_shows_services_probes_and_urls():
    text = text_of(render_status(snapshot()))
    for expected in ("p-notebook", "running", "healthy", "5m", "abcdef123456", "2h ago", "exited (1)",
                     "127.0.0.1:3334->3334/tcp", "Sifu through the proxy", "ok: answered 200",
                     "http://127.0.0.1:3334/login"):
        assert expected in text, expected


def test_live_parts_show_build_progress_error_and_timeline():
    text = text_of(render_status(snapshot(
        build=BuildProgress("notebook", 3, 12, "RUN apt-get install"), last_error="nginx: [emerg] boom",
        timeline=(("seen", 12.0), ("built", 2100.0), ("healthy", 2600.0)), logs=("notebook | hello",))))
    assert "step 3/12" in text and "RUN apt-get install" in text
    assert "nginx: [emerg] boom" in text and "seen 12 ms" in text and "healthy 2600 ms" in text
    assert "notebook | hello" in text


def test_json_form():
    data = status_to_json(snapshot())
    assert data["services"][0]["state"] == "running" and data["probes"][0]["ok"] is True
    assert data["services"][1]["started_at"] is None


def test_humanize_age():
    assert humanize_age(NOW - timedelta(seconds=42), NOW) == "42s"
    assert humanize_age(NOW - timedelta(days=3, hours=1), NOW) == "3d"
    assert humanize_age(None, NOW) == "-"


# -- the live view: the core's events folded into what is shown ------------------------

from devstack.events import (  # noqa: E402
    Activity,
    BuildOutput,
    ChangeApplied,
    ChangeFailed,
    ChangeSeen,
    ImageBuilt,
    Info,
    Warned,
    Watching,
)
from devstack.snapshot import load_live_facts, save_live_facts, with_live_facts  # noqa: E402
from devstack.ui.live import LiveState  # noqa: E402
from devstack.ui.view import event_line  # noqa: E402


def test_live_state_follows_a_change_from_save_to_healthy():
    state = LiveState()
    assert state.on_event(Watching("watching ...", folders=("/p/nginx", "/p/final")))
    state.on_event(ChangeSeen("changed final/Dockerfile: rebuild notebook and recreate the notebook container"))
    assert "now: changed final/Dockerfile" in text_of(render_status(state.overlay(snapshot())))
    state.on_event(BuildOutput("Step 4/9 : RUN make", "notebook", 4, 9, "RUN make"))
    assert not state.on_event(BuildOutput("compiling", "notebook", 4, 9, "RUN make"))
    text = text_of(render_status(state.overlay(snapshot())))
    assert "building notebook" in text and "step 4/9: RUN make" in text
    state.on_event(ImageBuilt("built t (abc)", "notebook", "sha256:abc"))
    state.on_event(ChangeApplied("applied", timeline=(("saved", 0.0), ("seen", 3.0), ("built", 2100.0),
                                                      ("healthy", 4200.0))))
    text = text_of(render_status(state.overlay(snapshot())))
    assert "last change: saved 0 ms  →  seen 3 ms  →  built 2100 ms  →  healthy 4200 ms" in text
    assert "building" not in text and "now: watching /p/nginx, /p/final" in text


def test_an_error_is_shown_in_full_until_a_change_applies():
    state = LiveState()
    state.on_event(ChangeFailed("building t failed at step 3/5 (RUN exit 3): non-zero code: 3",
                                tail=("Step 3/5 : RUN exit 3", "the-last-words")))
    text = text_of(render_status(state.overlay(snapshot())))
    assert "last error" in text and "failed at step 3/5" in text and "| the-last-words" in text
    state.on_event(ChangeApplied("applied", timeline=(("saved", 0.0), ("healthy", 300.0))))
    assert "last error" not in text_of(render_status(state.overlay(snapshot())))


def test_log_lines_keep_the_latest_only():
    state = LiveState()
    for i in range(30):
        state.on_log(f"proxy | line {i}")
    text = text_of(render_status(state.overlay(snapshot())))
    assert "proxy | line 29" in text and "proxy | line 21" not in text


def test_a_long_run_of_new_log_lines_does_not_fill_richs_width_cache():
    # A soak's proxy logs a new line per request; the live view draws the latest and ticks every 10 s.
    from rich.cells import cached_cell_len

    state = LiveState()
    forget_drawn_widths()
    for redraw in range(600):
        state.on_log(f"proxy | 172.18.0.1 - [02/Dec/2026:03:57:{redraw:05d}] \"GET /health HTTP/1.1\" 200 2")
        text_of(render_status(state.overlay(snapshot())))
        if redraw % 40 == 39:  # a slow tick
            forget_drawn_widths()
    assert cached_cell_len.cache_info().currsize < 400  # without the ticks: ~1,900, until 4,096


def test_plain_lines_for_events():
    assert event_line(Warned("slow")) == "warning: slow"
    assert event_line(Activity("reloading")) == "now: reloading"
    assert event_line(Info("built")) == "built"
    assert event_line(BuildOutput("Step 1/2 : FROM x", "base", 1, 2, "FROM x")) == "[build base 1/2] Step 1/2 : FROM x"
    assert event_line(ChangeFailed("boom", tail=("a", "b"))) == "error: boom\n  | a\n  | b"


def test_a_message_that_looks_like_another_kind_is_not_taken_for_it():
    """Dispatch is on the event's type, never on its text."""
    state = LiveState()
    state.on_event(BuildOutput("Step 1/2 : FROM x", "base", 1, 2, "FROM x"))
    state.on_event(Info("built the house of cards"))  # not an ImageBuilt: the build goes on
    assert state.live.build is not None


def test_json_carries_what_the_live_view_adds():
    data = status_to_json(snapshot(build=BuildProgress("notebook", 2, 5, "COPY x"), logs=("proxy | hi",),
                                   watching=("/p/nginx",), timeline=(("saved", 0.0), ("healthy", 12.34))))
    assert data["build"] == {"image": "notebook", "step": 2, "total": 5, "instruction": "COPY x"}
    assert data["logs"] == ["proxy | hi"] and data["watching"] == ["/p/nginx"]
    assert data["timeline"][1] == {"step": "healthy", "ms": 12.3}


def test_status_beside_a_watcher_reads_what_it_wrote(tmp_path):
    facts = LiveFacts(activity="reloading", build=BuildProgress("base", 1, 3, "FROM x"), last_error="boom",
                      timeline=(("saved", 0.0), ("healthy", 5.0)), watching=("/p",))
    save_live_facts(tmp_path, facts)
    assert load_live_facts(tmp_path) == facts  # written by this (living) process
    shown = with_live_facts(snapshot(), load_live_facts(tmp_path))
    assert shown.live.activity == "reloading" and shown.live.last_error == "boom"
    (tmp_path / "live.json").write_text('{"pid": 999999999, "activity": "stale"}')
    assert load_live_facts(tmp_path) is None  # its writer is gone: nothing is happening


def test_the_health_view_shows_each_instance_and_the_environment_as_eb_does():
    from dataclasses import replace

    from devstack.balancer.health import RequestStats
    from devstack.snapshot import InstanceStatus

    one = RequestStats(30, 0.5, {"2xx": 90.0, "3xx": 0.0, "4xx": 10.0, "5xx": 0.0}, 2.0, 8.0, 40.0)
    down = RequestStats(6, 0.1, {"2xx": 50.0, "3xx": 0.0, "4xx": 0.0, "5xx": 50.0}, 1.0, 3.0, 3.0)
    status = replace(snapshot(), instances=(InstanceStatus(1, "p-notebook-1", "p-proxy-1", "UP", "L7OK", one),
                                            InstanceStatus(2, "p-notebook-2", "p-proxy-2", "DOWN", "L7STS", down)),
                     environment=RequestStats(36, 0.6, {"2xx": 83.3, "3xx": 0.0, "4xx": 8.3, "5xx": 8.3}, 2.0, 8.0,
                                              40.0))
    text = text_of(render_status(status))
    for expected in ("1 (p-notebook-1)", "DOWN (L7STS)", "90%", "40 ms", "environment", "1/2 in service", "0.6"):
        assert expected in text, expected
    data = status_to_json(status)
    assert data["instances"][1]["load_balancer"] == {"status": "DOWN", "check": "L7STS"}
    assert data["instances"][0]["latency_ms"] == {"p50": 2.0, "p90": 8.0, "p99": 40.0}
    assert data["environment"]["shares"]["5xx"] == 8.3
