"""The coupled RDS: what `eb create --database` gives an environment, played by a local MySQL.

EB adds RDS_HOSTNAME (with RDS_PORT, RDS_DB_NAME, RDS_USERNAME, RDS_PASSWORD) to the environment
of an environment created with a database. A project whose properties name RDS_* variables but no
RDS_HOSTNAME expects that database: devstack runs one, from RDS_IMAGE, and gives the notebook the
five variables as EB would. With RDS_HOSTNAME set, the project brings its own database: nothing runs.

Pure: `database_request` reads the resolved properties; describe.py turns it into the service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from .eb_env import EbEnvironment

HOSTNAME_KEY = "RDS_HOSTNAME"
RDS_KEYS = ("RDS_DB_NAME", "RDS_USERNAME", "RDS_PASSWORD", "RDS_PORT")
# What EB's console proposes when a key is left out.
DEFAULT_DATABASE = "ebdb"
DEFAULT_USER = "ebroot"
DEFAULT_PORT = 3306
DATA_DIR = "/var/lib/mysql"
SERVICE = "rds"
IMAGE_SETTING = "RDS_IMAGE"
# MySQL's limits: names of 64 characters, users of 32; kept to what needs no quoting anywhere.
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
_USER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

# Inside the database's container, once it runs: a login over TCP as the project's user succeeds.
# The official images' first start runs a server without networking while it initialises the data,
# so a socket ping would answer too early; TCP answers only once the real server runs. The password
# comes from the container's own environment (never from the command line devstack sends).
READY_SCRIPT = ('export MYSQL_PWD="${MYSQL_PASSWORD:-$MYSQL_ROOT_PASSWORD}"; '
                'client=$(command -v mariadb || command -v mysql) || { echo "no mysql client in the image"; exit 127; }; '
                'exec "$client" --protocol=TCP -h 127.0.0.1 -P "$0" -u "$1" -e "SELECT 1" "$2"')


@dataclass(frozen=True)
class DatabaseRequest:
    """What the properties ask of the coupled database."""

    database: str
    user: str
    port: int
    password: str  # "" when none is given: devstack generates one, once
    reason: str  # the property that asked, and where it was written

    @property
    def as_root(self) -> bool:
        """RDS_USERNAME=root: the images refuse MYSQL_USER=root; root's own password is the one."""
        return self.user == "root"


def database_request(environment: EbEnvironment) -> DatabaseRequest | None:
    """The database the properties ask devstack to run, or None (no RDS_* key, or RDS_HOSTNAME set).
    A value MySQL or the images cannot take stops with one line naming the key and where it is written."""
    if environment.get(HOSTNAME_KEY).strip():
        return None
    named = [key for key in RDS_KEYS if key in environment.properties]
    if not named:
        return None

    def checked(key: str, default: str, pattern: re.Pattern[str], what: str) -> str:
        value = environment.get(key).strip() or default
        if not pattern.match(value):
            raise ConfigError(f"{environment.source(key)}: {key}={value!r} is not {what}: use letters, digits "
                              "and '_' (the database devstack runs for RDS_* takes it as a name)")
        return value

    port_text = environment.get("RDS_PORT").strip() or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{environment.source('RDS_PORT')}: RDS_PORT={port_text!r} is not a port: use an "
                          f"integer from 1 to 65535 (RDS's MySQL default is {DEFAULT_PORT})")
    return DatabaseRequest(
        database=checked("RDS_DB_NAME", DEFAULT_DATABASE, _DATABASE_NAME, "a database name"),
        user=checked("RDS_USERNAME", DEFAULT_USER, _USER_NAME, "a MySQL user name"),
        port=int(port_text),
        password=environment.get("RDS_PASSWORD"),
        reason=f"{named[0]} from {environment.source(named[0])}",
    )


def image_environment(database: str, user: str, password: str, root_password: str) -> dict[str, str]:
    """The official images' contract: root's password, the database, and the user unless it is root
    (the images refuse MYSQL_USER=root: root's own password is then the user's)."""
    if user == "root":
        return {"MYSQL_ROOT_PASSWORD": password, "MYSQL_DATABASE": database}
    return {"MYSQL_ROOT_PASSWORD": root_password, "MYSQL_DATABASE": database, "MYSQL_USER": user,
            "MYSQL_PASSWORD": password}


def server_options(port: int, loopback_only: bool) -> tuple[str, ...]:
    """mysqld's options, which both images take as the container's command: the port the notebook uses;
    on the host's network, loopback only (the host's other interfaces are not the project's network).
    `--loose-` lets MariaDB ignore MySQL's X protocol option, which it does not have."""
    options = [f"--port={port}", "--loose-mysqlx=OFF"]
    if loopback_only:
        options.append("--bind-address=127.0.0.1")
    return tuple(options)


def ready_command(request: DatabaseRequest) -> tuple[str, ...]:
    return ("sh", "-c", READY_SCRIPT, str(request.port), request.user, request.database)


def notebook_variables(hostname: str, port: int, database: str, user: str, password: str) -> dict[str, str]:
    """The five variables EB gives an environment with a coupled database."""
    return {"RDS_HOSTNAME": hostname, "RDS_PORT": str(port), "RDS_DB_NAME": database, "RDS_USERNAME": user,
            "RDS_PASSWORD": password}
