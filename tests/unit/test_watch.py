"""Coalescing, classification and the applier's decisions, with an injected clock (no Docker)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from dataclasses import replace

from memory_engine import MemoryEngine

from devstack.errors import BuildError
from devstack.events import ChangeApplied, ChangeFailed, ChangeSeen, Info, NothingToApply, Warned
from devstack.noise import is_noise
from devstack.reconcile import Stack
from devstack.reconcile.running import Running
from devstack.settings import load_settings
from devstack.spec import load_stack
from devstack.watch.changes import (
    HEALTHY_AFTER_RECREATE_SECONDS,
    HEALTHY_AFTER_RELOAD_SECONDS,
    ChangeLoop,
    RefreshProxy,
    Timeline,
)
from devstack.watch.classify import ChangePlan, classify, watch_targets
from devstack.watch.debounce import MAX_WAIT_SECONDS, QUIET_SECONDS, Debouncer
from devstack.watch.files import PathSeen


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
    return project, watch_targets(settings, load_stack(settings, (1000, 1000)))


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


# -- the change loop, on the real Stack over an in-memory engine ---------------------------


class ScriptedRunning(Running):
    """What needs a live Jupyter is scripted: the kernels' states, one answer per question."""

    def __init__(self, stack, busy):
        super().__init__(stack)
        self.busy = list(busy)

    def busy_kernels(self):
        self._stack.memory.ops.append("busy_kernels")
        return self.busy.pop(0) if self.busy else []


class WatchedStack(Stack):
    """The real Stack (planner, applier, proxy loader) on an in-memory engine; readiness is assumed."""

    def __init__(self, settings, memory, busy=()):
        super().__init__(settings, connect=lambda: memory)
        self.memory = memory
        self.running = ScriptedRunning(self, busy)

    def wait_ready(self, timeout, stop=None):
        self.memory.ops.append("wait_ready")
        self.memory.ready_timeouts.append(timeout)
        return []


def make_loop(layout, busy=()):
    project, _ = layout
    (project / ".env").write_text((project / ".env").read_text() + "SIFU_PORT=43334\nJUPYTER_PORT=43335\n")
    memory = MemoryEngine({"nginx:stable": {}})
    memory.ready_timeouts = []
    stack = WatchedStack(load_settings(project, environ={}), memory, busy)
    stack.converge()  # what `up` made before watching
    memory.ops.clear()
    memory.builds = 0
    events = []
    clock = FakeClock()

    def sleep(seconds):
        clock.advance(seconds)

    loop = ChangeLoop(stack, events.append, reload_settings=lambda: load_settings(project, environ={}),
                      make_stack=lambda s: WatchedStack(s, memory), stop=threading.Event(),
                      debouncer=Debouncer(clock=clock), clock=clock, sleep=sleep)
    return loop, memory, events, clock


def drain(loop, clock, turns=50):
    """Run the loop's turns with time moving on, until nothing is pending or queued."""
    for _ in range(turns):
        loop.step(idle_wait=0.001)
        clock.advance(QUIET_SECONDS)
        if not loop.debouncer.pending and loop.inbox.empty():
            loop.step(idle_wait=0.001)
            return


def save(loop, path: Path, count: int = 1, content: str | None = None):
    if content is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for _ in range(count):
        loop.inbox.put(PathSeen(str(path), 0.0))


def changed(ops, prefix):
    return [op for op in ops if op.startswith(prefix)]


def test_a_burst_of_a_thousand_files_gives_one_build(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    for i in range(1000):
        save(loop, project / "final" / f"data/{i}.txt", content=str(i))
    drain(loop, clock)
    assert memory.builds == 1
    assert [type(e) for e in events if isinstance(e, (ChangeSeen, ChangeApplied))] == [ChangeSeen, ChangeApplied]


def test_changes_during_a_build_give_exactly_one_follow_up(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)

    def more_saves():  # the user keeps saving while the first build runs
        if memory.builds == 1:
            for i in range(300):
                save(loop, project / "final" / f"more/{i}.txt", content=str(i))

    memory.on_build = more_saves
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# saved\n")
    drain(loop, clock)
    assert memory.builds == 2


def test_proxy_and_sifu_changes_touch_nothing_else(layout):
    project, _ = layout
    loop, memory, _, clock = make_loop(layout)
    save(loop, project / "proxy" / "nginx.conf.j2", content="events {}\n# saved\n")
    drain(loop, clock)
    assert changed(memory.ops, "exec nginx -t") and memory.ops[-1] == "wait_ready"
    assert not changed(memory.ops, "build") and not changed(memory.ops, "create")
    memory.ops.clear()
    save(loop, project / "sifu" / "app.py", content="print('v2')\n")
    drain(loop, clock)
    assert memory.ops == ["exec supervisorctl restart sifu", "wait_ready"]


def test_how_long_a_change_may_take_to_answer_follows_what_it_applied(layout):
    project, _ = layout
    loop, memory, _, clock = make_loop(layout)
    save(loop, project / "proxy" / "nginx.conf.j2", content="events {}\n# saved\n")
    drain(loop, clock)
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# saved\n")
    drain(loop, clock)
    assert memory.ready_timeouts == [HEALTHY_AFTER_RELOAD_SECONDS, HEALTHY_AFTER_RECREATE_SECONDS]


def test_a_proxy_file_saved_unchanged_applies_nothing(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    save(loop, project / "proxy" / "nginx.conf.j2")
    drain(loop, clock)
    assert memory.ops == [] and isinstance(events[-1], NothingToApply)


def test_a_recreated_notebook_needs_no_sifu_restart(layout):
    project, _ = layout
    loop, memory, _, clock = make_loop(layout)
    save(loop, project / "sifu" / "app.py", content="print('v2')\n")
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# saved\n")
    drain(loop, clock)
    assert not changed(memory.ops, "exec supervisorctl") and changed(memory.ops, "create proj-notebook")


def test_a_failed_build_is_shown_in_full_and_the_next_save_retries(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    memory.fail_builds = [BuildError("building t failed at step 3/5 (RUN exit 3): returned a non-zero code: 3",
                                     step="RUN exit 3", tail=["Step 3/5 : RUN exit 3", "the-last-words"])]
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\nRUN exit 3\n")
    drain(loop, clock)
    errors = [e for e in events if isinstance(e, ChangeFailed)]
    assert len(errors) == 1 and errors[0].tail == ("Step 3/5 : RUN exit 3", "the-last-words")
    assert not changed(memory.ops, "create")  # the running container is left serving
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# fixed\n")
    drain(loop, clock)
    assert memory.builds == 2 and changed(memory.ops, "create proj-notebook")


def test_a_rejected_proxy_configuration_is_an_error_event(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    memory.exec_results["nginx"] = (1, "nginx: [emerg] unknown directive \"bogus\" in "
                                       "/etc/devstack-proxy/gen-2/nginx.conf:2")
    save(loop, project / "proxy" / "nginx.conf.j2", content="events {}\nbogus;\n")
    drain(loop, clock)
    assert isinstance(events[-1], ChangeFailed)
    assert "nginx rejected the new proxy configuration" in events[-1].message
    assert str(project / "proxy" / "nginx.conf.j2") + ":2" in events[-1].message


def test_a_busy_kernel_is_waited_for_then_the_notebook_is_recreated(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout, busy=[["k1"], ["k1"], ["k1"], []])
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# saved\n")
    drain(loop, clock)
    assert memory.ops.count("busy_kernels") == 4
    assert memory.ops.index("build proversity/notebook") < memory.ops.index("busy_kernels") \
        < memory.ops.index("rename proj-notebook proj-notebook-previous")  # the staging flip begins
    messages = [e.message for e in events]
    assert any("waiting up to 60s (KERNEL_IDLE_WAIT) for 1 busy kernel" in m for m in messages)
    assert "kernels idle: recreating the notebook container" in messages


def test_the_wait_for_a_busy_kernel_is_bounded(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout, busy=[["k1"]] * 1000)
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# saved\n")
    start = clock.now
    drain(loop, clock)
    assert changed(memory.ops, "create proj-notebook")
    assert 60 <= clock.now - start < 62
    assert any(isinstance(e, Warned) and "still busy after 60s" in e.message for e in events)


def test_kernels_are_not_asked_about_when_nothing_recreates_the_notebook(layout):
    project, _ = layout
    loop, memory, _, clock = make_loop(layout, busy=[["k1"]] * 10)
    (project / ".env").write_text((project / ".env").read_text() + "KERNEL_IDLE_WAIT=5\n")
    save(loop, project / ".env")
    drain(loop, clock)
    assert "busy_kernels" not in memory.ops and not changed(memory.ops, "create")


def test_an_env_change_resolves_the_settings_again_and_uses_the_new_stack(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    stack = loop.stack
    (project / ".env").write_text((project / ".env").read_text() + "SIFU_PORT=43336\n")
    save(loop, project / ".env")
    drain(loop, clock)
    assert loop.stack is not stack and loop.stack.settings.sifu_port == 43336
    # The notebook is told its new public port, the proxy publishes it: both are recreated.
    assert changed(memory.ops, "create proj-notebook") and changed(memory.ops, "create proj-proxy")
    assert isinstance(events[-1], ChangeApplied)


def test_an_env_change_to_a_taken_port_keeps_the_running_stack(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    stack = loop.stack
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        (project / ".env").write_text((project / ".env").read_text() + f"SIFU_PORT={port}\n")
        save(loop, project / ".env")
        drain(loop, clock)
    assert loop.stack is stack and memory.ops == []
    assert isinstance(events[-1], ChangeFailed)
    assert f"host port 127.0.0.1:{port} (SIFU_PORT) is already in use" in events[-1].message


def test_an_invalid_env_keeps_the_running_stack(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    stack = loop.stack
    (project / ".env").write_text("SIFU_PORT=not-a-port\n")
    save(loop, project / ".env")
    drain(loop, clock)
    assert loop.stack is stack and memory.ops == []
    assert isinstance(events[-1], ChangeFailed) and "SIFU_PORT" in events[-1].message


def test_a_notebook_back_on_a_new_address_gets_its_upstreams_rewritten(layout):
    project, _ = layout
    (project / "proxy" / "conf.d").mkdir()
    (project / "proxy" / "conf.d" / "upstreams.conf.j2").write_text("upstream jupyter { server {{ notebook_ip }}:3335; }\n")
    loop, memory, _, clock = make_loop(layout)
    notebook = memory.container("proj-notebook")
    memory.records[notebook.id] = replace(notebook, ips={"proj_default": "172.30.9.9"})
    loop.inbox.put(RefreshProxy("the notebook container started"))
    drain(loop, clock)
    assert changed(memory.ops, "exec nginx -t")
    current = loop.stack.spec.proxy.config_dir / "current"
    assert "172.30.9.9" in "".join(p.read_text() for p in current.rglob("*.conf"))


def test_timeline_counts_from_the_save():
    timeline = Timeline(saved=100.0)
    timeline.mark("seen", 100.012)
    timeline.mark("healthy", 100.5)
    assert [(label, round(ms)) for label, ms in timeline.steps] == [("seen", 12), ("healthy", 500)]


def test_an_error_shown_in_full_carries_no_secret(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    loop.stack.redact.add("ghp_canary")
    memory.fail_builds = [BuildError("building t failed at step 2/3 (RUN fetch ghp_canary)", step="RUN fetch",
                                     tail=["cloning https://x-access-token:ghp_canary@github.com/o/sifu"])]
    save(loop, project / "final" / "Dockerfile", content="FROM scratch\n# saved\n")
    drain(loop, clock)
    assert any(isinstance(e, ChangeFailed) for e in events)
    assert "ghp_canary" not in repr(events)


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


def test_a_saved_proxy_file_that_needs_openresty_replaces_the_sidecar_with_openresty(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    memory.add_image("openresty/openresty:1.27.1.2-bookworm")
    proxy_file = project / ".ebextensions/.nginx/proxy/jupyter.conf"
    save(loop, proxy_file, content="server {\n    listen 3335;\n    set_hmac_sha1 $sig $secret $cookie_T;\n"
                                   "    location / { proxy_pass http://jupyter; }\n}\n")
    drain(loop, clock)
    # Checked by the nginx that will serve it (a throwaway OpenResty), never by the stock nginx running.
    assert "nginx -t (throwaway)" in memory.ops and not changed(memory.ops, "exec nginx -t")
    proxy = loop.stack.spec.service("proxy").container_name
    assert f"remove {proxy}" in memory.ops and f"create {proxy}" in memory.ops
    assert loop.stack.spec.service("proxy").image == "openresty/openresty:1.27.1.2-bookworm"
    assert any(isinstance(e, Info) and e.message.startswith("proxy: OpenResty") for e in events)
    assert isinstance(events[-1], ChangeApplied)
