"""Keeping a watched stack up, without an engine: the crash-loop bound, the reconnecting event stream,
the change loop's restores on the real Stack over the in-memory engine, the busy-kernel check that
needs no proxy, and the log follower that survives a restart with the same ID."""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from memory_engine import MemoryEngine
from test_watch import FakeClock, WatchedStack, drain, layout, make_loop, save  # noqa: F401 - fixtures

from devstack.docker.engine import ContainerInfo
from devstack.errors import NotReady
from devstack.events import (ChangeApplied, EngineBack, EngineEvent, EngineLost, Restored, RestoreFailed, Restoring,
                             Warned)
from devstack.reconcile import Stack
from devstack.settings import load_settings
from devstack.state import ensure_secrets
from devstack.ui.live import LOG_LINES, LiveState, log_follow
from devstack.watch.heal import (MAX_RESTORES, RESTORE_WINDOW_SECONDS, CrashLoop, RestoreStack, follow_engine_events,
                                 reconnect_delays, restore_request)

# -- the rules -------------------------------------------------------------------------


def test_a_container_is_restored_a_bounded_number_of_times_within_the_window():
    clock = FakeClock()
    loop = CrashLoop(clock)
    for _ in range(MAX_RESTORES):
        assert loop.may_restore("proxy")
        loop.restored("proxy")
        clock.advance(1)
    assert not loop.may_restore("proxy") and loop.given_up == {"proxy"}
    assert loop.may_restore("notebook")  # counted per service
    clock.advance(RESTORE_WINDOW_SECONDS)
    assert not loop.may_restore("proxy")  # given up stays given up, until something else starts it
    loop.forget("proxy")
    assert loop.may_restore("proxy") and loop.count("proxy") == 0


def test_restores_older_than_the_window_do_not_count():
    clock = FakeClock()
    loop = CrashLoop(clock)
    for _ in range(MAX_RESTORES * 3):
        assert loop.may_restore("notebook")
        loop.restored("notebook")
        clock.advance(RESTORE_WINDOW_SECONDS / MAX_RESTORES + 1)  # a death now and then is not a crash loop


def test_the_reconnect_backs_off_to_a_bound():
    assert list(itertools.islice(reconnect_delays(), 6)) == [0.5, 1, 2, 4, 5, 5]


def test_only_the_stacks_own_containers_dying_ask_for_a_restore():
    services = ("notebook", "proxy")
    assert restore_request(EngineEvent("container", "die", "p-proxy", "proxy"), services) == RestoreStack()
    assert restore_request(EngineEvent("container", "die", "x", "proxy-check"), services) is None  # nginx -t's
    assert restore_request(EngineEvent("container", "start", "p-proxy", "proxy"), services) is None


def test_the_event_stream_is_followed_again_once_the_engine_answers():
    answers = iter([ConnectionError("engine gone"), ConnectionError("still gone"),
                    [EngineEvent("container", "start", "p-notebook", "notebook")]])
    got, stop, done = [], threading.Event(), threading.Event()

    def events():
        answer = next(answers, None)
        if answer is None:
            done.set()
            stop.wait()
            return iter(())
        if isinstance(answer, Exception):
            raise answer
        return iter(answer)

    thread = follow_engine_events(events, got.append, stop, delays=lambda: itertools.repeat(0.001))
    assert done.wait(5)
    stop.set()
    thread.join(5)
    kinds = [type(item).__name__ for item in got]
    # Lost once (not once per failed retry), back when the engine answers, then its events; the
    # stream ending after them is lost again.
    assert kinds[:3] == ["EngineLost", "EngineBack", "EngineEvent"], kinds
    assert "engine gone" in got[0].message and "reconnecting" in got[0].message
    assert isinstance(got[1], EngineBack) and "restoring the stack" in got[1].message


# -- restoring, on the real Stack ---------------------------------------------------------


def kill(memory, name, new_ip=None):
    found = memory.container(name)
    memory.records[found.id] = replace(found, state="exited", status="exited (137)",
                                       ips={k: new_ip or v for k, v in found.ips.items()})


def restore_now(loop, clock):
    loop.inbox.put(RestoreStack(delay=0.0))
    drain(loop, clock)


def test_a_killed_notebook_is_started_again_before_the_proxy_is_pointed_at_its_new_address(layout):
    project, _ = layout
    env = project / ".env"
    env.write_text(env.read_text().replace("PROXY_TEMPLATES=proxy\n", ""))  # devstack's own templates
    loop, memory, events, clock = make_loop(layout)
    kill(memory, "proj-notebook", new_ip="172.30.9.9")
    restore_now(loop, clock)
    assert memory.ops[0] == "start proj-notebook"
    assert any(op.startswith("exec nginx -t") for op in memory.ops)  # the new upstream, checked, loaded
    served = loop.stack.spec.proxy.config_dir / "current" / "conf.d" / "upstreams.conf"
    assert "server 172.30.9.9:3335" in served.read_text()
    assert "wait_ready" in memory.ops
    assert [type(e) for e in events if isinstance(e, (Restoring, Restored))] == [Restoring, Restored]
    assert "proj-notebook (exited (137))" in next(e for e in events if isinstance(e, Restoring)).message


def test_nothing_is_restored_while_everything_runs_or_when_a_container_is_gone(layout):
    loop, memory, events, clock = make_loop(layout)
    restore_now(loop, clock)  # devstack's own recreate died: the new container runs
    assert memory.ops == [] and events == []
    kill(memory, "proj-proxy")
    memory.remove(memory.container("proj-notebook").id, "proj-notebook")  # `devstack down` beside, half done
    memory.ops.clear()
    restore_now(loop, clock)
    assert memory.ops == [] and events == []


def test_a_crash_loop_is_given_up_with_its_last_log_lines_and_a_saved_change_repairs_it(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)
    for _ in range(MAX_RESTORES):
        kill(memory, "proj-proxy")
        restore_now(loop, clock)
    assert memory.ops.count("start proj-proxy") == MAX_RESTORES
    kill(memory, "proj-proxy")
    memory.logs[memory.container("proj-proxy").id] = ["nginx: [emerg] the reason it dies"]
    restore_now(loop, clock)
    restore_now(loop, clock)  # a second death notice: reported once, still not started
    assert memory.ops.count("start proj-proxy") == MAX_RESTORES
    failed = [e for e in events if isinstance(e, RestoreFailed)]
    assert len(failed) == 1
    assert "stopped restoring it" in failed[0].message and "devstack up -d" in failed[0].message
    assert failed[0].tail == ("proxy | nginx: [emerg] the reason it dies",)
    # A saved .env that recreates the notebook starts the stopped proxy too, and counts from zero.
    save(loop, project / ".env", content=(project / ".env").read_text() + "NEW_VARIABLE=1\n")
    drain(loop, clock)
    assert any(isinstance(e, ChangeApplied) for e in events)
    assert memory.container("proj-proxy").running
    assert loop.crash_loop.given_up == set()


def test_a_busy_kernel_check_that_cannot_tell_never_blocks_the_recreate(layout):
    project, _ = layout
    loop, memory, events, clock = make_loop(layout)

    def cannot_tell():
        raise NotReady("Jupyter's kernel list at http://127.0.0.1:43335/api/kernels: ConnectError: refused")

    def make_stack(settings):  # a saved .env makes the stack anew
        stack = WatchedStack(settings, memory)
        stack.running.busy_kernels = cannot_tell
        return stack

    loop.make_stack = make_stack
    save(loop, project / ".env", content=(project / ".env").read_text() + "NEW_VARIABLE=1\n")
    drain(loop, clock)
    warned = [e.message for e in events if isinstance(e, Warned)]
    assert any("could not ask Jupyter whether a kernel is busy" in m and "recreating now" in m for m in warned)
    assert any(isinstance(e, ChangeApplied) for e in events)
    assert any(op.startswith("create proj-notebook") for op in memory.ops)


class Kernels(http.server.BaseHTTPRequestHandler):
    """Jupyter's kernel list, for a request that carries the token and the cookie."""

    token = ""
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        Kernels.seen.append(self.headers.get("Host", ""))
        ok = self.path == "/api/kernels" and self.headers.get("Authorization") == f"token {self.token}" \
            and "JUPYTER_AUTHORIZATION=" in self.headers.get("Cookie", "")
        body = json.dumps([{"id": "k1", "execution_state": "busy"}, {"id": "k2", "execution_state": "idle"}])
        self.send_response(200 if ok else 403)
        self.end_headers()
        self.wfile.write(body.encode() if ok else b"[]")

    def log_message(self, *args):  # noqa: ANN002
        pass


def test_busy_kernels_are_asked_of_jupyter_itself_not_through_the_proxy(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Kernels)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Host mode: Jupyter listens on 127.0.0.1:JUPYTER_PORT+10000, which is where this server is; the
        # proxy's own port (JUPYTER_PORT) has nothing listening.
        (tmp_path / ".env").write_text(f"DEVSTACK_PROJECT=p\nNETWORK_MODE=host\nSIFU_PORT=43334\n"
                                       f"JUPYTER_PORT={port - 10000}\n")
        memory = MemoryEngine({"nginx:stable": {}})
        stack = Stack(load_settings(tmp_path, environ={}), connect=lambda: memory)
        stack.converge()
        Kernels.token = ensure_secrets(stack.settings).jupyter_token
        assert stack.running.busy_kernels() == ["k1"]
        assert Kernels.seen == ["localhost"]  # a name Jupyter answers to
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NotReady, match="no answer from Jupyter in p-notebook"):
        stack.running.busy_kernels()  # neither Jupyter nor the proxy answers: a clear error, not ConnectError


# -- what the view shows ---------------------------------------------------------------------


def running(container_id="c1", started="2026-01-01T10:00:00"):
    return ContainerInfo(container_id, "p-proxy", "p", "proxy", "running", "running", "sha256:1", {},
                         started_at=datetime.fromisoformat(started).replace(tzinfo=timezone.utc))


def test_a_container_that_restarts_with_the_same_id_is_followed_again_from_its_start():
    first = running()
    key, which = log_follow(None, first)
    assert which == {"tail": LOG_LINES}
    assert log_follow(key, first) is None  # followed already
    restarted = running(started="2026-01-01T10:05:00")
    again = log_follow(key, restarted)
    assert again is not None and again[1] == {"tail": "all", "since": restarted.started_at}
    assert log_follow(key, running("c2"))[1] == {"tail": LOG_LINES}  # a new container: its last lines
    assert log_follow(key, replace(first, state="exited")) is None


def test_the_view_says_what_keeping_the_stack_up_did():
    state = LiveState()
    state.on_error("cannot read the stack's state: lost the Docker Engine")
    state.on_event(EngineLost("lost the Docker Engine's event stream (it ended): reconnecting"))
    assert "lost the Docker Engine" in state.live.recovery and "reconnecting" in state.live.activity
    state.on_event(EngineBack("the Docker Engine answers again (after 3.0 s): restoring the stack"))
    assert state.live.last_error == ""  # the engine is back: not reading the state is no longer news
    state.on_event(Restoring("the notebook container stopped: starting it again"))
    state.on_event(Restored("restored p-notebook in 2.0 s: Sifu and Jupyter answer through the proxy again"))
    assert "restored p-notebook" in state.live.recovery and state.live.activity == ""
    state.on_event(RestoreFailed("p-proxy stopped again: devstack stopped restoring it", tail=("proxy | why",)))
    assert "stopped restoring" in state.live.recovery and "proxy | why" in state.live.last_error


def test_after_a_daemon_restart_both_containers_are_restored_notebook_first(layout):
    loop, memory, events, clock = make_loop(layout)
    kill(memory, "proj-notebook")
    kill(memory, "proj-proxy")
    loop.inbox.put(RestoreStack("the Docker Engine restarted", delay=0.0))
    drain(loop, clock)
    starts = [op for op in memory.ops if op.startswith("start ")]
    assert starts == ["start proj-notebook", "start proj-proxy"]
    restoring = next(e.message for e in events if isinstance(e, Restoring))
    assert restoring.startswith("the Docker Engine restarted: proj-notebook (exited (137)), proj-proxy (exited (137))")
    assert "stopped without devstack stopping them: starting them again" in restoring
    assert any(isinstance(e, Restored) and "restored proj-notebook, proj-proxy in" in e.message for e in events)
