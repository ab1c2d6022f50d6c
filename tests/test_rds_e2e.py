"""EB's environment and the coupled RDS against the real engine: a project whose `.ebextensions` and
`overrides.yml` name RDS_* gets a MySQL-compatible database, ready before the final image's build (which
reaches it by name on the project's network), the notebook sees what EB gives it and reaches the
database, the data outlive `down` and `up`, `down --volumes` deletes them, and the password is in no
output. Plus the bad input of these files, through the installed CLI."""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import PROJECT_LABEL, TEST_NOTEBOOK_TAG, _remove_by_label, make_project

BUNDLED_FINAL = Path(__file__).resolve().parents[1] / "compose" / "notebook"

EBEXTENSIONS = """\
option_settings:
  - namespace: aws:elasticbeanstalk:application:environment
    option_name: RDS_DB_NAME
    value: from_ebextensions
  - namespace: aws:elasticbeanstalk:application:environment
    option_name: EB_ONLY
    value: from-ebextensions
"""

OVERRIDES = """\
# RDS CONFIG
RDS_DB_NAME: production
RDS_USERNAME: root
RDS_PORT: 3306

EB_REGION: 'us-west-2'
EB_DNS: '{{ EB_REGION }}.elasticbeanstalk.com'
EB_HOSTNAME: 'prov-docker{{ EB_DNS }}'
"""

# The MySQL greeting: the first packet a running server sends (protocol 10, then its version). While the
# image initialises its data it runs without networking, so this answers only once the database does.
GREETING = ("import os, socket, sys\n"
            "host, port = sys.argv[1], int(sys.argv[2])\n"
            "data = socket.create_connection((host, port), timeout=10).recv(512)\n"
            "assert data[4] == 10, data\n"
            "print('greeting from', host, data[5:data.index(b'\\0', 5)].decode())\n")

# A login as the notebook's user, over TCP, with the database's own client.
CLIENT = 'c=$(command -v mariadb || command -v mysql); exec "$c" --protocol=TCP -h "$1" -P "$2" -u "$3" -N -B -e "$5" "$4"'


def sql(docker_client, project, env: dict[str, str], statement: str) -> str:
    container = docker_client.containers.get(f"{project.name}-rds")
    code, output = container.exec_run(
        ["sh", "-c", CLIENT, "sh", env["RDS_HOSTNAME"], env["RDS_PORT"], env["RDS_USERNAME"], env["RDS_DB_NAME"],
         statement], environment={"MYSQL_PWD": env["RDS_PASSWORD"]})
    assert code == 0, output.decode()
    return output.decode().strip()


def notebook_env(docker_client, project) -> dict[str, str]:
    container = docker_client.containers.get(f"{project.name}-notebook")
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


@pytest.fixture(scope="module")
def with_rds(tmp_path_factory, docker_client, rds_image):
    """A project shaped like production's: its RDS_* in `.ebextensions` and `overrides.yml`, and a final
    image whose build talks to the database (as production's migration does)."""
    made = make_project(tmp_path_factory.mktemp("rds"))
    context = made.dir / "final"
    shutil.copytree(BUNDLED_FINAL, context)
    (context / "greeting.py").write_text(GREETING)
    with open(context / "Dockerfile", "a") as dockerfile:
        dockerfile.write(f"COPY greeting.py /tmp/greeting.py\nRUN python3 /tmp/greeting.py {made.name}-rds 3306\n")
    made.write_env(NOTEBOOK_CONTEXT=str(context), NOTEBOOK_IMAGE_TAG=f"{TEST_NOTEBOOK_TAG}-rds-{made.name}",
                   DOCKER_ENVS_FILE="/tmp/docker_envs", DEPLOYMENT_TOKEN="ghp_" + secrets.token_hex(10))
    (made.dir / ".ebextensions").mkdir()
    (made.dir / ".ebextensions" / "00_environment.config").write_text(EBEXTENSIONS)
    (made.dir / ".ebextensions" / "01_broken.config").write_text("files:\n  /etc/x: [\n")
    (made.dir / "overrides.yml").write_text(OVERRIDES)
    made.outputs = []  # every line devstack printed of its own, for the secret check

    def run(*args, **kwargs):
        result = made.run(*args, **kwargs)
        made.outputs.append(result.stdout + result.stderr)
        return result

    made.cli = run
    made.first_up = run("up", "-d")
    yield made
    made.run("down", "--volumes", check=False, timeout=120)
    _remove_by_label(docker_client, made.name)
    docker_client.images.remove(made.settings["NOTEBOOK_IMAGE_TAG"], force=True)


def generated_password(project) -> str:
    return json.loads((project.dir / ".devstack" / "generated-rds.json").read_text())["password"]


def test_up_runs_the_database_before_the_final_build(with_rds, docker_client):
    out = with_rds.first_up.stdout
    # overrides.yml's RDS_DB_NAME beats the one of .ebextensions.
    assert f"RDS: RDS_DB_NAME from {with_rds.dir / 'overrides.yml'}:2 asks for the coupled database" in out
    assert f"runs as {with_rds.name}-rds (root@{with_rds.name}-rds:3306/production" in out
    # The .ebextensions file that is not YAML: skipped with a warning naming it and its line, as EB does.
    assert "01_broken.config:3: not YAML" in out and "EB skips this file" in out
    lines = out.splitlines()
    accepting = next(i for i, line in enumerate(lines) if "accepts connections" in line)
    final_build = next(i for i, line in enumerate(lines) if line.startswith("build notebook"))
    assert accepting < final_build
    # The build's RUN reached the database by name on the project's network, and got its greeting.
    image = docker_client.images.get(with_rds.settings["NOTEBOOK_IMAGE_TAG"])
    assert any("greeting.py" in (layer.get("CreatedBy") or "") for layer in image.history())
    volume = docker_client.volumes.get(f"{with_rds.name}_rds-data")
    assert volume.attrs["Labels"][PROJECT_LABEL] == with_rds.name
    rds = docker_client.containers.get(f"{with_rds.name}-rds")
    assert rds.labels[PROJECT_LABEL] == with_rds.name
    assert [m["Name"] for m in rds.attrs["Mounts"] if m["Destination"] == "/var/lib/mysql"] == [volume.name]


def test_the_notebook_gets_the_environment_as_eb_gives_it(with_rds, docker_client):
    env = notebook_env(docker_client, with_rds)
    assert env["RDS_HOSTNAME"] == f"{with_rds.name}-rds"
    assert (env["RDS_DB_NAME"], env["RDS_USERNAME"], env["RDS_PORT"]) == ("production", "root", "3306")
    assert env["RDS_PASSWORD"] == generated_password(with_rds)
    assert env["EB_HOSTNAME"] == "prov-dockerus-west-2.elasticbeanstalk.com"
    assert env["EB_ONLY"] == "from-ebextensions"
    assert "DEPLOYMENT_TOKEN" not in env
    # docker_envs, as production's hook writes it, mounted where the image asked for it.
    # (`exec` passes the command's own output through, unredacted: it is not collected for the secret check.)
    docker_envs = with_rds.run("exec", "--", "cat", "/tmp/docker_envs").stdout
    assert f"export RDS_HOSTNAME={with_rds.name}-rds" in docker_envs
    assert "export EB_DNS=us-west-2.elasticbeanstalk.com" in docker_envs
    assert "DEPLOYMENT_TOKEN" not in docker_envs and "JUPYTER_TOKEN" not in docker_envs
    # From inside the notebook container the database answers by RDS_HOSTNAME.
    greeting = with_rds.run("exec", "--", "sh", "-c", f"python3 -c {shlex.quote(GREETING)} "
                                                      '"$RDS_HOSTNAME" "$RDS_PORT"').stdout
    assert greeting.startswith(f"greeting from {with_rds.name}-rds")


def test_status_and_doctor_show_the_database(with_rds):
    status = json.loads(with_rds.cli("status", "--json").stdout)
    [rds] = [s for s in status["services"] if s["service"] == "rds"]
    assert rds["state"] == "running" and rds["health"] == "accepting connections"
    doctor = json.loads(with_rds.cli("doctor", "--json", check=False).stdout)
    [row] = [c for c in doctor["checks"] if c["check"] == "database (RDS)"]
    assert row["status"] == "pass" and f"root@{with_rds.name}-rds:3306/production" in row["detail"]
    assert any(c["check"] == "environment" and "01_broken.config:3" in c["detail"] for c in doctor["checks"])
    config = with_rds.cli("config").stdout
    assert f"RDS_HOSTNAME={with_rds.name}-rds" in config and "RDS_PASSWORD=********" in config


def test_stop_signals_the_database_once_the_notebook_has_stopped_and_it_shuts_down_cleanly(with_rds, docker_client):
    import time

    since = time.time() - 1
    with_rds.cli("stop")
    until = time.time() + 1
    events = docker_client.events(since=since, until=until, decode=True,
                                  filters={"type": "container", "label": f"{PROJECT_LABEL}={with_rds.name}"})
    first: dict[tuple[str, str], int] = {}  # (container, action) -> when the engine first said so
    for event in events:
        key = (event["Actor"]["Attributes"]["name"], event["Action"])
        first.setdefault(key, event["timeNano"])
    notebook, rds = f"{with_rds.name}-notebook", f"{with_rds.name}-rds"
    assert first[(notebook, "die")] <= first[(rds, "kill")], first  # Sifu could still write until it stopped
    assert docker_client.containers.get(rds).attrs["State"]["ExitCode"] == 0  # its own clean shutdown, not a kill
    with_rds.cli("up", "-d")  # as the tests after this one expect it


def test_data_survive_down_and_up_and_down_volumes_deletes_them(with_rds, docker_client):
    env = notebook_env(docker_client, with_rds)
    sql(docker_client, with_rds, env, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('kept')")
    down = with_rds.cli("down")
    assert f"kept volume {with_rds.name}_rds-data" in down.stdout
    assert docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={with_rds.name}"}) == []
    with_rds.cli("up", "-d")
    assert sql(docker_client, with_rds, notebook_env(docker_client, with_rds), "SELECT body FROM notes") == "kept"

    # Afresh, with a user of its own and a password given: the image creates both.
    with_rds.cli("down", "--volumes")
    assert docker_client.volumes.list(filters={"label": f"{PROJECT_LABEL}={with_rds.name}"}) == []
    password = "pw-" + secrets.token_hex(8)
    with_rds.password = password
    (with_rds.dir / "overrides.yml").write_text(OVERRIDES.replace("RDS_USERNAME: root", "RDS_USERNAME: sifu")
                                                + f"RDS_PASSWORD: '{password}'\n")
    with_rds.cli("up", "-d")
    env = notebook_env(docker_client, with_rds)
    assert (env["RDS_USERNAME"], env["RDS_PASSWORD"]) == ("sifu", password)
    assert sql(docker_client, with_rds, env, "SELECT COUNT(*) FROM information_schema.tables "
                                             "WHERE table_schema = 'production' AND table_name = 'notes'") == "0"
    assert sql(docker_client, with_rds, env, "SELECT CURRENT_USER()") == "sifu@%"


def test_the_passwords_appear_in_no_output(with_rds):
    with_rds.cli("logs", "--tail", "200")
    with_rds.cli("config", "--format", "json")
    shown = "\n".join(with_rds.outputs)
    assert "root@" in shown  # the outputs are there to look at
    for secret in (generated_password(with_rds), getattr(with_rds, "password", ""), with_rds.settings["DEPLOYMENT_TOKEN"]):
        assert secret and secret not in shown


@pytest.fixture
def broken_database_image(docker_client, tmp_path):
    """A "database" that says why it cannot start, and exits."""
    (tmp_path / "Dockerfile").write_text(
        'FROM debian:bookworm-slim\n'
        'ENTRYPOINT ["sh", "-c", "echo \'mysqld: Table mysql.plugin is missing, upgrade needed\' >&2; exit 1", "--"]\n')
    tag = f"devstack-test/broken-db:{secrets.token_hex(4)}"
    docker_client.images.build(path=str(tmp_path), tag=tag, pull=False, rm=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def test_a_database_that_never_answers_stops_up_with_its_log_lines(project, docker_client, broken_database_image):
    (project.dir / "overrides.yml").write_text("RDS_DB_NAME: production\n")
    project.write_env(RDS_IMAGE=broken_database_image)
    result = project.run("up", "-d", check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr
    assert f"the database container {project.name}-rds ({broken_database_image}, RDS_IMAGE) is exited (1)" in errors[0]
    assert "rds | mysqld: Table mysql.plugin is missing, upgrade needed" in result.stderr
    # The final image's build and the notebook wait for the database: neither happened.
    assert docker_client.containers.list(all=True, filters={"name": f"{project.name}-notebook"}) == []


# -- bad input of overrides.yml and .ebextensions: refused before anything changes ---------------------------


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("text, where, what", [
    ("RDS_DB_NAME: production\nEB_HOSTNAME: 'x{{ EB_DNS }}'\n", "overrides.yml:2", "{{ EB_DNS }}, which no earlier"),
    ("RDS_DB_NAME: production\nEB_DNS: [oops\n", "overrides.yml:3", "not YAML"),
])
def test_bad_overrides_stop_with_one_line(engineless_project, text, where, what):
    (engineless_project.dir / "overrides.yml").write_text(text)
    for command in (("config",), ("up", "-d")):
        line = _error_line(engineless_project.run(*command, check=False))
        assert f"{engineless_project.dir / where}" in line and what in line
    assert not (engineless_project.dir / ".devstack").exists()  # nothing changed, nothing written


def test_an_ebextensions_file_that_is_not_yaml_is_a_warning(engineless_project):
    folder = engineless_project.dir / ".ebextensions"
    folder.mkdir()
    (folder / "01.config").write_text(textwrap.dedent("""\
        option_settings:
          aws:elasticbeanstalk:application:environment:
            GOOD: yes
        """))
    (folder / "02.config").write_text("option_settings:\n  - option_name: X\n\tvalue: 1\n")
    result = engineless_project.run("config")
    assert f"# warning: {folder / '02.config'}:3: not YAML" in result.stdout
    assert "GOOD=true" in result.stdout
