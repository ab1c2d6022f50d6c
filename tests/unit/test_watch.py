"""Coalescing, classification and the applier's decisions, with an injected clock (no Docker)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devstack.engine import ImageInfo
from devstack.errors import BuildError, ProxyConfigError
from devstack.reconcile import Action
from devstack.settings import load_settings
from devstack.stack import describe_stack
from devstack.watch import (
    MAX_WAIT_SECONDS,
    QUIET_SECONDS,
    Applier,
    ChangePlan,
    Debouncer,
    PathSeen,
    RefreshProxy,
    Timeline,
    classify,
    is_noise,
    watch_targets,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- the debouncer -------------------------------------------------------------


def test_a_batch_is_due_after_the_quiet_period():
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    assert debouncer.wait_time() is None and not debouncer.due()
    debouncer.add("/p/a")
    assert debouncer.wait_time() == pytest.approx(QUIET_SECONDS)
    clock.advance(QUIET_SECONDS / 2)
    debouncer.add("/p/b")  # a new change restarts the quiet period
    clock.advance(QUIET_SECONDS * 0.9)
    assert not debouncer.due()
    clock.advance(QUIET_SECONDS * 0.1)
    assert debouncer.due()
    assert debouncer.take() == ("/p/a", "/p/b")
    assert not debouncer.pending and debouncer.wait_time() is None


def test_a_thousand_paths_within_a_second_make_one_batch():
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    batches = []
    for i in range(1000):
        debouncer.add(f"/ctx/data/{i}.txt")
        debouncer.add(f"/ctx/data/{i}.txt")  # created, then modified: one path
        clock.advance(0.001)
        if debouncer.due():
            batches.append(debouncer.take())
    clock.advance(QUIET_SECONDS)
    assert debouncer.due()
    batches.append(debouncer.take())
    assert len(batches) == 1 and len(batches[0]) == 1000


def test_changes_that_never_stop_are_cut_at_the_upper_bound():
    clock = FakeClock()
    debouncer = Debouncer(clock=clock)
    debouncer.add("/p/first")
    elapsed = 0.0
    while not debouncer.due():
        clock.advance(QUIET_SECONDS / 2)
        elapsed += QUIET_SECONDS / 2
        debouncer.add(f"/p/{elapsed}")
    assert elapsed == pytest.approx(MAX_WAIT_SECONDS)


# -- classification ----------------------------------------------------------------


@pytest.fixture
def layout(tmp_path):
    """A project with its own contexts, proxy templates and Sifu checkout."""
    project = tmp_path / "proj"
    for folder in ("base", "final", "proxy", "sifu", "notebooks"):
        (project / folder).mkdir(parents=True)
    (project / "base" / "Dockerfile").write_text("FROM scratch\n")
    (project / "final" / "Dockerfile").write_text("FROM scratch\n")
    (project / "final" / ".dockerignore").write_text("docs/\nDockerfile\n")
    (project / "proxy" / "nginx.conf.j2").write_text("events {}\n")
    (project / ".env").write_text("BASE_CONTEXT=base\nNOTEBOOK_CONTEXT=final\nPROXY_TEMPLATES=proxy\nSIFU_SRC=sifu\n")
    settings = load_settings(project, environ={})
    spec = describe_stack(settings, 1000, 1000)
    return project, watch_targets(settings, FakeController(settings, spec))


def test_each_kind_of_file_maps_to_its_least_disruptive_action(layout):
    project, targets = layout
    assert classify([str(project / "proxy" / "sites-enabled" / "x.conf.j2")], targets) == ChangePlan(
        proxy=("proxy/sites-enabled/x.conf.j2",))
    eb = classify([str(project / ".ebextensions" / ".nginx" / "proxy" / "sifu.conf")], targets)
    assert eb == ChangePlan(proxy=(".ebextensions/.nginx/proxy/sifu.conf",))
    assert classify([str(project / ".platform" / "nginx" / "conf.d" / "headers.conf")], targets).proxy
    assert classify([str(project / ".env")], targets).settings == (".env",)
    base = classify([str(project / "base" / "Dockerfile")], targets)
    assert base.base and base.images == ("base", "notebook")
    final = classify([str(project / "final" / "supervisord.conf")], targets)
    assert final.notebook and final.images == ("notebook",) and not final.base
    sifu = classify([str(project / "sifu" / "app.py")], targets)
    assert sifu == ChangePlan(sifu=("sifu/app.py",)) and sifu.images == ()
    assert sifu.steps() == ["restart Sifu in the notebook container (supervisorctl; kernels untouched)"]


@pytest.mark.parametrize("rel", [
    "notebooks/lesson.ipynb", "notebooks/.ipynb_checkpoints/lesson-checkpoint.ipynb",
    ".devstack/proxy/gen-3/nginx.conf", ".devstack/live.json",
    "final/.git/index", "sifu/.git/HEAD", "sifu/__pycache__/app.cpython-311.pyc", "sifu/pkg/module.pyc",
    "final/.Dockerfile.swp", "final/Dockerfile~", "final/4913", "proxy/#nginx.conf.j2#", "proxy/.#nginx.conf.j2",
    "sifu/app.py___jb_tmp___", "final/sedAb12Cd",
    "final/docs/notes.md",  # excluded by the context's .dockerignore
    "README.md",  # in the project, but nothing devstack uses
])
def test_what_is_ignored(layout, rel):
    project, targets = layout
    plan = classify([str(project / rel)], targets)
    assert plan.empty and plan.ignored == (str(project / rel),)


def test_the_dockerfile_counts_even_when_dockerignore_lists_it(layout):
    project, targets = layout
    assert classify([str(project / "final" / "Dockerfile")], targets).notebook == ("final/Dockerfile",)


def test_a_mixed_batch_keeps_every_kind_and_describes_the_files(layout):
    project, targets = layout
    paths = [str(project / p) for p in ("proxy/nginx.conf.j2", "sifu/app.py", "final/Dockerfile",
                                        "notebooks/x.ipynb", "final/Dockerfile")]
    plan = classify(paths, targets)
    assert plan.proxy and plan.sifu and plan.notebook == ("final/Dockerfile",)
    assert len(plan.ignored) == 1
    assert plan.describe().startswith("changed final/Dockerfile, proxy/nginx.conf.j2, sifu/app.py: rebuild notebook")


def test_roots_watch_the_env_file_folder_without_recursion(layout):
    project, targets = layout
    roots = dict(targets.roots())
    assert roots[project] is False
    assert all(roots[project / f] for f in ("base", "final", "proxy", "sifu"))
    assert project / "notebooks" not in roots


def test_noise_is_judged_inside_the_watched_folder_only():
    assert not is_noise("sites-enabled/jupyter.conf.j2")
    assert is_noise(".git/objects/ab") and is_noise("x/__pycache__") and is_noise("a.swp")


# -- the applier ------------------------------------------------------------------------


class FakeEngine:
    def __init__(self, images: dict[str, str]):
        self.images = images

    def image(self, tag: str) -> ImageInfo | None:
        image_id = self.images.get(tag)
        return ImageInfo(image_id, (tag,), {}, None) if image_id else None


class FakeController:
    """Records what the applier asks for. What containers do is tested against the real engine."""

    def __init__(self, settings, spec, builds=None, recreate=("notebook",), busy=()):
        self.settings, self.spec = settings, spec
        self.engine = FakeEngine({image.tag: "sha256:old-" + image.name for image in spec.images})
        self.calls: list[str] = []
        self.builds = list(builds or [])  # what each ensure_images call does: None (builds) or an exception
        self.recreate = recreate
        self.busy = list(busy)  # successive answers of busy_kernels
        self.redact = lambda text: text
        self.during_build = None

    def ensure_images(self):
        self.calls.append("ensure_images")
        if self.during_build:
            self.during_build()
        outcome = self.builds.pop(0) if self.builds else None
        if isinstance(outcome, Exception):
            raise outcome
        for image in self.spec.images:
            self.engine.images[image.tag] = f"sha256:new{len(self.calls)}-{image.name}"
        return {image.name: self.engine.images[image.tag] for image in self.spec.images}

    def plan_services(self, image_ids):
        return [Action("recreate", name, "image changed") for name in self.recreate]

    def reconcile_services(self, image_ids):
        self.calls.append("reconcile_services")

    def refresh_proxy(self, notebook=None):
        self.calls.append("refresh_proxy")
        return True

    def restart_sifu(self):
        self.calls.append("restart_sifu")

    def report_lint(self):
        return []

    def describe_again(self):
        pass

    def busy_kernels(self):
        self.calls.append("busy_kernels")
        return self.busy.pop(0) if self.busy else []

    def check_ports(self):
        self.calls.append("check_ports")

    def wait_ready(self, timeout):
        self.calls.append("wait_ready")
        return []


def make_applier(layout, **controller_options):
    project, _ = layout
    settings = load_settings(project, environ={})
    controller = FakeController(settings, describe_stack(settings, 1000, 1000), **controller_options)
    events = []
    clock = FakeClock()

    def sleep(seconds):
        clock.advance(seconds)

    applier = Applier(controller, events.append, reload_settings=lambda: load_settings(project, environ={}),
                      make_controller=lambda s: FakeController(s, describe_stack(s, 1000, 1000)),
                      stop=threading.Event(), debouncer=Debouncer(clock=clock), clock=clock, sleep=sleep)
    return applier, controller, events, clock


def drain(applier, clock, turns=50):
    """Run the loop's turns with time moving on, until nothing is pending or queued."""
    for _ in range(turns):
        applier.step(idle_wait=0.001)
        clock.advance(QUIET_SECONDS)
        if not applier.debouncer.pending and applier.inbox.empty():
            applier.step(idle_wait=0.001)
            return


def save(applier, path: Path, count: int = 1):
    for _ in range(count):
        applier.inbox.put(PathSeen(str(path), 0.0))


def test_a_burst_of_a_thousand_files_gives_one_build(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout)
    for i in range(1000):
        save(applier, project / "final" / f"data/{i}.txt")
    drain(applier, clock)
    assert controller.calls.count("ensure_images") == 1
    assert [e.kind for e in events if e.kind in ("change", "applied")] == ["change", "applied"]


def test_changes_during_a_build_give_exactly_one_follow_up(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout)

    def more_saves():  # the user keeps saving while the first build runs
        if controller.calls.count("ensure_images") == 1:
            for i in range(300):
                save(applier, project / "final" / f"more/{i}.txt")

    controller.during_build = more_saves
    save(applier, project / "final" / "Dockerfile")
    drain(applier, clock)
    assert controller.calls.count("ensure_images") == 2


def test_proxy_and_sifu_changes_touch_nothing_else(layout):
    project, _ = layout
    applier, controller, _, clock = make_applier(layout)
    save(applier, project / "proxy" / "nginx.conf.j2")
    drain(applier, clock)
    assert controller.calls == ["refresh_proxy", "wait_ready"]
    controller.calls.clear()
    save(applier, project / "sifu" / "app.py")
    drain(applier, clock)
    assert controller.calls == ["restart_sifu", "wait_ready"]


def test_a_recreated_notebook_needs_no_sifu_restart(layout):
    project, _ = layout
    applier, controller, _, clock = make_applier(layout)
    save(applier, project / "sifu" / "app.py")
    save(applier, project / "final" / "Dockerfile")
    drain(applier, clock)
    assert "restart_sifu" not in controller.calls and "reconcile_services" in controller.calls


def test_a_failed_build_is_shown_in_full_and_the_next_save_retries(layout):
    project, _ = layout
    failure = BuildError("building t failed at step 3/5 (RUN exit 3): returned a non-zero code: 3",
                         step="RUN exit 3", tail=["Step 3/5 : RUN exit 3", "the-last-words"])
    applier, controller, events, clock = make_applier(layout, builds=[failure])
    save(applier, project / "final" / "Dockerfile")
    drain(applier, clock)
    errors = [e for e in events if e.kind == "error"]
    assert len(errors) == 1 and errors[0].data["tail"] == ["Step 3/5 : RUN exit 3", "the-last-words"]
    assert "reconcile_services" not in controller.calls  # the running container is left serving
    save(applier, project / "final" / "Dockerfile")
    drain(applier, clock)
    assert controller.calls.count("ensure_images") == 2 and "reconcile_services" in controller.calls


def test_a_rejected_proxy_configuration_is_an_error_event(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout)

    def rejected(notebook=None):
        raise ProxyConfigError("nginx rejected the new proxy configuration, the running one is kept: x.conf.j2:3")

    controller.refresh_proxy = rejected
    save(applier, project / "proxy" / "nginx.conf.j2")
    drain(applier, clock)
    assert [e.kind for e in events][-1] == "error" and "x.conf.j2:3" in events[-1].message


def test_a_busy_kernel_is_waited_for_then_the_notebook_is_recreated(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout, busy=[["k1"], ["k1"], ["k1"], []])
    save(applier, project / "final" / "Dockerfile")
    drain(applier, clock)
    assert controller.calls.count("busy_kernels") == 4
    assert controller.calls.index("busy_kernels") < controller.calls.index("reconcile_services")
    messages = [e.message for e in events]
    assert any("waiting up to 60s (KERNEL_IDLE_WAIT) for 1 busy kernel" in m for m in messages)
    assert "kernels idle: recreating the notebook container" in messages


def test_the_wait_for_a_busy_kernel_is_bounded(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout, busy=[["k1"]] * 1000)
    save(applier, project / "final" / "Dockerfile")
    start = clock.now
    drain(applier, clock)
    assert "reconcile_services" in controller.calls
    assert 60 <= clock.now - start < 62
    assert any(e.kind == "warning" and "still busy after 60s" in e.message for e in events)


def test_an_env_change_resolves_the_settings_again_and_uses_the_new_controller(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout)
    (project / ".env").write_text((project / ".env").read_text() + "SIFU_PORT=4334\n")
    save(applier, project / ".env")
    drain(applier, clock)
    assert applier.controller is not controller
    assert applier.controller.settings.sifu_port == 4334
    assert applier.controller.calls[:2] == ["check_ports", "ensure_images"]


def test_an_invalid_env_keeps_the_running_controller(layout):
    project, _ = layout
    applier, controller, events, clock = make_applier(layout)
    (project / ".env").write_text("SIFU_PORT=not-a-port\n")
    save(applier, project / ".env")
    drain(applier, clock)
    assert applier.controller is controller
    assert events[-1].kind == "error" and "SIFU_PORT" in events[-1].message


def test_engine_requests_to_refresh_the_proxy_are_applied(layout):
    applier, controller, _, clock = make_applier(layout)
    applier.inbox.put(RefreshProxy("the notebook container started"))
    drain(applier, clock)
    assert controller.calls == ["refresh_proxy"]


def test_timeline_counts_from_the_save():
    timeline = Timeline(saved=100.0)
    timeline.mark("seen", 100.012)
    timeline.mark("healthy", 100.5)
    assert [(label, round(ms)) for label, ms in timeline.steps] == [("seen", 12), ("healthy", 500)]


def test_an_error_shown_in_full_carries_no_secret(layout):
    project, _ = layout
    failure = BuildError("building t failed at step 2/3 (RUN fetch)", step="RUN fetch",
                         tail=["cloning https://x-access-token:ghp_canary@github.com/o/sifu"])
    applier, controller, events, clock = make_applier(layout, builds=[failure])
    controller.redact = lambda text: text.replace("ghp_canary", "********")
    save(applier, project / "final" / "Dockerfile")
    drain(applier, clock)
    assert "ghp_canary" not in repr([(e.message, e.data) for e in events])


def test_a_project_proxy_folder_is_watched_for_before_it_exists(layout):
    project, targets = layout
    (project / ".ebextensions").mkdir()  # other EB configuration, no .nginx yet
    roots = dict(targets.roots())
    assert roots[project] is False and roots[project / ".ebextensions"] is False  # its creation will be seen
    assert project / ".platform" not in roots
    created = classify([str(project / ".platform"), str(project / ".ebextensions" / ".nginx")], targets)
    assert created.proxy == (".platform", ".ebextensions/.nginx")
    assert classify([str(project / ".ebextensions" / "01_eb_files.config")], targets).empty
    (project / ".platform" / "nginx" / "conf.d").mkdir(parents=True)
    assert dict(targets.roots())[project / ".platform" / "nginx" / "conf.d"] is True
