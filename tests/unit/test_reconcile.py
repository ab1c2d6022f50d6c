"""observe -> plan -> apply against an in-memory engine: after applying, the plan is empty (the
steady state, as Tilt's reconciler tests assert), and each change plans exactly what it must."""

from __future__ import annotations

import pytest
from memory_engine import MemoryEngine

from devstack.errors import ConflictError
from devstack.events import Acted
from devstack.reconcile import Stack, Verb
from devstack.settings import load_settings
from devstack.spec import LABEL_PROJECT, LABEL_SERVICE

NGINX = "nginx:stable"


@pytest.fixture
def own_context(project, tmp_path):
    """The project with a final-image context of its own, brought up once: (the context, the engine)."""
    context = tmp_path / "final"
    context.mkdir()
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (project / ".env").write_text((project / ".env").read_text() + f"NOTEBOOK_CONTEXT={context}\n")
    engine = MemoryEngine({NGINX: {}})
    stack_on(engine, project).converge()
    return context, engine


def stack_on(engine: MemoryEngine, folder, events=None) -> Stack:
    return Stack(load_settings(folder, environ={}), notify=(events.append if events is not None else lambda e: None),
                 connect=lambda: engine)


def verbs(plan) -> list[tuple[str, str]]:
    return [(step.verb.value, step.target) for step in plan.steps]


def test_a_new_stack_is_planned_in_order_and_reaches_a_steady_state(project):
    engine = MemoryEngine({NGINX: {}})
    stack = stack_on(engine, project)
    assert verbs(stack.plan()) == [
        ("build", "base"), ("build", "notebook"), ("create network", "demo_default"), ("create", "notebook"),
        ("load proxy configuration", "proxy"), ("create", "proxy")]
    assert [s.ready for s in stack.plan().steps] == [True, False, True, False, False, True]
    applied = stack.converge()
    assert [(s.verb.value, s.target) for s in applied] == verbs(stack_on(MemoryEngine({NGINX: {}}), project).plan())
    assert engine.ops == [
        "build proversity/base-notebook", "build proversity/notebook", "create network demo_default",
        "create demo-notebook", "start demo-notebook", "nginx -t (throwaway)", "create demo-proxy", "start demo-proxy"]
    assert not stack.plan()  # the steady state
    engine.ops.clear()
    assert stack.converge() == [] and engine.ops == []


def test_a_user_variable_recreates_the_notebook_only(project):
    engine = MemoryEngine({NGINX: {}})
    stack_on(engine, project).converge()
    (project / ".env").write_text((project / ".env").read_text() + "FEATURE_FLAG=on\n")
    stack = stack_on(engine, project)
    plan = stack.plan()
    assert verbs(plan) == [("recreate", "notebook"), ("load proxy configuration", "proxy")]
    assert plan.recreates("notebook") and not plan.recreates("proxy")
    stack.converge()
    assert not stack.plan()


def test_a_devstack_setting_that_no_container_uses_changes_nothing(project):
    engine = MemoryEngine({NGINX: {}})
    stack_on(engine, project).converge()
    (project / ".env").write_text((project / ".env").read_text() + "KERNEL_IDLE_WAIT=5\n")
    assert not stack_on(engine, project).plan()


def test_a_saved_file_in_the_final_context_rebuilds_it_and_the_watcher_sees_the_recreate_coming(project, own_context):
    context, engine = own_context
    (context / "app.py").write_text("print(2)\n")
    stack = stack_on(engine, project)
    plan = stack.plan()
    assert verbs(plan) == [("build", "notebook"), ("recreate", "notebook"), ("load proxy configuration", "proxy")]
    assert plan.recreates("notebook")
    seen = []
    stack.converge(before=lambda step: seen.append((step.verb, step.target)))
    assert seen[:2] == [(Verb.BUILD, "notebook"), (Verb.RECREATE, "notebook")]
    assert not stack.plan()


def test_images_a_rebuild_replaced_are_removed_once_unused(project, own_context):
    context, engine = own_context
    first = engine.image("proversity/notebook").id
    (context / "app.py").write_text("print(2)\n")
    events = []
    stack_on(engine, project, events).converge()
    assert engine.image(first) is None and f"remove image {first}" in engine.ops
    assert any(isinstance(e, Acted) and e.message.startswith("remove image") for e in events)


def test_a_foreign_container_with_our_name_is_a_conflict_before_anything_is_built(project):
    engine = MemoryEngine({NGINX: {}})
    engine.add_container("demo-notebook", {"other": "label"})
    with pytest.raises(ConflictError, match="container demo-notebook exists and was not created by devstack"):
        stack_on(engine, project).converge()
    assert engine.ops == []


def test_a_renamed_notebook_container_is_removed_by_its_labels(project):
    engine = MemoryEngine({NGINX: {}})
    stack_on(engine, project).converge()
    (project / ".env").write_text((project / ".env").read_text() + "NOTEBOOK_CONTAINER_NAME=proversity.jupyter.cont\n")
    stack = stack_on(engine, project)
    assert verbs(stack.plan())[:2] == [("remove", "demo-notebook"), ("create", "notebook")]
    stack.converge()
    assert not stack.plan()
    names = {c.name for c in engine.containers("demo")}
    assert names == {"proversity.jupyter.cont", "demo-proxy"}


def test_a_missing_proxy_image_is_pulled_before_the_proxy_is_made(project):
    engine = MemoryEngine()
    stack = stack_on(engine, project)
    assert ("pull", "proxy") in verbs(stack.plan())
    stack.converge()
    assert engine.ops.index(f"pull {NGINX}") < engine.ops.index("create demo-proxy")
    assert not stack.plan()


def test_a_stopped_stack_is_started_not_recreated(project):
    engine = MemoryEngine({NGINX: {}})
    stack = stack_on(engine, project)
    stack.converge()
    stack.stop()
    engine.ops.clear()
    # Started again, the notebook may come back on another address: the configuration follows it.
    assert verbs(stack.plan()) == [("start", "notebook"), ("load proxy configuration", "proxy"), ("start", "proxy")]
    stack.converge()
    assert not stack.plan()
    assert engine.ops == ["start demo-notebook", "start demo-proxy"]


def test_stop_waves_the_front_and_the_notebooks_together_then_the_database():
    from devstack.reconcile.stop_order import StopWave, stop_waves

    assert stop_waves(["proxy", "notebook"]) == [StopWave(("notebook", "proxy"), 10)]
    instances = ["lb", "notebook-1", "proxy-1", "notebook-2", "proxy-2", "rds"]
    assert stop_waves(instances) == [StopWave(("lb", "notebook-1", "notebook-2", "proxy-1", "proxy-2"), 10),
                                     StopWave(("rds",), 30)]
    assert stop_waves(["rds"]) == [StopWave(("rds",), 30)]  # `devstack stop rds`, or all else already stopped
    assert stop_waves([]) == []


def test_down_removes_only_what_carries_the_projects_label(project):
    engine = MemoryEngine({NGINX: {}})
    stack = stack_on(engine, project)
    stack.converge()
    engine.add_container("bystander", {LABEL_PROJECT: "other", LABEL_SERVICE: "notebook"})
    stack.down()
    assert {c.name for c in engine.containers()} == {"bystander"}
    assert engine.network("demo_default") is None


def test_the_memory_engine_answers_only_what_the_real_engine_has():
    """The fake cannot drift from the seam unseen: every method it offers, the real Engine offers with
    the same parameters."""
    import inspect

    from devstack.docker.engine import Engine

    for name, method in inspect.getmembers(MemoryEngine, inspect.isfunction):
        if name.startswith("_") or name == "add_image" or name == "add_container":
            continue
        real = getattr(Engine, name, None)
        assert real is not None, f"Engine has no {name}"
        assert list(inspect.signature(method).parameters)[:len(inspect.signature(real).parameters)] \
            == list(inspect.signature(real).parameters), name
