"""The coupled RDS at run time: whether it accepts connections, and waiting until it does.

Ready means what the notebook needs: a login as RDS_USERNAME over TCP, run inside the database's
container (spec/rds.py's READY_SCRIPT), so no port is published for it and no password is sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..docker.engine import ContainerInfo, Engine
from ..errors import EngineError, NotReady
from ..events import Activity, Event, Info, Notify, Ready, Warned
from ..redact import Redactor
from ..spec import DatabaseSpec, StackSpec
from ..spec.rds import HOSTNAME_KEY, IMAGE_SETTING

POLL_SECONDS = 0.5
LOG_LINES = 20


def environment_notes(spec: StackSpec) -> list[Event]:
    """What `up` says about EB's environment before anything changes: the `.ebextensions` files EB
    would skip, a property the project sets that devstack's own setting replaces, and the database the
    notebook gets."""
    notes: list[Event] = [Warned(warning, "notebook") for warning in spec.environment.warnings]
    given = dict(spec.service("notebook").environment)
    for key, prop in spec.environment.shadowed.items():
        if key in given and given[key] != prop.value:
            # EDX_HOSTNAME: production's names its LMS, devstack's the local Open edX.
            notes.append(Info(f"{prop.source}: {key} is {prop.value!r} there; the container gets devstack's {key}, "
                              f"{given[key]!r} (set {key} in .env to choose it)", "notebook"))
    database = spec.database
    if database is not None:
        password = "generated once, kept in .devstack/" if database.password_generated else "RDS_PASSWORD"
        notes.append(Info(f"RDS: {database.reason} asks for the coupled database: {IMAGE_SETTING}={database.image} "
                          f"runs as {database.container_name} ({database.describe()}, password: {password}), "
                          f"data in volume {database.volume}; the notebook gets {HOSTNAME_KEY}={database.hostname}",
                          database.service))
    elif spec.environment.get(HOSTNAME_KEY).strip():
        notes.append(Info(f"RDS: {HOSTNAME_KEY}={spec.environment.get(HOSTNAME_KEY)} "
                          f"({spec.environment.source(HOSTNAME_KEY)}): devstack starts no database, the notebook "
                          "uses that one", "notebook"))
    return notes


def database_container(engine: Engine, spec: StackSpec) -> ContainerInfo | None:
    """The database's container if it exists and is this project's."""
    if spec.database is None:
        return None
    found = engine.container(spec.database.container_name)
    return found if spec.owns(found) else None


def accepts_connections(engine: Engine, database: DatabaseSpec, container: ContainerInfo | None) -> bool:
    if container is None or not container.running:
        return False
    try:
        code, _ = engine.exec(container.id, list(database.ready_command))
    except EngineError:
        return False  # it stopped between the inspect and the exec
    return code == 0


def wait_until_accepting(engine: Engine, spec: StackSpec, notify: Notify, redact: Redactor) -> None:
    """Poll until the database accepts the project's login; a container that stops, or its
    RDS_READY_TIMEOUT, is a NotReady with its last log lines (a first start initialises the data:
    seconds to a minute)."""
    database = spec.database
    assert database is not None
    timeout = database.ready_timeout
    notify(Activity(f"waiting for the database {database.describe()} to accept connections", database.service))
    started = time.monotonic()
    deadline = started + timeout
    while True:
        container = database_container(engine, spec)
        if container is None or not container.running:
            state = "missing" if container is None else container.status
            raise NotReady(f"the database container {database.container_name} ({database.image}, RDS_IMAGE) is "
                           f"{state} before it accepted connections: its last log lines are below; fix what they "
                           "say, or set RDS_IMAGE to a mysql or mariadb image", logs=_logs(engine, container, redact))
        if accepts_connections(engine, database, container):
            notify(Ready(f"database {database.describe()} accepts connections "
                         f"({time.monotonic() - started:.1f} s)", database.service))
            return
        if time.monotonic() >= deadline:
            raise NotReady(f"the database {database.describe()} ({database.image}) did not accept connections "
                           f"within {timeout:.0f} s (RDS_READY_TIMEOUT): its last log lines are below; if "
                           "RDS_USERNAME or RDS_PASSWORD changed since its data was created, its volume "
                           f"{database.volume} keeps the old ones (`devstack down --volumes` starts it afresh, "
                           "deleting its data)", logs=_logs(engine, container, redact))
        time.sleep(POLL_SECONDS)


def _logs(engine: Engine, container: ContainerInfo | None, redact: Redactor) -> list[str]:
    if container is None:
        return []
    try:
        return [f"rds | {redact(line)}" for line in engine.log_lines(container.id, tail=LOG_LINES) if line.strip()]
    except EngineError:
        return []


# Run in the database's container as root. Passwords travel in the exec's environment, never on a
# command line: root's in MYSQL_PWD (which the client reads), the statement in DEVSTACK_STATEMENT.
_RUN_STATEMENT = 'client=$(command -v mariadb || command -v mysql) || exit 127; exec "$client" -uroot -e "$DEVSTACK_STATEMENT"'


def sql_string(text: str) -> str:
    """`text` as a MySQL string literal (backslash escapes on, MySQL's default): a password may hold quotes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def set_password_statement(user: str, password: str) -> str:
    """The project's user takes `password`, on every host it is defined for."""
    accounts = ", ".join(f"{sql_string(user)}@{sql_string(host)} IDENTIFIED BY {sql_string(password)}"
                         for host in ("%", "localhost"))
    return f"ALTER USER IF EXISTS {accounts}"


@contextmanager
def build_password_in_effect(engine: Engine, spec: StackSpec, notify: Notify) -> Iterator[None]:
    """While a build that COPYs docker_envs runs, the database takes the builds' password (the one that
    copy holds, and its layer keeps), so that a migration at build time logs in; then the real one
    again, whatever the build did. Connections the notebook opens meanwhile are refused: its image is
    being replaced."""
    database = spec.database
    container = database_container(engine, spec) if database is not None else None
    if database is None or container is None or not container.running:
        yield
        return
    real_root = database.root_password
    _set_password(engine, container, database.user, database.build_password, real_root)
    notify(Info(f"database: {database.user} takes the builds' password while the final image builds "
                "(the real one is in no layer)", database.service))
    try:
        yield
    finally:
        # Root's own password is the build's now when root is the project's user.
        current_root = database.build_password if database.user == "root" else real_root
        _set_password(engine, container, database.user, database.password, current_root)


def _set_password(engine: Engine, container: ContainerInfo, user: str, password: str, root_password: str) -> None:
    code, output = engine.exec(container.id, ["sh", "-c", _RUN_STATEMENT], environment={
        "MYSQL_PWD": root_password, "DEVSTACK_STATEMENT": set_password_statement(user, password)})
    if code != 0:
        raise EngineError(f"could not set {user}'s password in the database container {container.name} "
                          f"(exit {code}): {' '.join(output.split()[:20])}")
