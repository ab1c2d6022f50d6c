from datetime import datetime, timedelta, timezone

from rich.console import Console

from devstack.probes import Probe, ProbeResult
from devstack.status import BuildProgress, ServiceStatus, StackStatus
from devstack.view import humanize_age, render_status, status_to_json

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
    return StackStatus("p", NOW, services, probes, {"login": "http://127.0.0.1:3334/login",
                                                    "jupyter": "http://127.0.0.1:3335/"}, **extra)


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
