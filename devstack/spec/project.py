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

from ..noise import is_config_noise
from ..settings import Settings

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
              if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key)]
    return "\n".join(lines) + "\n"


# -- all of it --------------------------------------------------------------


@dataclass(frozen=True)
class ProjectFacts:
    """What the project's files say, as `describe_stack` needs it."""

    host_uid: int
    host_gid: int
    proxy_files: ProjectProxyFiles = field(default_factory=ProjectProxyFiles)
    docker_envs: DockerEnvsRequest | None = None


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
    return ProjectFacts(
        host_uid=uid,
        host_gid=gid,
        proxy_files=find_project_proxy_files(settings.project_dir),
        docker_envs=docker_envs_request(settings.docker_envs_file, settings.notebook_context_path / "Dockerfile"),
    )
