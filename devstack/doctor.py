"""`devstack doctor`: what stands between this machine and a working stack, one check at a time.

Each check is a small function from a `Doctor` (settings, the stack description,
and an engine connected on first use) to results: data, rendered by the view.
No check changes anything; engine access goes through engine.py like everywhere else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .docker.engine import ContainerInfo, Engine, where_docker_is
from .app_lint import ebextensions_inventory, lint_app
from .errors import ConflictError, DevstackError
from .balancer.lint import lint_balancer
from .proxy.lint import lint_stack
from .proxy.render import ProxyConfigStore, explain_nginx_error, render_proxy_config
from .reconcile.plan import duplicates_to_remove
from .reconcile.preflight import env_problems, holds, notebooks_problem, port_problems
from .settings import DEPLOYMENT_TOKEN_FILE, Settings
from .snapshot import CheckResult
from .spec import StackSpec, load_stack

PASS, INFO, WARN, FAIL = "pass", "info", "warn", "fail"
# The Docker CLI from 23.0 on builds with BuildKit only through the buildx plugin; older clients
# (Debian's 20.10) speak BuildKit themselves with DOCKER_BUILDKIT=1.
BUILDX_REQUIRED_FROM = 23
DEBIAN_DOCKER = "/usr/bin/docker"


class Doctor:
    """What the checks may look at. The engine is connected once, on first use; None if it does not answer."""

    def __init__(self, settings: Settings, connect: Callable[[], Engine] = Engine.connect,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run, uid: int | None = None):
        self.settings = settings
        self.uid = os.getuid() if uid is None else uid  # whom the checks speak to; injectable for tests run as root
        self.spec: StackSpec = load_stack(settings)
        self.run = run
        self._connect = connect
        self._engine: Engine | None = None
        self.engine_error = ""
        self._tried = False

    @property
    def engine(self) -> Engine | None:
        if not self._tried:
            self._tried = True
            try:
                self._engine = self._connect()
            except DevstackError as exc:
                self.engine_error = str(exc)
        return self._engine

    def container(self, service: str) -> ContainerInfo | None:
        """The service's container if it is running and ours."""
        if self.engine is None:
            return None
        found = self.engine.container(self.spec.service(service).container_name)
        if found is None or not found.running or not self.spec.owns(found):
            return None
        return found


def _no_engine(check: str) -> CheckResult:
    return CheckResult(check, INFO, "not checked: no Docker Engine answers", "see the Docker Engine check")


# -- the checks ------------------------------------------------------------------------------


def check_engine(doctor: Doctor) -> list[CheckResult]:
    engine = doctor.engine
    if engine is None:
        return [CheckResult("Docker Engine", FAIL, f"no Docker Engine answers at {where_docker_is()}",
                            "start dockerd (or Docker Desktop), or point DOCKER_HOST at a running engine")]
    version = engine.version()
    return [CheckResult("Docker Engine", PASS,
                        f"Docker Engine {version['version']} (API {version['api']}) at {where_docker_is()}")]


def check_buildkit(doctor: Doctor) -> list[CheckResult]:
    """Informational: devstack builds over the Engine API with the classic builder and needs no BuildKit."""
    clients = []
    for path in dict.fromkeys(p for p in (shutil.which("docker"), DEBIAN_DOCKER) if p and os.path.exists(p)):
        clients.append(_describe_client(doctor, path))
    if not clients:
        summary = "no docker client on PATH (devstack needs none)"
    else:
        summary = "; ".join(clients)
    return [CheckResult("BuildKit", INFO, f"devstack builds through the Engine API and needs no BuildKit. "
                                          f"For your own builds: {summary}",
                        "" if any("BuildKit with" in c for c in clients) else
                        "for BuildKit in your own builds, install Debian's docker.io (client 20.10: DOCKER_BUILDKIT=1) "
                        "or the docker-buildx-plugin")]


def _describe_client(doctor: Doctor, path: str) -> str:
    try:
        out = doctor.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return f"{path}: does not run"
    match = re.search(r"version (\d+)\.(\d+)\.?(\d*)", out)
    if match is None:
        return f"{path}: unknown version"
    version, major = f"{match[1]}.{match[2]}", int(match[1])
    try:
        buildx = doctor.run([path, "buildx", "version"], capture_output=True, text=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        buildx = False
    if buildx:
        return f"{path} {version}: BuildKit with the buildx plugin"
    if major < BUILDX_REQUIRED_FROM:
        return f"{path} {version}: BuildKit with DOCKER_BUILDKIT=1 (no buildx plugin)"
    return f"{path} {version}: no buildx plugin, so no BuildKit (its `docker build` needs it from 23.0 on)"


def check_ports(doctor: Doctor) -> list[CheckResult]:
    """The same check `up` makes before it starts anything (reconcile.preflight.port_problems)."""
    problems = {(p.port.address, p.port.port): p for p in port_problems(doctor.engine, doctor.spec)}
    results = []
    for port in doctor.spec.host_ports:
        name = f"port {port.address}:{port.port}"
        problem = problems.get((port.address, port.port))
        if problem is not None:
            results.append(CheckResult(name, FAIL, f"{port.purpose} ({port.setting}): in use"
                                       f"{problem.holder or ' by a process on this machine'}",
                                       f"stop what holds it, or {port.fix}"))
        elif holds(doctor.container(port.service), port, doctor.spec):
            results.append(CheckResult(name, PASS, f"{port.purpose} ({port.setting}): held by this project"))
        else:
            results.append(CheckResult(name, PASS, f"{port.purpose} ({port.setting}): free"))
    return results


def check_notebooks_dir(doctor: Doctor) -> list[CheckResult]:
    folder = doctor.spec.notebooks_dir
    name = "notebooks folder"
    if folder is None:
        return [CheckResult(name, INFO, "NOTEBOOKS_DIR is empty: the notebooks live in the container only")]
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), Path("/"))
        if os.access(parent, os.W_OK | os.X_OK):
            return [CheckResult(name, PASS, f"{folder} does not exist yet; `devstack up` creates it")]
        return [CheckResult(name, FAIL, f"{folder} does not exist and {parent} is not writable",
                            f"create {folder} yourself, or set NOTEBOOKS_DIR to a folder you can write")]
    if not folder.is_dir():
        return [CheckResult(name, FAIL, f"{folder} is not a folder", "set NOTEBOOKS_DIR to a folder")]
    results = []
    owner = folder.stat().st_uid
    problem = notebooks_problem(folder, doctor.uid)
    if problem is not None:  # the same check `up` makes: the owner, whom Jupyter runs as, cannot write
        results.append(CheckResult(name, FAIL, problem.message, problem.fix))
    elif os.access(folder, os.W_OK | os.X_OK):
        results.append(CheckResult(name, PASS, f"{folder} is writable"))
    else:  # Jupyter (its owner) can write it; you cannot
        results.append(CheckResult(name, WARN, f"{folder} is writable by its owner (uid {owner}), whom Jupyter "
                                   "runs as, but not by you", f"sudo chown -R {doctor.uid} {folder} if the "
                                   "notebooks should be yours"))
    me = doctor.uid
    if doctor.spec.app.own:
        results.append(CheckResult("notebook user", INFO, "the project's own image decides who writes there "
                                   "(production's runs as root, so the files are root's)"))
        return results
    if owner == 0 and me != 0:
        results.append(CheckResult("notebook user", WARN, f"{folder} belongs to root, so Jupyter runs as root "
                                   "and what it writes there is root's", f"sudo chown -R {me}:{os.getgid()} {folder}"))
    elif owner != me and me != 0:
        results.append(CheckResult("notebook user", WARN, f"{folder} belongs to uid {owner}, not you ({me}): "
                                   f"Jupyter writes as uid {owner}", f"chown -R {me} {folder} if you want the files"))
    else:
        results.append(CheckResult("notebook user", PASS, f"Jupyter writes as uid {owner}, the folder's owner"))
    notebook = doctor.container("notebook")
    if notebook is not None and doctor.engine is not None:
        _, out = doctor.engine.exec(notebook.id, ["printenv", "NB_UID"])
        if out.strip() and out.strip() != str(owner):
            results.append(CheckResult("notebook user", WARN, f"the running container writes as uid {out.strip()}, "
                                       f"but {folder} now belongs to uid {owner}", "run `devstack up` to recreate it"))
    return results


def check_network(doctor: Doctor) -> list[CheckResult]:
    """One network of the project's name: with two (two `up`s that raced, before devstack locked the
    project), creating a container fails with `network ... is ambiguous`."""
    layout = doctor.spec.network
    if layout.host_mode:
        return []
    if doctor.engine is None:
        return [_no_engine("network")]
    name = f"network {layout.name}"
    networks = doctor.engine.networks_named(layout.name)
    if not networks:
        return [CheckResult(name, PASS, "does not exist yet; `devstack up` creates it")]
    ids = ", ".join(n.id[:12] for n in networks)
    foreign = [n for n in networks if not doctor.spec.owns(n)]
    if foreign:
        return [CheckResult(name, FAIL, f"{len(foreign)} network(s) of that name ({', '.join(n.id[:12] for n in foreign)}) "
                            f"were not created by devstack for project {doctor.spec.project}",
                            "remove them yourself (`docker network rm ID`) or set DEVSTACK_PROJECT to another name")]
    if len(networks) == 1:
        return [CheckResult(name, PASS, f"one network of that name ({ids}), this project's")]
    try:
        extra = duplicates_to_remove(networks[0], tuple(networks[1:]))
    except ConflictError as exc:
        return [CheckResult(name, FAIL, str(exc), "`devstack down`, then `devstack up`")]
    return [CheckResult(name, FAIL, f"{len(networks)} networks have that name ({ids}): creating a container on it "
                        "fails as ambiguous", f"`devstack up` removes the empty duplicate(s) "
                        f"{', '.join(n.id[:12] for n in extra)} (or `docker network rm` them)")]


def check_environment(doctor: Doctor) -> list[CheckResult]:
    """The notebook container's environment properties, against Elastic Beanstalk's limits and the
    kernel's (the same rule `up` applies: envlimits)."""
    # The `.ebextensions` files EB would skip, as `up` warns of them.
    skipped = [CheckResult("environment", WARN, warning, "fix the file's YAML")
               for warning in doctor.spec.environment.warnings]
    problems = env_problems(doctor.spec)
    if not problems:
        count = len(doctor.spec.environment.properties)
        return [CheckResult("environment", PASS, f"{count} environment propert{'y' if count == 1 else 'ies'} for "
                            "the notebook container, within Elastic Beanstalk's limits"), *skipped]
    return [CheckResult("environment", FAIL if p.fatal else WARN, p.message,
                        "shorten it, or keep it in a file the notebook reads" if p.fatal else
                        "shorten it before deploying, or move it to a file") for p in problems] + skipped


def check_token(doctor: Doctor) -> list[CheckResult]:
    settings = doctor.settings
    name = "deployment token"
    if doctor.spec.app.own:
        return [CheckResult(name, PASS, "the project's own builds get any file holding it (its .deployment_token) "
                                        "empty: the token reaches no layer")]
    if not settings.sifu_repo:
        return [CheckResult(name, PASS, "not needed: SIFU_REPO is not set, the Sifu stand-in is used")]
    token_file = settings.project_dir / DEPLOYMENT_TOKEN_FILE
    if not settings.deployment_token.get_secret_value():
        return [CheckResult(name, WARN, f"SIFU_REPO is set but there is no DEPLOYMENT_TOKEN and no "
                            f"{DEPLOYMENT_TOKEN_FILE}: a private repository cannot be fetched",
                            f"set DEPLOYMENT_TOKEN in .env, or write the token to {token_file} (chmod 600)")]
    source = settings.sources.get("DEPLOYMENT_TOKEN", "")
    if source != str(token_file):
        return [CheckResult(name, PASS, f"DEPLOYMENT_TOKEN is set ({source})")]
    results = [CheckResult(name, PASS, f"{token_file} holds a token (as EB's pre-deploy hook writes it)")]
    if token_file.stat().st_mode & 0o077:
        results.append(CheckResult(name, WARN, f"{token_file} is readable by other users", f"chmod 600 {token_file}"))
    return results


def check_docker_envs(doctor: Doctor) -> list[CheckResult]:
    request = doctor.spec.docker_envs
    if request is None:
        return []
    name = "docker_envs"
    results = [CheckResult(name, PASS, f"provided read-only at {request.target} (asked by {request.reason}), "
                                       "from the resolved settings without DEPLOYMENT_TOKEN and JUPYTER_TOKEN")]
    in_context = doctor.spec.image("notebook").context / "docker_envs"
    if doctor.spec.app.own and request.dockerfile_copy:
        results.append(CheckResult(name, PASS, "devstack places it in the final build's context, as production's "
                                               "pre-deploy hook writes it into the deploy folder"))
    elif request.dockerfile_copy and not in_context.exists():
        results.append(CheckResult(name, FAIL, f"the notebook Dockerfile COPYs docker_envs at build time and "
                                   f"{in_context} does not exist: the build fails at that step",
                                   "drop the COPY (devstack mounts the file at run time), or keep an empty "
                                   "docker_envs there; real values in it would land in an image layer"))
    elif request.dockerfile_copy and in_context.stat().st_size > 0:
        results.append(CheckResult(name, WARN, f"{in_context} is copied into an image layer with its values",
                                   "empty it: devstack mounts the real file at run time"))
    return results


def check_database(doctor: Doctor) -> list[CheckResult]:
    """The coupled RDS: which database the notebook gets, and whether it accepts the project's login."""
    from .reconcile.database import accepts_connections, database_container
    from .spec.rds import HOSTNAME_KEY

    name, spec = "database (RDS)", doctor.spec
    database = spec.database
    if database is None:
        hostname = spec.environment.get(HOSTNAME_KEY).strip()
        if not hostname:
            return []
        return [CheckResult(name, INFO, f"{HOSTNAME_KEY}={hostname} ({spec.environment.source(HOSTNAME_KEY)}): "
                                        "devstack starts no database; the notebook connects to that one")]
    what = f"{database.describe()} for {database.reason} ({database.image}, volume {database.volume})"
    if doctor.engine is None:
        return [_no_engine(name)]
    container = database_container(doctor.engine, spec)
    if container is None or not container.running:
        state = "not created yet" if container is None else container.status
        return [CheckResult(name, INFO, f"{what}: {database.container_name} is {state}",
                            "`devstack up` starts it and waits until it accepts connections")]
    if accepts_connections(doctor.engine, database, container):
        return [CheckResult(name, PASS, f"{what}: accepts connections")]
    return [CheckResult(name, FAIL, f"{what}: {database.container_name} runs but refuses the login",
                        "see `devstack logs rds`; if RDS_USERNAME or RDS_PASSWORD changed since its data was "
                        "created, its volume keeps the old ones: `devstack down --volumes` starts it afresh "
                        "(deleting its data)")]


def check_proxy_lint(doctor: Doctor) -> list[CheckResult]:
    findings = lint_stack(doctor.spec, doctor.settings) + lint_balancer(doctor.spec)
    flavor = CheckResult("proxy flavour", INFO, doctor.spec.proxy.choice.describe().removeprefix("proxy: "))
    proxy_findings = [f for f in findings if f.code != "frame-site" and not f.code.startswith("lb-")]
    results = [CheckResult("frame & cookies" if f.code == "frame-site" else
                           "load balancer lint" if f.code.startswith("lb-") else "proxy lint",
                           FAIL if f.severity == "error" else WARN,
                           f"{f.where() + ': ' if f.where() else ''}{f.message}", f.fix) for f in findings]
    if not proxy_findings:
        layout = doctor.spec.proxy.layout
        where = "devstack's own files" if layout == "bundled" else f"the project's own EB files ({layout})"
        results.insert(0, CheckResult("proxy lint", PASS, f"{where}: no findings"))
    if doctor.spec.proxy.project_files.any:
        ip_note = ("the upstreams use the notebook's IP on the project network (the seed's hook reads "
                   ".NetworkSettings.IPAddress, which is empty there)" if not doctor.spec.network.host_mode
                   else "the upstreams use 127.0.0.1 (host network)")
        results.append(CheckResult("proxy upstreams", INFO, ip_note))
    return [flavor, *results]


def check_app(doctor: Doctor) -> list[CheckResult]:
    """The project's own app files: their traps, and each .ebextensions entry with what devstack does."""
    spec = doctor.spec
    if spec.app.root is None:
        return []
    results = [CheckResult("app", INFO, spec.app.reason.removeprefix("images: "))]
    results += [CheckResult("app lint", FAIL if f.severity == "error" else WARN,
                            f"{f.where()}: {f.message}", f.fix) for f in lint_app(spec)]
    results += [CheckResult(".ebextensions", INFO, entry.describe()) for entry in ebextensions_inventory(spec.app.root)]
    return results


def check_proxy_loads(doctor: Doctor) -> list[CheckResult]:
    """The real `nginx -t` on the configuration the running sidecar serves."""
    if doctor.engine is None:
        return [_no_engine("nginx -t")]
    proxy = doctor.container("proxy")
    store = ProxyConfigStore(doctor.spec.proxy.config_dir)
    generation = store.current_generation()
    if proxy is None or generation is None:
        return [CheckResult("nginx -t", INFO, "the proxy is not running: `devstack up` runs nginx -t before "
                                              "loading any configuration")]
    code, output = doctor.engine.exec(proxy.id, ["nginx", "-t", "-c", store.container_path(generation)])
    if code == 0:
        return [CheckResult("nginx -t", PASS, f"the sidecar accepts {generation}")]
    rendered = render_proxy_config(doctor.spec.proxy, "0.0.0.0")  # for its map of files to their sources
    message = explain_nginx_error(output, generation, rendered, doctor.spec.proxy.flavor.conf_dir)
    return [CheckResult("nginx -t", FAIL, message,
                        "fix the file named, then `devstack up`")]


_FETCH = ("import sys, urllib.request, urllib.error\n"
          "try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)\n"
          "except urllib.error.HTTPError as e:\n    print(e.code)\n"
          "except Exception as e:\n    print('ERR', e)\n    sys.exit(1)\n")


def check_edx(doctor: Doctor) -> list[CheckResult]:
    """Open edX answering from inside the notebook container, the way the notebook's processes reach it."""
    name = "Open edX from the notebook"
    if doctor.engine is None:
        return [_no_engine(name)]
    notebook = doctor.container("notebook")
    url = doctor.spec.edx_internal_url
    mode = doctor.spec.network.mode
    if notebook is None:
        return [CheckResult(name, INFO, f"the notebook container is not running; it would reach edX at {url}",
                            "run `devstack up -d`, then `devstack doctor` again")]
    code, output = doctor.engine.exec(notebook.id, ["python3", "-c", _FETCH, url])
    answer = output.strip().splitlines()[-1] if output.strip() else ""
    if code == 0:
        return [CheckResult(name, PASS, f"{url} answered HTTP {answer} ({mode} network)")]
    if mode == "bridge":
        fix = (f"start Open edX listening on 0.0.0.0:{doctor.settings.edx_port} (a server on 127.0.0.1 is not "
               "reachable from a bridge network), or set NETWORK_MODE=host")
    else:
        fix = f"start Open edX on port {doctor.settings.edx_port} of this machine"
    return [CheckResult(name, WARN, f"{url} did not answer ({mode} network): {answer.removeprefix('ERR ')}", fix)]


CHECKS: tuple[Callable[[Doctor], list[CheckResult]], ...] = (
    check_engine, check_buildkit, check_ports, check_network, check_notebooks_dir, check_environment, check_token,
    check_docker_envs, check_database, check_proxy_lint, check_app, check_proxy_loads, check_edx,
)


def run_checks(doctor: Doctor, checks=CHECKS) -> list[CheckResult]:
    """Every check, in order; a check that breaks becomes a failed row, never a crash."""
    results: list[CheckResult] = []
    for check in checks:
        try:
            results += check(doctor)
        except DevstackError as exc:
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(CheckResult(name, FAIL, str(exc), "see the message"))
    return results


def failed(results: list[CheckResult]) -> bool:
    return any(r.status == FAIL for r in results)
