"""What the stack description needs from the project's own files, read here, at the edge, so that
`describe_stack` stays pure: who owns the notebooks folder, the project's Elastic Beanstalk proxy
files, and where its image expects production's `docker_envs`.

Reading only. Each place below is where an EB platform takes nginx files from, so that devstack
loads what EB loads:

- Amazon Linux 1 (the seed's): the post-deploy hook copies
  `.ebextensions/.nginx/proxy/*` to sites-available and links the `*.conf`
  into sites-enabled; an older hook appended `.ebextensions/.nginx/hosts/*.conf`
  to the upstream file (linted, not loaded: the current hook writes the upstreams).
- Amazon Linux 2 / 2023: `.platform/nginx/conf.d/*.conf` land in
  /etc/nginx/conf.d (http context); `.platform/nginx/conf.d/elasticbeanstalk/*.conf`
  are included inside the default server.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..noise import is_config_noise
from ..proxy.modules import module_of
from ..proxy.nginxconf import parse_file
from ..settings import ENV_FILE, SECRET_KEYS, Settings, setting_keys
from ..state import ensure_rds_passwords
from .app import ProjectApp, read_app
from .eb_env import OVERRIDES_FILE, EbEnvironment, EbSources, resolve_environment
from .balancer import BalancerDeclarations, read_balancer
from .evidence import Evidence
from .rds import database_request

AL1_SERVERS = Path(".ebextensions/.nginx/proxy")
AL1_HOSTS = Path(".ebextensions/.nginx/hosts")
AL2_HTTP = Path(".platform/nginx/conf.d")
AL2_LOCATIONS = Path(".platform/nginx/conf.d/elasticbeanstalk")
SOURCE_FOLDERS = (AL1_SERVERS, AL1_HOSTS, AL2_HTTP, AL2_LOCATIONS)

# Production's Dockerfile: `COPY docker_envs /tmp/docker_envs` (then sources it).
_COPY_DOCKER_ENVS = re.compile(r"^\s*(?:COPY|ADD)\s+(?:--\S+\s+)*docker_envs\s+(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ProjectProxyFiles:
    """The nginx files a project carries for EB, by where EB puts them. Paths are absolute."""

    al1_servers: tuple[Path, ...] = ()
    al1_hosts: tuple[Path, ...] = ()
    al2_http: tuple[Path, ...] = ()
    al2_locations: tuple[Path, ...] = ()
    dangling: tuple[Path, ...] = ()  # symlinks among them that point at nothing

    @property
    def any(self) -> bool:
        return bool(self.al1_servers or self.al2_http or self.al2_locations)

    @property
    def layout(self) -> str:
        kinds = [name for name, files in (("al1", self.al1_servers), ("al2", self.al2_http + self.al2_locations))
                 if files]
        return "+".join(kinds) or "bundled"

    def all_files(self) -> tuple[Path, ...]:
        return self.al1_servers + self.al1_hosts + self.al2_http + self.al2_locations


def find_project_proxy_files(project_dir: Path) -> ProjectProxyFiles:
    """The project's EB nginx files, each folder read the way its platform reads it."""
    dangling: list[Path] = []

    def conf_files(folder: Path) -> tuple[Path, ...]:
        root = project_dir / folder
        if not root.is_dir():
            return ()
        found = []
        for path in sorted(root.iterdir()):
            if is_config_noise(path.name) or not path.name.endswith(".conf"):
                continue
            if path.is_symlink() and not path.exists():
                dangling.append(path)
            elif path.is_file():
                found.append(path)
        return tuple(found)

    files = ProjectProxyFiles(
        al1_servers=conf_files(AL1_SERVERS),
        al1_hosts=conf_files(AL1_HOSTS),
        al2_http=conf_files(AL2_HTTP),
        al2_locations=conf_files(AL2_LOCATIONS),
    )
    return ProjectProxyFiles(files.al1_servers, files.al1_hosts, files.al2_http, files.al2_locations,
                             tuple(dangling))


def proxy_source_folders(project_dir: Path) -> tuple[Path, ...]:
    """Every folder a project's own proxy files may live in, existing or not (what a watcher watches)."""
    return tuple(project_dir / folder for folder in SOURCE_FOLDERS)


# -- docker_envs ----------------------------------------------------------


@dataclass(frozen=True)
class DockerEnvsRequest:
    """Where the image expects `docker_envs`, and why devstack thinks so."""

    target: str  # absolute path inside the notebook container
    reason: str  # "DOCKER_ENVS_FILE" or "<Dockerfile>:<line>"
    dockerfile_copy: bool = False  # the Dockerfile COPYs it at build time


def docker_envs_request(setting: str, dockerfile: Path) -> DockerEnvsRequest | None:
    """The rule: DOCKER_ENVS_FILE when set; else the destination of the notebook Dockerfile's
    `COPY docker_envs DEST`, as production's Dockerfile has it; else none."""
    copy = _find_docker_envs_copy(dockerfile)
    if setting:
        return DockerEnvsRequest(setting, "DOCKER_ENVS_FILE", dockerfile_copy=copy is not None)
    if copy is None:
        return None
    dest, line = copy
    if dest.endswith("/"):
        dest += "docker_envs"
    if not dest.startswith("/"):
        return None  # relative to a WORKDIR devstack does not follow: DOCKER_ENVS_FILE says it
    return DockerEnvsRequest(dest, f"{dockerfile}:{line}", dockerfile_copy=True)


def _find_docker_envs_copy(dockerfile: Path) -> tuple[str, int] | None:
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except OSError:
        return None
    match = _COPY_DOCKER_ENVS.search(text)
    if match is None:
        return None
    return match[1], text.count("\n", 0, match.start()) + 1


def docker_envs_text(environment: Mapping[str, str]) -> str:
    """`export K=V` lines, quoted for a POSIX shell, as production's `docker_envs` is sourced."""
    lines = ["# Written by devstack from the project's resolved settings (secrets excluded). Do not edit."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(environment.items())
              if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) and key not in SECRET_KEYS]
    return "\n".join(lines) + "\n"


# -- EB's environment properties -------------------------------------------------------------


def read_eb_sources(project_dir: Path) -> EbSources:
    """The files EB takes environment properties from: `.ebextensions/*.config` in alphabetical order
    (as EB reads them) and `overrides.yml` (what `launch` sends with `eb setenv`)."""
    configs = []
    for path in sorted((project_dir / EBEXTENSIONS).glob("*.config"), key=lambda p: p.name):
        if path.is_file():
            configs.append((str(path), path.read_text(encoding="utf-8", errors="replace")))
    overrides = project_dir / OVERRIDES_FILE
    text = None
    if overrides.is_file():
        try:
            text = overrides.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{overrides}: cannot read it ({type(exc).__name__}): save it as UTF-8 text, "
                              "or move it away") from None
    return EbSources(tuple(configs), (str(overrides), text) if text is not None else None)


def project_environment(settings: Settings) -> EbEnvironment:
    """The environment properties the notebook gets, every layer applied (spec/eb_env.py)."""
    return resolve_environment(read_eb_sources(settings.project_dir), settings.dotenv, settings.dotenv_lines,
                               str(settings.project_dir / ENV_FILE), settings.environ, settings.env_flags,
                               setting_keys())


# -- OpenResty ------------------------------------------------------------

EBEXTENSIONS = Path(".ebextensions")
# A script a hook runs (`bash $EB_APP_DEPLOY_DIR/install_openresty.sh`): its name, looked up in the project.
_SCRIPT = re.compile(r"[\w./$-]*?([\w.-]+\.sh)\b")


def find_openresty_installer(project_dir: Path) -> Evidence | None:
    """The first `.ebextensions` hook or command that installs OpenResty itself, or runs a script of
    the project's that does (production: a pre-deploy hook runs `install_openresty.sh`)."""
    for config in sorted((project_dir / EBEXTENSIONS).glob("*.config")):
        try:
            text = config.read_text(encoding="utf-8")
            document = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # EB skips a file it cannot read, with a warning
        for snippet in _hook_texts(document):
            for script in _SCRIPT.findall(snippet):
                path = next((p for p in (project_dir / script, project_dir / EBEXTENSIONS / script) if p.is_file()),
                            None)
                if path is not None and "openresty" in _read_text(path).lower():
                    return Evidence(config, _line_of(text, script), f"runs {script}, which installs OpenResty")
            mention = next((line.strip() for line in snippet.splitlines() if "openresty" in line.lower()), None)
            if mention is not None:
                return Evidence(config, _line_of(text, mention), "installs OpenResty")
    return None


def _hook_texts(document: object) -> list[str]:
    """What EB runs from one `.ebextensions` file: `files` contents and `commands`/`container_commands`."""
    if not isinstance(document, dict):
        return []
    texts: list[str] = []
    files = document.get("files")
    if isinstance(files, dict):
        texts += [str(entry.get("content", "")) for entry in files.values() if isinstance(entry, dict)]
    for section in ("commands", "container_commands"):
        commands = document.get(section)
        if isinstance(commands, dict):
            for entry in commands.values():
                command = entry.get("command", "") if isinstance(entry, dict) else ""
                texts.append(" ".join(command) if isinstance(command, list) else str(command))
    return texts


def find_openresty_directive(files: ProjectProxyFiles) -> Evidence | None:
    """The first directive of the loaded proxy files that only OpenResty's bundled modules provide."""
    for path in files.al1_servers + files.al2_http + files.al2_locations:
        for directive in parse_file(path).walk():
            module = module_of(directive.name)
            if module is not None:
                return Evidence(path, directive.line, f"uses {directive.name} ({module} module)")
    return None


def _line_of(text: str, needle: str) -> int:
    index = text.lower().find(needle.lower())
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# -- all of it --------------------------------------------------------------


@dataclass(frozen=True)
class ProjectFacts:
    """What the project's files say, as `describe_stack` needs it."""

    host_uid: int
    host_gid: int
    proxy_files: ProjectProxyFiles = field(default_factory=ProjectProxyFiles)
    app: ProjectApp = field(default_factory=lambda: ProjectApp(Path(".")))
    docker_envs: DockerEnvsRequest | None = None
    # Why the project's proxy is OpenResty, if it is: a hook installs it, a proxy file needs its modules.
    openresty_installer: Evidence | None = None
    openresty_directive: Evidence | None = None
    environment: EbEnvironment = field(default_factory=EbEnvironment)
    # The coupled database's generated passwords (the user's, used when none is given; root's),
    # made once per project when the environment asks for a database.
    rds_passwords: tuple[str, str, str] | None = None  # generated: the user's, root's, the builds'
    # What .ebextensions declare for the load balancer (listeners, stickiness, health checks, deployments).
    balancer: BalancerDeclarations = field(default_factory=BalancerDeclarations)


def host_ids(notebooks_dir: Path | None) -> tuple[int, int]:
    """Whose files the notebook writes: the owner of the notebooks folder (so `sudo devstack` still
    leaves them to the folder's owner), or the user running devstack."""
    if notebooks_dir is not None and notebooks_dir.exists():
        st = notebooks_dir.stat()
        return st.st_uid, st.st_gid
    return os.getuid(), os.getgid()


def read_project(settings: Settings, ids: tuple[int, int] | None = None) -> ProjectFacts:
    """Read what the description depends on; `ids` overrides the notebooks folder's owner."""
    uid, gid = ids if ids is not None else host_ids(settings.notebooks_path)
    proxy_files = find_project_proxy_files(settings.project_dir)
    app = read_app(settings.project_dir, settings.base_context_path if settings.base_context else None)
    final_dockerfile = (app.dockerfile if app.present and settings.images != "bundled"
                        else settings.notebook_context_path / "Dockerfile")
    environment = project_environment(settings)
    wants_database = database_request(environment) is not None
    return ProjectFacts(
        host_uid=uid,
        host_gid=gid,
        proxy_files=proxy_files,
        app=app,
        docker_envs=docker_envs_request(settings.docker_envs_file, final_dockerfile) if final_dockerfile else None,
        openresty_installer=find_openresty_installer(settings.project_dir),
        openresty_directive=find_openresty_directive(proxy_files),
        environment=environment,
        rds_passwords=ensure_rds_passwords(settings.state_dir) if wants_database else None,
        balancer=read_balancer(settings.project_dir),
    )
