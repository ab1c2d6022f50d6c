"""The coupled RDS: when the environment asks for one, what it is given, and how the plan orders it."""

from __future__ import annotations

import json

import pytest
from memory_engine import MemoryEngine

from devstack.errors import ConfigError, NotReady
from devstack.reconcile import Stack, Verb
from devstack.settings import load_settings
from devstack.spec import LABEL_PROJECT, load_stack

NGINX, MYSQL = "nginx:stable", "mysql:8.0"


def spec_of(folder, overrides: str, **environ):
    (folder / "overrides.yml").write_text(overrides)
    return load_stack(load_settings(folder, environ=environ), (1000, 1000))


def env_of(spec, service="notebook") -> dict[str, str]:
    return dict(spec.service(service).environment)


def test_no_rds_variables_no_database(project):
    spec = spec_of(project, "EB_REGION: us-west-2\n")
    assert spec.database is None and [s.name for s in spec.services] == ["notebook", "proxy"]
    assert spec.image("notebook").network == ""  # built as before


def test_rds_hostname_set_means_the_projects_own_database(project):
    spec = spec_of(project, "RDS_HOSTNAME: db.example.org\nRDS_DB_NAME: production\nRDS_PASSWORD: pw123456\n")
    assert spec.database is None and "rds" not in [s.name for s in spec.services]
    assert env_of(spec)["RDS_HOSTNAME"] == "db.example.org"


def test_root_uses_the_root_password_and_the_notebook_gets_what_eb_gives(project):
    spec = spec_of(project, "RDS_DB_NAME: production\nRDS_USERNAME: root\nRDS_PASSWORD: secretsecret\n"
                            "RDS_PORT: 3306\n")
    database = spec.database
    assert database is not None and database.hostname == "demo-rds" and database.volume == "demo_rds-data"
    image_env = env_of(spec, "rds")
    # The official images refuse MYSQL_USER=root: root's own password is the one.
    assert image_env == {"MYSQL_ROOT_PASSWORD": "secretsecret", "MYSQL_DATABASE": "production"}
    notebook = env_of(spec)
    assert {k: notebook[k] for k in notebook if k.startswith("RDS_")} == {
        "RDS_HOSTNAME": "demo-rds", "RDS_PORT": "3306", "RDS_DB_NAME": "production", "RDS_USERNAME": "root",
        "RDS_PASSWORD": "secretsecret"}
    # The final image is built on the project's network, where the database answers by that name.
    assert spec.image("notebook").network == "demo_default"
    assert "secretsecret" in spec.secret_values()
    assert [v.volume for v in spec.service("rds").volumes] == ["demo_rds-data"]


def test_a_password_is_generated_once_when_none_is_given(project):
    first = spec_of(project, "RDS_USERNAME: sifu\nRDS_PASSWORD:\n")
    again = spec_of(project, "RDS_USERNAME: sifu\nRDS_PASSWORD:\n")
    database = first.database
    assert database is not None and database.password_generated and len(database.password) >= 20
    assert again.database.password == database.password and again.database.root_password == database.root_password
    assert env_of(first, "rds") == {"MYSQL_ROOT_PASSWORD": database.root_password, "MYSQL_DATABASE": "ebdb",
                                    "MYSQL_USER": "sifu", "MYSQL_PASSWORD": database.password}
    assert database.root_password != database.password
    assert env_of(first)["RDS_PASSWORD"] == database.password
    stored = project / ".devstack" / "generated-rds.json"
    assert json.loads(stored.read_text())["password"] == database.password
    assert stored.stat().st_mode & 0o077 == 0


def test_the_environment_and_flags_override_the_files(project):
    spec = spec_of(project, "RDS_PORT: 3306\nRDS_PASSWORD: from-file\n", RDS_PORT="3307")
    assert spec.database.port == 3307 and env_of(spec)["RDS_PORT"] == "3307"
    assert "--port=3307" in spec.service("rds").command


@pytest.mark.parametrize("overrides, key", [("RDS_PORT: 70000\n", "RDS_PORT='70000'"),
                                            ("RDS_PORT: abc\n", "RDS_PORT='abc'"),
                                            ("RDS_DB_NAME: 'my db'\n", "RDS_DB_NAME='my db'"),
                                            ("RDS_USERNAME: 'a;b'\n", "RDS_USERNAME='a;b'")])
def test_a_value_the_database_cannot_take_is_named(project, overrides, key):
    with pytest.raises(ConfigError) as error:
        spec_of(project, overrides)
    assert str(error.value).startswith(f"{project / 'overrides.yml'}:1: {key}")


def test_host_mode_listens_on_loopback_and_checks_the_port(project):
    spec = spec_of(project, "RDS_DB_NAME: production\n", NETWORK_MODE="host")
    assert spec.database.hostname == "127.0.0.1"
    assert "--bind-address=127.0.0.1" in spec.service("rds").command
    assert [(p.address, p.port, p.service) for p in spec.host_ports if p.service == "rds"] == [("127.0.0.1", 3306, "rds")]
    assert spec.image("notebook").network == "host"


def stack_on(engine, folder) -> Stack:
    return Stack(load_settings(folder, environ={}), connect=lambda: engine)


def verbs(plan) -> list[tuple[str, str, bool]]:
    return [(step.verb.value, step.target, step.ready) for step in plan.steps]


def test_the_database_answers_before_the_final_image_is_built(project):
    (project / "overrides.yml").write_text("RDS_DB_NAME: production\nRDS_USERNAME: root\nRDS_PASSWORD: pw123456\n")
    engine = MemoryEngine({NGINX: {}})
    stack = stack_on(engine, project)
    assert verbs(stack.plan()) == [
        ("build", "base", True), ("create network", "demo_default", True), ("create volume", "demo_rds-data", True),
        ("pull", "rds", True), ("create", "rds", False), ("wait for", "rds", True), ("build", "notebook", False),
        ("create", "notebook", False), ("load proxy configuration", "proxy", False), ("create", "proxy", True)]
    stack.converge()
    ops = engine.ops
    assert ops.index("create volume demo_rds-data") < ops.index("create demo-rds") < ops.index("start demo-rds")
    assert ops.index("start demo-rds") < ops.index("build proversity/notebook")
    assert engine.build_networks == ["", "demo_default"]  # base on the default, final on the project's
    assert engine.volume("demo_rds-data").labels[LABEL_PROJECT] == "demo"
    assert not stack.plan()  # the steady state: the database answers, nothing to wait for


def test_a_database_that_refuses_holds_the_final_build(project):
    (project / "overrides.yml").write_text("RDS_DB_NAME: production\n")
    (project / ".env").write_text((project / ".env").read_text() + "RDS_READY_TIMEOUT=1\n")
    engine = MemoryEngine({NGINX: {}, MYSQL: {}})
    engine.exec_results["sh"] = (1, "ERROR 2002 (HY000): Can't connect")
    stack = stack_on(engine, project)
    with pytest.raises(NotReady, match="did not accept connections within 1 s"):
        stack.converge()
    assert not any(op.startswith("build proversity/notebook") for op in engine.ops)
    assert engine.container("demo-notebook") is None


def test_down_keeps_the_volume_and_down_volumes_removes_it(project):
    (project / "overrides.yml").write_text("RDS_DB_NAME: production\n")
    engine = MemoryEngine({NGINX: {}, MYSQL: {}})
    stack_on(engine, project).converge()
    stack_on(engine, project).down()
    assert engine.volume("demo_rds-data") is not None and engine.containers("demo") == []
    stack_on(engine, project).down(remove_volumes=True)
    assert engine.volume("demo_rds-data") is None


def test_a_foreign_volume_of_its_name_is_a_conflict(project):
    from devstack.errors import ConflictError

    (project / "overrides.yml").write_text("RDS_DB_NAME: production\n")
    engine = MemoryEngine({NGINX: {}, MYSQL: {}})
    engine.create_volume("demo_rds-data", {})
    with pytest.raises(ConflictError, match="volume demo_rds-data exists and was not created by devstack"):
        stack_on(engine, project).plan()


def test_build_alone_starts_the_database_it_may_migrate(project):
    (project / "overrides.yml").write_text("RDS_DB_NAME: production\n")
    engine = MemoryEngine({NGINX: {}, MYSQL: {}})
    stack_on(engine, project).build({"base", "notebook"})
    assert "start demo-rds" in engine.ops and "build proversity/notebook" in engine.ops
    assert engine.container("demo-notebook") is None and engine.container("demo-proxy") is None
    assert Verb.WAIT_READY.value == "wait for"


def test_a_password_with_quotes_and_backslashes_is_one_sql_string():
    from devstack.reconcile.database import set_password_statement, sql_string

    assert sql_string("pa'ss\\word") == "'pa\\'ss\\\\word'"
    assert set_password_statement("sifu", "x'y") == (
        "ALTER USER IF EXISTS 'sifu'@'%' IDENTIFIED BY 'x\\'y', 'sifu'@'localhost' IDENTIFIED BY 'x\\'y'")


def test_a_database_volume_made_anew_is_migrated_again_by_the_final_build(tmp_path):
    """Production's final build migrates the database: after `down --volumes` the new, empty database is
    migrated by a new build (as each EB deploy builds anew); a plain `down` keeps both."""
    import shutil
    from pathlib import Path

    folder = tmp_path / "jupyter-server"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "jupyter-server", folder)
    engine = MemoryEngine({NGINX: {}, MYSQL: {}, "openresty/openresty:1.27.1.2-bookworm": {}})
    stack_on(engine, folder).converge()
    final = stack_on(engine, folder).spec.service("notebook").image

    def builds_of_final() -> int:
        return sum(op == f"build {final}" for op in engine.ops)

    assert builds_of_final() == 1
    stack_on(engine, folder).down()
    stack_on(engine, folder).converge()
    assert builds_of_final() == 1  # the same database: nothing to migrate
    stack_on(engine, folder).down(remove_volumes=True)
    plan = stack_on(engine, folder).plan()
    stack_on(engine, folder).converge()
    assert builds_of_final() == 2
    [build] = [s for s in plan.steps if s.verb is Verb.BUILD and s.target == "notebook"]
    assert "the database volume its build migrates was made anew" in build.reason


def running_with_database(project) -> MemoryEngine:
    """The project's stack with its coupled database, up on an in-memory engine whose ops are then cleared."""
    (project / "overrides.yml").write_text("RDS_DB_NAME: production\n")
    engine = MemoryEngine({NGINX: {}, MYSQL: {}})
    stack_on(engine, project).converge()
    engine.ops.clear()
    return engine


def test_stop_stops_the_database_after_the_notebook_and_gives_it_longer(project):
    engine = running_with_database(project)
    stack_on(engine, project).stop()
    assert set(engine.ops[:2]) == {"stop demo-notebook", "stop demo-proxy"}  # side by side, in either order
    assert engine.ops[2:] == ["stop demo-rds"]
    assert engine.stop_timeouts == {"demo-notebook": 10, "demo-proxy": 10, "demo-rds": 30}
    assert all(c.state == "exited" for c in engine.containers("demo"))  # kept, stopped


def test_a_notebook_that_would_not_stop_keeps_its_database_running(project):
    from devstack.errors import EngineError

    engine = running_with_database(project)
    engine.fail_stops["demo-notebook"] = EngineError("container demo-notebook: the engine timed out")
    with pytest.raises(EngineError, match="demo-notebook"):
        stack_on(engine, project).stop()
    assert engine.ops == ["stop demo-proxy"]  # its wave still stopped; the database still serves the notebook
    assert engine.container("demo-rds").running


def test_down_stops_the_database_cleanly_after_the_notebook_is_gone(project):
    """A removal kills at once: the database gets its clean shutdown first, once no Sifu can write to it."""
    engine = running_with_database(project)
    stack_on(engine, project).down()
    assert engine.ops.index("remove demo-notebook") < engine.ops.index("stop demo-rds") \
        < engine.ops.index("remove demo-rds")
    assert engine.stop_timeouts["demo-rds"] == 30
