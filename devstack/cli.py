"""The command line: parse, call the core, render. The one place errors become exit codes."""

from __future__ import annotations

import gc
import json
import re
import os
import sys
from functools import cache
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import __version__
from .errors import BuildError, ConfigError, DevstackError, NotReady
from .lock import DEFAULT_WAIT_SECONDS
from .redact import MASK, Redactor
from .settings import Settings, is_number, load_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Run the Elastic Beanstalk Jupyter deployment (Sifu + Jupyter behind EB's nginx) on this machine.",
)


@cache
def console() -> Console:
    """stdout, made on first use (importing the CLI reads neither the terminal nor the environment)."""
    return Console(highlight=False, soft_wrap=True, width=_piped_width())


@cache
def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, width=_piped_width())


def _piped_width() -> int | None:
    """Piped into a file or another program, rich would assume 80 columns and cut the status table's
    cells; without a terminal (and no COLUMNS), give tables room instead. They only grow as wide as needed."""
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200


# Every secret devstack learns is added here, so that no message it prints carries one.
redact = Redactor()

SERVICES = ("notebook", "proxy", "rds")
# With INSTANCES > 1 each instance's services are numbered (notebook-2, proxy-2) and the load balancer is lb.
_SERVICE_NAME = re.compile(r"^(notebook|proxy)(-[1-9])?$|^lb$")


def _check_service(service: str) -> None:
    if service not in SERVICES and not _SERVICE_NAME.match(service):
        raise DevstackError(f"unknown service {service!r}: choose one of {', '.join(SERVICES)} (with INSTANCES > 1 "
                            "also notebook-K, proxy-K and lb)")


def _checked_services(services: list[str] | None) -> tuple[str, ...]:
    """The services a command names (none: every one), each a name the stack could have."""
    for service in services or ():
        _check_service(service)
    return tuple(services or ())


class Session:
    """What the global options chose; settings and the stack are made on first use."""

    def __init__(self, project_dir: Path, flags: dict[str, str], lock_wait: float = DEFAULT_WAIT_SECONDS):
        self.project_dir = project_dir
        self.flags = flags
        self.lock_wait = lock_wait
        self.publish: list[str] = []  # `up -p HOST:CONTAINER`, added to EXTRA_PORTS
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self.load_settings()
        return self._settings

    def load_settings(self) -> Settings:
        """Resolve the settings now (a watcher does it again when `.env` is saved)."""
        settings = load_settings(self.project_dir, self.flags, publish=self.publish)
        redact.add(*settings.secret_values())
        return settings

    def stack(self):  # noqa: ANN201 - reconcile.Stack, imported lazily
        from .reconcile import Stack

        return Stack(self.settings, notify=self.reporter(), redactor=redact, lock_wait=self.lock_wait)

    def reporter(self):  # noqa: ANN201 - ui.reporter.Reporter, imported lazily
        from .ui.reporter import Reporter

        return Reporter(console, redact)


def _session(ctx: typer.Context) -> Session:
    return ctx.obj


def _parse_set(values: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DevstackError(f"--set {item!r}: write it as KEY=VALUE, for example --set SIFU_PORT=4334")
        flags[key.strip()] = value
    return flags


def _print_version(value: bool) -> None:
    """Eager: `devstack --version` needs no command (Click would otherwise ask for one first)."""
    if value:
        console().print(f"devstack {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    project_dir: Path = typer.Option(Path("."), "--project-dir", help="The project folder (holds .env, notebooks/)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a setting: KEY=VALUE (repeatable)."),
    project_name: Optional[str] = typer.Option(None, "--project-name", help="Same as --set DEVSTACK_PROJECT=NAME."),
    network: Optional[str] = typer.Option(None, "--network", help="bridge or host: same as --set NETWORK_MODE=..."),
    lock_wait: float = typer.Option(DEFAULT_WAIT_SECONDS, "--lock-wait", metavar="SECONDS", help=(
        "How long a command that changes the stack waits for another devstack process changing it "
        "(it says which) before it gives up.")),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print devstack's version and exit."),
) -> None:
    flags = _parse_set(set_)
    if project_name is not None:
        flags["DEVSTACK_PROJECT"] = project_name
    if network is not None:
        flags["NETWORK_MODE"] = network
    if not project_dir.is_dir():
        raise DevstackError(f"--project-dir {project_dir}: no such folder")
    ctx.obj = Session(project_dir, flags, lock_wait)


@app.command()
def up(
    ctx: typer.Context,
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once the stack is ready."),
    timeout: float = typer.Option(180.0, "--timeout", help="Seconds to wait for the stack to answer."),
    publish: list[str] = typer.Option([], "--publish", "-p", metavar="HOST:CONTAINER", help=(
        "Publish one more port of the notebook container on BIND_ADDRESS (repeatable; adds to EXTRA_PORTS).")),
    no_notebooks_mount: bool = typer.Option(False, "--no-notebooks-mount", help=(
        "Mount no NOTEBOOKS_DIR: notebooks live only in the container and are lost with it.")),
    remove: bool = typer.Option(False, "--rm", help=(
        "Remove the containers and network when the foreground run ends (Ctrl-C, SIGTERM, SIGHUP, or the stack "
        "failing to come up); images and the notebooks folder are kept.")),
    instances: Optional[int] = typer.Option(None, "--instances", metavar="N", help=(
        "Run N instances behind a load balancer (as --set INSTANCES=N).")),
) -> None:
    """Build what is missing or out of date, start the stack, wait until it answers through the proxy."""
    if remove and detach:
        raise DevstackError("--rm removes the stack when the foreground run ends: drop -d/--detach, or --rm")
    session = _session(ctx)
    if no_notebooks_mount:
        session.flags["NOTEBOOKS_DIR"] = ""
    if instances is not None:
        session.flags["INSTANCES"] = str(instances)
    session.publish = list(publish)
    from .foreground import ForegroundRun

    run = ForegroundRun(session.stack(), remove=remove)
    if not run.come_up(timeout, watch=not detach):
        err_console().print("interrupted")
        raise typer.Exit(130)
    urls = run.stack.spec.urls()
    console().print(f"open {urls['login']} (Sifu logs you into Jupyter at {urls['jupyter']})", style="bold")
    if "http" in urls:
        console().print(f"port 80's listener (HTTP_PORT): {urls['http']}")
    if detach:
        return
    run.watch_until_ended(console(), reload_settings=session.load_settings)


@app.command()
def watch(ctx: typer.Context) -> None:
    """Watch and show a stack started with `up -d`: apply every saved change. Ctrl-C stops watching only."""
    from .foreground import watch_until_stopped
    from .watch.files import start_watching

    session = _session(ctx)
    stack = session.stack()
    missing = stack.running.not_running()
    if missing:
        raise DevstackError(f"{', '.join(missing)} not running: start the stack with `devstack up -d`, then watch it")
    watch_until_stopped(stack, start_watching(stack.settings, stack.spec), console(),
                        reload_settings=session.load_settings)


@app.command()
def down(
    ctx: typer.Context,
    rmi: bool = typer.Option(False, "--rmi", help="Also remove the images devstack built for this project."),
    volumes: bool = typer.Option(False, "--volumes", "-v", help=(
        "Also remove the project's volumes: the coupled database's data is deleted.")),
) -> None:
    """Remove the project's containers and network (the notebooks folder and the database's volume are kept)."""
    session = _session(ctx)
    try:
        stack = session.stack()
    except ConfigError as exc:
        if rmi:
            raise ConfigError(f"{exc} (`down --rmi` needs valid settings to know the image tags; plain "
                              "`devstack down` works without them)") from None
        down_by_label(session, exc)
        return
    stack.down(remove_images=rmi, remove_volumes=volumes)


def down_by_label(session: Session, invalid: ConfigError) -> None:
    """`down` while the settings are invalid: the stack is found by its label, which needs only the
    project's name."""
    from .docker.engine import Engine
    from .events import Info, Warned
    from .lock import project_lock, waiting_line
    from .reconcile.stack import remove_project
    from .settings import project_name_only, state_dir_of

    project = project_name_only(session.project_dir, session.flags)
    notify = session.reporter()
    notify(Warned(redact(f"the settings are invalid ({invalid}); removing project {project}'s stack by its "
                         "label all the same")))
    waiting = lambda holder: notify(Info(waiting_line(holder)))  # noqa: E731
    with project_lock(state_dir_of(session.project_dir)).held(waiting, session.lock_wait):
        remove_project(Engine.connect(), project, notify)


@app.command()
def stop(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="notebook-2, proxy-1, lb ... (default: every container)."),
) -> None:
    """Stop containers of the stack and keep them: with several instances, take one down (`stop notebook-2`)
    and watch the load balancer route around it."""
    _session(ctx).stack().stop(_checked_services(services))


@app.command()
def start(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="notebook-2, proxy-1, lb ... (default: every stopped one)."),
) -> None:
    """Start stopped containers again (`start notebook-2` brings an instance back once its health checks pass);
    its proxy is pointed at the notebook's new address."""
    _session(ctx).stack().start(_checked_services(services))


@app.command()
def build(
    ctx: typer.Context,
    images: list[str] = typer.Argument(None, help="base, notebook, or both (default)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the build cache."),
) -> None:
    """Build the images now, base before final."""
    wanted = set(images or ("base", "notebook"))
    unknown = wanted - {"base", "notebook"}
    if unknown:
        raise DevstackError(f"unknown image {', '.join(sorted(unknown))}: choose base or notebook")
    _session(ctx).stack().build(wanted, no_cache=no_cache)


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The stack's containers, images and probes through the proxy."""
    from .snapshot import LOG_LINES, load_live_facts, with_live_facts
    from .ui.view import render_status, status_to_json

    stack = _session(ctx).stack()
    # What a running `up` or `watch` is doing (build step, last error, last change) comes from it.
    snapshot = with_live_facts(stack.running.status(log_lines=LOG_LINES), load_live_facts(stack.spec.state_dir))
    if as_json:
        console().print_json(redact(json.dumps(status_to_json(snapshot))))
    else:
        console().print(render_status(snapshot))


@app.command()
def logs(
    ctx: typer.Context,
    service: Optional[str] = typer.Argument(None, help="notebook, proxy or rds; with INSTANCES > 1 also notebook-K, proxy-K or lb (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: str = typer.Option("all", "--tail", "-n", help="Lines from the end of each log, or 'all'."),
) -> None:
    """Print the containers' logs, secrets redacted."""
    if service is not None:
        _check_service(service)
    if tail != "all" and not is_number(tail):
        raise DevstackError(f"--tail {tail!r}: give a number of lines or 'all'")
    lines = _session(ctx).stack().running.stream_logs(service, int(tail) if is_number(tail) else "all", follow)
    try:
        for line in lines:
            console().out(line, highlight=False)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


_USER_HELP = "Run as this user (name or uid[:gid]). Default: the notebook user (who owns the notebooks folder) " \
             "in the notebook container, root in the proxy."


@app.command()
def shell(
    ctx: typer.Context,
    service: str = typer.Argument("notebook", help="notebook, proxy or rds; with INSTANCES > 1 also notebook-K, proxy-K or lb."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help=_USER_HELP),
) -> None:
    """An interactive shell in a service's container (bash when it has it, sh otherwise)."""
    _check_service(service)
    raise typer.Exit(_session(ctx).stack().running.shell(service, user))


def split_exec_args(args: list[str]) -> tuple[str, list[str]]:
    """`[SERVICE] [--] CMD...` as (service, command). Click keeps a `--` that follows the service."""
    service, command = "notebook", list(args)
    if command and (command[0] in SERVICES or _SERVICE_NAME.match(command[0])):
        service, command = command[0], command[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise DevstackError(f"no command to run: write `devstack exec {service} -- CMD...`")
    return service, command


@app.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
def exec_(
    ctx: typer.Context,
    args: list[str] = typer.Argument(..., metavar="CMD", show_default=False, help=(
        "[SERVICE] [--] CMD...: notebook (default) or proxy, then the command and its arguments.")),
    user: Optional[str] = typer.Option(None, "--user", "-u", help=_USER_HELP),
) -> None:
    """Run a command in a service's container without a terminal: its output streamed as it comes,
    its exit code passed through (for scripts). Options go before the service."""
    service, command = split_exec_args(args)
    chunks, exit_code = _session(ctx).stack().running.exec_stream(service, command, user)
    for out, err in chunks:
        for data, stream in ((out, sys.stdout.buffer), (err, sys.stderr.buffer)):
            if data:
                stream.write(data)
                stream.flush()
    raise typer.Exit(exit_code())


@app.command()
def config(
    ctx: typer.Context,
    output: str = typer.Option("text", "--format", help="text, json, or compose (a docker-compose file)."),
    write: Optional[Path] = typer.Option(None, "--output", help="With --format compose: write docker-compose.yml "
                                         "and the folders it mounts (proxy/, or proxy-K/ and lb/) into this folder."),
) -> None:
    """The resolved settings (secrets redacted) and the rendered nginx files. Needs no Docker daemon."""
    from .proxy.render import render_proxy_config
    from .spec import load_stack

    settings = _session(ctx).settings
    spec = load_stack(settings)
    redact.add(*spec.secret_values())
    if output == "compose":
        from .compose import compose_yaml, write_compose, write_compose_env_files

        if write is not None:
            for path in write_compose(spec, write):
                console().out(str(path), highlight=False)
        else:
            text = compose_yaml(spec, settings.project_dir)
            # The file names env files for its secrets: they exist once it is printed.
            for path in write_compose_env_files(spec):
                err_console().print(f"the secrets the compose file reads: {path} (owner-only)",
                                    markup=False, highlight=False)
            console().out(redact(text), highlight=False, end="")
        return
    rendered = render_proxy_config(spec.proxy, "<notebook-ip>")
    shown = settings.redacted()
    if output == "json":
        choice = spec.proxy.choice
        payload = {"settings": shown, "sources": settings.sources, "proxy": rendered.files,
                   "proxy_flavor": {"flavor": choice.flavor.name, "image": choice.image, "reason": choice.reason},
                   "images": {"source": spec.app.source, "reason": spec.app.reason,
                              "build": [{"name": i.name, "tag": i.tag, "context": str(i.context)} for i in spec.images]},
                   "environment": {key: {"value": value, "source": source}
                                   for key, (value, source) in _environment_shown(spec).items()},
                   "warnings": list(spec.environment.warnings),
                   "database": _database_shown(spec)}
        console().print_json(redact(json.dumps(payload)))
        return
    if output != "text":
        raise DevstackError(f"--format {output!r}: choose text, json or compose")
    console().rule("settings")
    for key, value in shown.items():
        console().out(redact(f"{key}={value}    # {settings.sources.get(key, 'default')}"), highlight=False)
    console().rule("stack")
    console().out(spec.app.reason, highlight=False)
    console().rule("environment (the notebook's, as EB gives it)")
    for warning in spec.environment.warnings:
        console().out(redact(f"# warning: {warning}"), highlight=False)
    for key, (value, source) in _environment_shown(spec).items():
        console().out(redact(f"{key}={value}    # {source}"), highlight=False)
    console().rule("proxy")
    console().out(spec.proxy.choice.describe(), highlight=False)
    for rel, content in rendered.files.items():
        console().rule(f"nginx: {rel}")
        console().out(redact(content.rstrip("\n")), highlight=False)


def _environment_shown(spec) -> dict[str, tuple[str, str]]:  # noqa: ANN001 - a StackSpec
    """EB's environment properties and the RDS_* variables devstack adds, secrets masked, by key."""
    from .spec.eb_env import is_secret_name

    shown = {key: (MASK if is_secret_name(key) and prop.value else prop.value, prop.source)
             for key, prop in spec.environment.properties.items()}
    database = spec.database
    if database is not None:
        notebook = dict(spec.service("notebook").environment)
        for key in ("RDS_HOSTNAME", "RDS_PORT", "RDS_DB_NAME", "RDS_USERNAME", "RDS_PASSWORD"):
            value = MASK if key == "RDS_PASSWORD" else notebook[key]
            if key not in shown or shown[key][0] != value:
                source = "generated once per project" if key == "RDS_PASSWORD" else "the coupled database"
                shown[key] = (value, f"{source} ({database.reason})")
    return shown


def _database_shown(spec) -> dict[str, str] | None:  # noqa: ANN001 - a StackSpec
    database = spec.database
    if database is None:
        return None
    return {"container": database.container_name, "image": database.image, "hostname": database.hostname,
            "port": str(database.port), "database": database.database, "user": database.user,
            "volume": database.volume, "reason": database.reason}


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check this machine and project: engine, BuildKit, ports, notebooks folder, token, proxy lint,
    Open edX from the notebook. Exits non-zero when a check fails."""
    from .doctor import Doctor, failed, run_checks
    from .ui.view import doctor_lines, doctor_to_json, render_doctor

    checked = Doctor(_session(ctx).settings)
    redact.add(*checked.spec.secret_values())
    results = run_checks(checked)
    if as_json:
        console().print_json(redact(json.dumps(doctor_to_json(results))))
    elif console().is_terminal:
        console().print(render_doctor(results))
    else:
        for line in doctor_lines(results):
            console().out(redact(line), highlight=False)
    if failed(results):
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except BuildError as exc:
        for line in exc.tail[-15:]:
            err_console().print(redact(f"  | {line}"), style="dim", markup=False)
        _fail(exc)
    except NotReady as exc:
        for line in exc.logs[-30:]:
            err_console().print(redact(f"  {line}"), style="dim", markup=False)
        _fail(exc)
    except DevstackError as exc:
        _fail(exc)
    finally:
        # The process ends with the command. The interpreter's last garbage collection would walk the
        # whole heap for nothing first (the SDK, rich, watchdog: 0.1-0.9 s on a busy 2-core machine,
        # after a Ctrl-C's stop): frozen, it is skipped. Atexit handlers and flushes still run.
        gc.freeze()


def _fail(exc: DevstackError) -> None:
    err_console().print(redact(f"error: {exc}"), style="bold red", markup=False)
    sys.exit(exc.exit_code)
