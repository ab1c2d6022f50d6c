"""The project's own app, read as EB reads it: the root `Dockerfile` (the final image), the base
image's context (`base-image/`), `Dockerrun.aws.json` (v1), and the `supervisord.conf` its image
runs. Reading only, at the edge; what the stack does with it is `describe.py`'s.

A project with a root `Dockerfile` or a `Dockerrun.aws.json` brings its own app: devstack builds
and runs that, not its bundled images (unless IMAGES=bundled).
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .evidence import Evidence

DOCKERFILE = "Dockerfile"
BASE_FOLDER = "base-image"
DOCKERRUN = "Dockerrun.aws.json"
SUPERVISORD = "supervisord.conf"
NOTEBOOKS = "/notebooks"

_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", re.IGNORECASE)
# Where a Sifu program's command names its checkout: puma's `-C /sifu/config/puma.rb` or its rackup file.
_SIFU_PATH = re.compile(r"(/[\w./-]+?)/(?:config/puma\.rb|config\.ru)\b")


@dataclass(frozen=True)
class DockerrunVolume:
    host: str  # HostDirectory: a folder of the EB instance
    container: str  # ContainerDirectory


@dataclass(frozen=True)
class Dockerrun:
    """`Dockerrun.aws.json` v1, the keys EB's Docker platform reads."""

    path: Path
    image: str = ""  # Image.Name: what runs when there is no Dockerfile
    update: bool = True  # Image.Update: pull it again on each deploy
    volumes: tuple[DockerrunVolume, ...] = ()
    ports: tuple[int, ...] = ()  # ContainerPort, in order: the first is EB's default upstream
    logging: str = ""  # the container folder EB mounts from the host for `eb logs`


@dataclass(frozen=True)
class SupervisorProgram:
    name: str
    command: str
    line: int


@dataclass(frozen=True)
class ProjectApp:
    """What the project's files say about the app EB builds and runs."""

    root: Path
    dockerfile: Path | None = None  # the final image's, at the root
    base_context: Path | None = None  # base-image/ (or BASE_CONTEXT)
    final_from: Evidence | None = None  # the final Dockerfile's FROM: its image in `what`
    dockerrun: Dockerrun | None = None
    supervisord: Path | None = None
    programs: tuple[SupervisorProgram, ...] = ()
    # What of the root the final Dockerfile reads (its COPY/ADD sources); None: all of it.
    final_sources: tuple[str, ...] | None = None

    @property
    def present(self) -> bool:
        return self.dockerfile is not None or self.dockerrun is not None

    @property
    def sifu_program(self) -> SupervisorProgram | None:
        """The program that runs Sifu: named sifu, or the one that starts puma."""
        by_name = [p for p in self.programs if p.name.lower() == "sifu"]
        by_command = [p for p in self.programs if "puma" in p.command or "rails" in p.command]
        return (by_name or by_command or [None])[0]

    @property
    def sifu_path(self) -> str:
        """Where the image keeps Sifu's checkout: the folder its program's command runs from."""
        program = self.sifu_program
        match = _SIFU_PATH.search(program.command) if program is not None else None
        return match[1] if match else ""


def read_app(project_dir: Path, base_context: Path | None) -> ProjectApp:
    """The project's app files; `base_context` is BASE_CONTEXT when set (else `base-image/`)."""
    dockerfile = project_dir / DOCKERFILE
    base = base_context or project_dir / BASE_FOLDER
    supervisord = project_dir / SUPERVISORD
    return ProjectApp(
        root=project_dir,
        dockerfile=dockerfile if dockerfile.is_file() else None,
        base_context=base if (base / DOCKERFILE).is_file() else None,
        final_from=dockerfile_from(dockerfile) if dockerfile.is_file() else None,
        final_sources=copied_sources(dockerfile) if dockerfile.is_file() else None,
        dockerrun=read_dockerrun(project_dir / DOCKERRUN),
        supervisord=supervisord if supervisord.is_file() else None,
        programs=supervisor_programs(supervisord) if supervisord.is_file() else (),
    )


def dockerfile_from(dockerfile: Path) -> Evidence | None:
    """The image the Dockerfile's first stage starts FROM (ARG defaults before it filled in)."""
    args: dict[str, str] = {}
    for number, line in enumerate(_read(dockerfile).splitlines(), 1):
        if (arg := _ARG.match(line)) is not None:
            args[arg[1]] = arg[2] or ""
        elif (found := _FROM.match(line)) is not None:
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), found[1])
            return Evidence(dockerfile, number, image)
    return None


def copied_sources(dockerfile: Path) -> tuple[str, ...] | None:
    """The context paths the Dockerfile's COPY and ADD instructions read (the root is a whole repository,
    and most of it is not the image's business); None when one reads the whole context or a path the
    file cannot tell alone (a variable)."""
    sources: list[str] = []
    text = re.sub(r"\\\n", " ", _read(dockerfile))  # continuation lines joined
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue  # from another stage or image, not from the context
        if args and args[0].startswith("["):
            try:
                args = json.loads(" ".join(args))
            except json.JSONDecodeError:
                return None
        for source in args[:-1]:
            source = source.removeprefix("./").rstrip("/")
            if source in ("", ".", "*") or "$" in source:
                return None
            sources.append(source)
    return tuple(sources)


def read_dockerrun(path: Path) -> Dockerrun | None:
    """`Dockerrun.aws.json` as EB's Docker platform reads it; bad input is one line naming the file."""
    if not path.is_file():
        return None
    text = _read(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not JSON ({exc.msg}): fix it (eb deploy refuses it too)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: not a JSON object: write {{\"AWSEBDockerrunVersion\": \"1\", ...}}")
    line = _line_of(text, "AWSEBDockerrunVersion")
    version = str(data.get("AWSEBDockerrunVersion", ""))
    if version == "2":
        raise ConfigError(f"{path}:{line}: AWSEBDockerrunVersion 2 (multi-container, on ECS) is not supported yet: "
                          "devstack runs the single-container platform (version 1)")
    if version != "1":
        raise ConfigError(f"{path}:{line}: unknown AWSEBDockerrunVersion {version!r}: the single-container "
                          "Docker platform reads \"1\"")
    image = data.get("Image") or {}
    volumes = tuple(DockerrunVolume(str(v.get("HostDirectory", "")), str(v.get("ContainerDirectory", "")))
                    for v in data.get("Volumes") or () if isinstance(v, dict) and v.get("ContainerDirectory"))
    ports: list[int] = []
    for entry in data.get("Ports") or ():
        value = entry.get("ContainerPort") if isinstance(entry, dict) else None
        for port in value if isinstance(value, list) else [value]:  # production writes a list in one entry
            if not str(port).isdigit() or not 1 <= int(port) <= 65535:
                raise ConfigError(f"{path}:{_line_of(text, 'ContainerPort')}: ContainerPort {port!r} is not a "
                                  "port: write a number such as \"3334\"")
            ports.append(int(port))
    return Dockerrun(
        path=path,
        image=str(image.get("Name", "")) if isinstance(image, dict) else "",
        update=str(image.get("Update", "true")).lower() != "false" if isinstance(image, dict) else True,
        volumes=volumes,
        ports=tuple(ports),
        logging=str(data.get("Logging", "")),
    )


def supervisor_programs(path: Path) -> tuple[SupervisorProgram, ...]:
    """Each `[program:NAME]` of a supervisord.conf, with its command and line."""
    text = _read(path)
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return ()
    programs = []
    for section in parser.sections():
        if section.startswith("program:"):
            name = section[len("program:"):]
            programs.append(SupervisorProgram(name, parser.get(section, "command", fallback=""),
                                              _line_of(text, f"[{section}]")))
    return tuple(programs)


def _line_of(text: str, needle: str) -> int:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc}): fix or remove it") from None
