"""Settings: defaults < `.env` < environment < flags, validated once, here.

Every setting is one field of `Settings`, named by its environment key (the
alias). Errors name the key and where its value came from (`.env` line, the
environment or a flag) and say what to do.
"""

from __future__ import annotations

import io
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from . import assets
from .errors import ConfigError
from .hosts import is_ip, split_names
from .redact import MASK

ENV_FILE = ".env"
# Production's deploy hook writes DEPLOYMENT_TOKEN into this file; a project that keeps it is read.
DEPLOYMENT_TOKEN_FILE = ".deployment_token"

# Docker names: what compose accepts for a project name, and the engine's rule for
# container names (daemon/names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# An image reference: [registry/]name[:tag], kept loose; Docker has the last word.
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
# A variable name, as a shell exports it.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A DNS name as a Host header carries it (RFC 1123 labels), without a port.
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
                        re.IGNORECASE)

SECRET_KEYS = ("DEPLOYMENT_TOKEN", "JUPYTER_TOKEN")
NETWORK_MODES = ("bridge", "host")
PROXY_FLAVORS = ("auto", "nginx", "openresty")
IMAGE_SOURCES = ("auto", "project", "bundled")

# Inside the notebook container, Sifu and Jupyter listen where production has them
# (stack.SIFU_CONTAINER_PORT, stack.JUPYTER_CONTAINER_PORT); the proxy serves them,
# Jupyter behind its cookie gate, so EXTRA_PORTS never publishes them directly.
RESERVED_CONTAINER_PORTS = {3334: "Sifu's, which the proxy serves",
                            3335: "Jupyter's, which the proxy serves behind the cookie gate"}


@dataclass(frozen=True)
class PortMapping:
    """One more port of the notebook container published on BIND_ADDRESS, as `docker run -p` does."""

    host_port: int
    container_port: int
    origin: str = "EXTRA_PORTS"  # where it was written, for errors: "EXTRA_PORTS from .env:4", "-p 80:80"

    def __str__(self) -> str:
        return f"{self.host_port}:{self.container_port}"


def parse_port_specs(text: str, origin: str = "EXTRA_PORTS") -> tuple[PortMapping, ...]:
    """`HOST:CONTAINER[,HOST:CONTAINER...]` as mappings; a ValueError names the spec and the port."""
    mappings = []
    for spec in re.split(r"[,\s]+", text.strip()):
        if not spec:
            continue
        parts = spec.split(":")
        if len(parts) != 2:
            hint = " (ports are published on BIND_ADDRESS; set that instead)" if len(parts) > 2 else ""
            raise ValueError(f"{spec!r} is not a port mapping: write HOST:CONTAINER, for example 8888:8888{hint}")
        ports = []
        for side, value in zip(("host", "container"), parts):
            if not is_number(value):
                raise ValueError(f"{spec!r}: {side} port {value!r} is not a number: "
                                 "write HOST:CONTAINER, for example 8888:8888")
            if not 1 <= int(value) <= 65535:
                raise ValueError(f"{spec!r}: {side} port {int(value)} is out of range: use 1 to 65535")
            ports.append(int(value))
        mappings.append(PortMapping(ports[0], ports[1], origin))
    return tuple(mappings)


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also says yes to '²' (which int() refuses) and to '５' (which
    int() reads as 5), and neither is a port anyone meant."""
    return text.isascii() and text.isdigit()


def _port(key: str, default: int, description: str) -> Any:
    return Field(default, alias=key, ge=1, le=65535, description=description)


class Settings(BaseModel):
    """The resolved settings of one project. Field aliases are the keys users write."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    project: str = Field("", alias="DEVSTACK_PROJECT", description=(
        "Project name: prefixes container and network names and labels everything devstack creates. "
        "Default: the project folder's name."))
    sifu_port: int = _port("SIFU_PORT", 3334, "Host port of the EB-mimic proxy's Sifu listener (production: 3334).")
    jupyter_port: int = _port("JUPYTER_PORT", 3335, "Host port of the EB-mimic proxy's Jupyter listener (production: 3335).")
    http_port: int | None = Field(None, alias="HTTP_PORT", ge=1, le=65535, description=(
        "Host port where the stack's port-80 listener is published on BIND_ADDRESS: the EB platform's default "
        "nginx server on port 80 (proxying to the container's first port, Sifu's), behind the load balancer's "
        "listeners to instance port 80 when INSTANCES is more than 1 (production's resources.config declares "
        "TCP 80). Empty (the default): not published, since port 80 itself needs root on a laptop; "
        "for example 8080."))
    bind_address: str = Field("127.0.0.1", alias="BIND_ADDRESS", description=(
        "Host address the proxy publishes its ports on. 0.0.0.0 exposes them to your network: only when you mean it."))
    allowed_hosts: str = Field("", alias="ALLOWED_HOSTS", description=(
        "More host names (or IP addresses) the stack answers to, separated by commas, besides the loopback "
        "names, EDX_HOSTNAME's host and BIND_ADDRESS. Any other Host header is refused by the proxy and by "
        "Jupyter, so that no web page can reach the stack by DNS rebinding."))
    notebooks_dir: str = Field("./notebooks", alias="NOTEBOOKS_DIR", description=(
        "Host folder mounted at /notebooks (created if missing; never deleted). "
        "Empty: no mount; notebooks then live only in the container and are lost with it."))
    extra_ports: tuple[PortMapping, ...] = Field((), alias="EXTRA_PORTS", description=(
        "More ports of the notebook container to publish on BIND_ADDRESS, as HOST:CONTAINER pairs separated "
        "by commas (for example 8888:8888,5678:5678); `up -p HOST:CONTAINER` adds more."))
    notebook_container_name: str = Field("", alias="NOTEBOOK_CONTAINER_NAME", description=(
        "Name of the notebook container (for scripts that `docker exec` into it, e.g. proversity.jupyter.cont). "
        "Default: <project>-notebook."))
    nginx_image: str = Field("nginx:stable", alias="NGINX_IMAGE", description=(
        "Image of the nginx sidecar that plays the EB host's nginx (PROXY_FLAVOR=nginx)."))
    proxy_flavor: str = Field("auto", alias="PROXY_FLAVOR", description=(
        "Which nginx plays the EB host's proxy. nginx: stock nginx (NGINX_IMAGE). openresty: OpenResty "
        "(OPENRESTY_IMAGE), which production's deploy hook installs on the EB host. auto: OpenResty when the "
        "project's .ebextensions install it or its proxy files use a directive only OpenResty's bundled "
        "modules have (set_hmac_sha1 ...), stock nginx otherwise."))
    openresty_image: str = Field("openresty/openresty:1.27.1.2-bookworm", alias="OPENRESTY_IMAGE", description=(
        "Image of the sidecar when the proxy is OpenResty (PROXY_FLAVOR)."))
    images: str = Field("auto", alias="IMAGES", description=(
        "Whose images run. project: the project's own (a root Dockerfile, built FROM base-image/Dockerfile, or "
        "Dockerrun.aws.json's Image.Name), as EB builds them. bundled: devstack's (compose/base, compose/notebook). "
        "auto: the project's when it has a Dockerfile or Dockerrun.aws.json, devstack's otherwise."))
    sifu_health_path: str = Field("", alias="SIFU_HEALTH_PATH", description=(
        "Path whose answer through the proxy tells that Sifu is up. Empty: /health for devstack's images; / for "
        "the project's (any answer below 500 counts: production's Sifu answers 404 there)."))
    sifu_path: str = Field("", alias="SIFU_PATH", description=(
        "Where the project's own image keeps Sifu's checkout (SIFU_SRC is mounted there). Empty: found in "
        "supervisord.conf, from the Sifu program's puma command (/sifu in production's image)."))
    base_from_image: str = Field("debian:bookworm-slim", alias="BASE_FROM_IMAGE", description=(
        "Public image the base image starts FROM (build argument BASE_FROM_IMAGE)."))
    base_image_tag: str = Field("proversity/base-notebook", alias="BASE_IMAGE_TAG", description=(
        "Tag of the base image (Jupyter Notebook + supervisor)."))
    notebook_image_tag: str = Field("proversity/notebook", alias="NOTEBOOK_IMAGE_TAG", description=(
        "Tag of the final image (base + Sifu + supervisor and Jupyter config)."))
    base_context: str = Field("", alias="BASE_CONTEXT", description=(
        "Build context folder of the base image. Default: the one bundled with devstack (compose/base)."))
    notebook_context: str = Field("", alias="NOTEBOOK_CONTEXT", description=(
        "Build context folder of the final image. Default: the one bundled with devstack (compose/notebook)."))
    sifu_repo: str = Field("", alias="SIFU_REPO", description=(
        "Git URL of the Sifu repository built into the final image. Empty: a development stand-in is used."))
    sifu_ref: str = Field("", alias="SIFU_REF", description=(
        "Branch, tag or commit of SIFU_REPO. Empty: the repository's default branch."))
    sifu_command: str = Field("", alias="SIFU_COMMAND", description=(
        "Command supervisor runs in /opt/sifu to start Sifu. Empty: the image's (python3 /opt/sifu/app.py)."))
    deployment_token: SecretStr = Field(SecretStr(""), alias="DEPLOYMENT_TOKEN", description=(
        "GitHub access token that can read SIFU_REPO. Never printed, never sent into an image. "
        "Unset: read from the project's .deployment_token file if there is one."))
    edx_hostname: str = Field("localhost:8000", alias="EDX_HOSTNAME", description=(
        "host:port of the Open edX that frames the notebook; drives Jupyter's frame-ancestors and CORS."))
    jupyter_token: SecretStr = Field(SecretStr(""), alias="JUPYTER_TOKEN", description=(
        "Jupyter's token. Empty: generated once per project and kept in .devstack/."))
    network_mode: str = Field("bridge", alias="NETWORK_MODE", description=(
        "bridge: the containers have their own network and reach the host as host.docker.internal. "
        "host: they share the host's network stack (the seed's --net=host)."))
    docker_envs_file: str = Field("", alias="DOCKER_ENVS_FILE", description=(
        "Path inside the notebook container where the image expects production's docker_envs file "
        "(`export K=V` lines). Empty: detected from the notebook Dockerfile's `COPY docker_envs DEST`."))
    sifu_src: str = Field("", alias="SIFU_SRC", description=(
        "A local Sifu checkout mounted read-only over /opt/sifu in the notebook container; while devstack "
        "watches, a saved change there restarts only the Sifu program. Empty: the Sifu built into the image."))
    proxy_templates: str = Field("", alias="PROXY_TEMPLATES", description=(
        "Folder of the proxy's configuration templates (the tree nginx/ mirrors). "
        "Default: the one bundled with devstack (nginx/)."))
    instances: int = Field(1, alias="INSTANCES", ge=1, le=9, description=(
        "How many instances the environment runs, each a notebook container and its own EB-mimic proxy "
        "(<project>-notebook-K, <project>-proxy-K when more than one), all sharing NOTEBOOKS_DIR (the EFS "
        "stand-in). More than one puts a load balancer (<project>-lb, LB_IMAGE) in front, configured from "
        "the project's .ebextensions as EB's would be. `up --instances N` sets it for one run."))
    lb_image: str = Field("haproxy:2.8", alias="LB_IMAGE", description=(
        "Image of the load balancer in front of the instances when INSTANCES is more than 1: the official "
        "haproxy image (or one laid out like it: /usr/local/etc/haproxy/haproxy.cfg, haproxy -W)."))
    kernel_idle_wait: float = Field(60.0, alias="KERNEL_IDLE_WAIT", ge=0, description=(
        "Seconds a watched change waits for busy Jupyter kernels to go idle before it recreates "
        "the notebook container (which would kill them)."))
    rds_image: str = Field("mysql:8.0", alias="RDS_IMAGE", description=(
        "Image of the database devstack runs as the coupled RDS when the environment properties name "
        "RDS_* variables but no RDS_HOSTNAME: any image with the official mysql/mariadb images' contract "
        "(MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD, data in /var/lib/mysql)."))
    rds_ready_timeout: float = Field(180.0, alias="RDS_READY_TIMEOUT", ge=1, description=(
        "Seconds `up` waits for that database to accept connections (its first start initialises "
        "its data) before it gives up, showing the database's last log lines."))

    # Not settings users write: where the values came from, and the project folder.
    project_dir: Path = Field(Path("."), exclude=True)
    dotenv: dict[str, str] = Field(default_factory=dict, exclude=True)
    sources: dict[str, str] = Field(default_factory=dict, exclude=True)
    # For EB's environment properties (spec/eb_env.py), which these layers override too: the line of
    # each `.env` key, the environment devstack ran in, and the `--set` keys that are not settings.
    dotenv_lines: dict[str, int] = Field(default_factory=dict, exclude=True, repr=False)
    environ: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    env_flags: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @field_validator("project")
    @classmethod
    def _check_project(cls, value: str) -> str:
        if value and not _PROJECT_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '-' or '_', starting with a letter or digit")
        return value

    @field_validator("bind_address")
    @classmethod
    def _check_bind_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1") from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str) -> str:
        for name in split_names(value):
            if not (_HOST_NAME.match(name) or is_ip(name)):
                raise ValueError(f"holds {name!r}, which is not a host name or IP address: list names such as "
                                 "notebook.local.test, separated by commas, without ports")
        return value

    @field_validator("extra_ports", mode="before")
    @classmethod
    def _parse_extra_ports(cls, value: Any) -> Any:
        return parse_port_specs(value) if isinstance(value, str) else value

    @field_validator("notebook_container_name")
    @classmethod
    def _check_container_name(cls, value: str) -> str:
        if value and not _CONTAINER_NAME.match(value):
            raise ValueError("is not a container name: use letters, digits, '_', '.' or '-', "
                             "at least 2 characters, starting with a letter or digit")
        return value

    @field_validator("images")
    @classmethod
    def _check_images(cls, value: str) -> str:
        if value not in IMAGE_SOURCES:
            raise ValueError(f"must be one of {', '.join(IMAGE_SOURCES)}")
        return value

    @field_validator("sifu_health_path", "sifu_path")
    @classmethod
    def _check_absolute(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must be an absolute path, such as /health or /sifu")
        return value

    @field_validator("proxy_flavor")
    @classmethod
    def _check_proxy_flavor(cls, value: str) -> str:
        if value not in PROXY_FLAVORS:
            raise ValueError(f"must be one of {', '.join(PROXY_FLAVORS)}")
        return value

    @field_validator("nginx_image", "openresty_image", "lb_image", "base_from_image", "base_image_tag",
                     "notebook_image_tag", "rds_image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not _IMAGE_REF.match(value):
            raise ValueError("must be an image reference such as name:tag")
        return value

    @field_validator("edx_hostname")
    @classmethod
    def _check_edx_hostname(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not is_number(port) or not 1 <= int(port) <= 65535:
            raise ValueError("must be host:port, for example localhost:8000")
        return value

    @field_validator("network_mode")
    @classmethod
    def _check_network_mode(cls, value: str) -> str:
        if value not in NETWORK_MODES:
            raise ValueError(f"must be one of {', '.join(NETWORK_MODES)}")
        return value

    @field_validator("docker_envs_file")
    @classmethod
    def _check_docker_envs_file(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must be an absolute path inside the container, such as /tmp/docker_envs")
        return value

    @model_validator(mode="after")
    def _check_across_keys(self) -> Settings:
        if self.sifu_port == self.jupyter_port:
            raise ValueError(f"SIFU_PORT and JUPYTER_PORT are both {self.sifu_port}: give them different ports")
        proxy_ports = {self.sifu_port: "SIFU_PORT", self.jupyter_port: "JUPYTER_PORT"}
        if self.http_port in proxy_ports:
            raise ValueError(f"HTTP_PORT and {proxy_ports[self.http_port]} are both {self.http_port}: "
                             "give them different ports")
        if self.http_port is not None:
            proxy_ports[self.http_port] = "HTTP_PORT"
        seen: dict[int, PortMapping] = {}
        for mapping in self.extra_ports:
            if mapping.host_port in proxy_ports:
                key = proxy_ports[mapping.host_port]
                raise ValueError(f"host port {mapping.host_port} ({mapping.origin}) is the proxy's {key}: "
                                 "publish the notebook's port on another host port")
            if mapping.container_port in RESERVED_CONTAINER_PORTS:
                raise ValueError(f"container port {mapping.container_port} ({mapping.origin}) is "
                                 f"{RESERVED_CONTAINER_PORTS[mapping.container_port]}: publish another port")
            if mapping.host_port in seen:
                raise ValueError(f"host port {mapping.host_port} is published twice ({seen[mapping.host_port].origin}"
                                 f" and {mapping.origin}): publish each host port once")
            seen[mapping.host_port] = mapping
        if self.notebook_container_name == f"{self.project_name}-proxy":
            raise ValueError(f"NOTEBOOK_CONTAINER_NAME {self.notebook_container_name} is the proxy container's "
                             "name: choose another name")
        return self

    # -- derived values -------------------------------------------------

    @property
    def project_name(self) -> str:
        return self.project or normalize_project_name(self.project_dir.name)

    @property
    def notebooks_path(self) -> Path | None:
        return self._resolve(self.notebooks_dir) if self.notebooks_dir else None

    @property
    def base_context_path(self) -> Path:
        return self._resolve(self.base_context) if self.base_context else assets.compose_dir() / "base"

    @property
    def notebook_context_path(self) -> Path:
        return self._resolve(self.notebook_context) if self.notebook_context else assets.compose_dir() / "notebook"

    @property
    def sifu_src_path(self) -> Path | None:
        return self._resolve(self.sifu_src) if self.sifu_src else None

    @property
    def proxy_templates_path(self) -> Path:
        return self._resolve(self.proxy_templates) if self.proxy_templates else assets.nginx_dir()

    @property
    def state_dir(self) -> Path:
        """Where devstack keeps what it generates for this project (never watched, never in git)."""
        return state_dir_of(self.project_dir)

    @property
    def edx_origin(self) -> str:
        return f"http://{self.edx_hostname}"

    @property
    def edx_host(self) -> str:
        return self.edx_hostname.rpartition(":")[0].strip("[]")

    @property
    def extra_hostnames(self) -> tuple[str, ...]:
        return split_names(self.allowed_hosts)

    @property
    def edx_port(self) -> int:
        return int(self.edx_hostname.rpartition(":")[2])

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.project_dir / path).resolve()

    def secret_values(self) -> list[str]:
        return [s for s in (self.deployment_token.get_secret_value(), self.jupyter_token.get_secret_value()) if s]

    def redacted(self) -> dict[str, str]:
        """Every setting by key, as `config` shows it: secrets masked."""
        shown: dict[str, str] = {}
        for name, field in Settings.model_fields.items():
            if not field.alias:
                continue
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                if secret:
                    shown[field.alias] = MASK
                elif field.alias == "JUPYTER_TOKEN":
                    shown[field.alias] = "(generated per project)"
                else:
                    shown[field.alias] = ""
            elif name == "extra_ports":
                shown[field.alias] = ",".join(str(mapping) for mapping in value)
            elif value is None:
                shown[field.alias] = ""
            else:
                shown[field.alias] = str(value)
        shown["DEVSTACK_PROJECT"] = self.project_name
        return shown


def setting_keys() -> list[str]:
    """The keys users can set, in declaration order."""
    return [f.alias for f in Settings.model_fields.values() if f.alias]


def _field_by_key() -> dict[str, str]:
    return {f.alias: name for name, f in Settings.model_fields.items() if f.alias}


def normalize_project_name(name: str) -> str:
    """A folder name made into a project name, the way compose does it."""
    cleaned = re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")
    return cleaned or "devstack"


def state_dir_of(project_dir: Path) -> Path:
    return project_dir / ".devstack"


def read_env_text(path: Path) -> str:
    """A `.env` file's text; one that is not UTF-8 is an error naming the line (never the bytes:
    they may be a secret's)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}:{line}: byte {column} of the line is not UTF-8 text (a Latin-1 é, say): "
                          f"save {path.name} as UTF-8") from None


def read_env_file(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The variables of a `.env` file and the line each was set on.

    A line python-dotenv cannot parse is an error naming the file and line;
    only the part before `=` is shown, since the value may be a secret.
    """
    if not path.is_file():
        return {}, {}
    text = read_env_text(path)
    lines: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            head = binding.original.string.strip().split("=", 1)[0][:40]
            raise ConfigError(
                f"{path}:{line}: cannot parse the line starting '{head}': write it as KEY=VALUE "
                "(quote values with spaces, close every quote)")
        if binding.key is not None:
            lines[binding.key] = line
    values = {k: ("" if v is None else v) for k, v in dotenv_values(stream=io.StringIO(text)).items()}
    for key, value in values.items():
        if "\0" in key or "\0" in value:
            raise ConfigError(f"{path}:{lines.get(key, 0)}: {key.replace(chr(0), '')} holds a NUL byte, which no "
                              "environment variable can carry: remove it from the line")
    return values, lines


def project_name_only(project_dir: Path, flags: Mapping[str, str] | None = None,
                      environ: Mapping[str, str] | None = None) -> str:
    """The project's name without validating any other setting (`down` needs nothing else, so it works
    while `.env` is broken): flag, environment, `.env` read leniently, or the folder's name."""
    project_dir = project_dir.resolve()
    environ = os.environ if environ is None else environ
    name, source = "", "default"
    for layer, label in ((flags or {}, "flag --set"), (environ, "environment")):
        if "DEVSTACK_PROJECT" in layer:
            name, source = layer["DEVSTACK_PROJECT"], label
            break
    else:
        env_path = project_dir / ENV_FILE
        if env_path.is_file():
            text = env_path.read_bytes().decode("utf-8", errors="replace")
            for binding in parse_stream(io.StringIO(text)):
                if binding.key == "DEVSTACK_PROJECT" and not binding.error:
                    name, source = binding.value or "", f"{env_path}:{binding.original.line}"
    if not name:
        return normalize_project_name(project_dir.name)
    if not _PROJECT_NAME.match(name):
        raise ConfigError(f"{source}: DEVSTACK_PROJECT={name!r} is not a project name: fix it and run again")
    return name


def load_settings(
    project_dir: Path,
    flags: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    publish: Sequence[str] = (),
) -> Settings:
    """Resolve every setting: flags > environment > `.env` > default.

    `publish` are `up -p HOST:CONTAINER` flags: they add to EXTRA_PORTS, as `docker run -p` adds ports.
    """
    project_dir = project_dir.resolve()
    environ = os.environ if environ is None else environ
    flags = flags or {}
    env_path = project_dir / ENV_FILE
    dotenv, dotenv_lines = read_env_file(env_path)

    fields = _field_by_key()
    # A `--set` of a variable name that is no setting may set an environment property of the project
    # (RDS_PASSWORD, say); spec/eb_env.py refuses it when no layer names it.
    env_flags = {key: value for key, value in flags.items() if key not in fields and _ENV_NAME.match(key)}
    for key in flags:
        if key not in fields and key not in env_flags:
            raise ConfigError(f"--set {key}: unknown setting; known settings: {', '.join(fields)}")

    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in fields:
        for layer, label in (
            (flags, "flag --set"),
            (environ, "environment"),
            (dotenv, f"{env_path}:{dotenv_lines.get(key, 0)}"),
        ):
            if key in layer:
                raw[key] = layer[key]
                sources[key] = label
                break
        else:
            sources[key] = "default"

    if not str(raw.get("DEPLOYMENT_TOKEN", "")).strip():
        token_file = project_dir / DEPLOYMENT_TOKEN_FILE
        token = _read_token_file(token_file)
        if token:
            raw["DEPLOYMENT_TOKEN"] = token
            sources["DEPLOYMENT_TOKEN"] = str(token_file)

    for key in ("SIFU_PORT", "JUPYTER_PORT"):
        if key in raw:
            raw[key] = _parse_port(key, raw[key], sources[key])
    if "HTTP_PORT" in raw:  # empty: not published
        text = str(raw["HTTP_PORT"]).strip()
        raw["HTTP_PORT"] = _parse_port("HTTP_PORT", text, sources["HTTP_PORT"]) if text else None
    raw["EXTRA_PORTS"] = _parse_extra_ports(raw.get("EXTRA_PORTS", ""), sources, publish)

    try:
        return Settings(**raw, project_dir=project_dir, dotenv=dotenv, sources=sources, dotenv_lines=dotenv_lines,
                        environ=dict(environ), env_flags=env_flags)
    except ValidationError as exc:
        raise _config_error(exc, raw, sources) from None


def _read_token_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the deployment token file ({type(exc).__name__}): "
                          "make it readable, or set DEPLOYMENT_TOKEN instead") from None


def _parse_port(key: str, value: str, source: str) -> int:
    text = str(value).strip()
    if not is_number(text) or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{source}: {key}={text!r} is not a port: use an integer from 1 to 65535")
    return int(text)


def _parse_extra_ports(value: str, sources: dict[str, str], publish: Sequence[str]) -> tuple[PortMapping, ...]:
    source = sources["EXTRA_PORTS"]
    try:
        mappings = parse_port_specs(value, f"EXTRA_PORTS from {source}")
    except ValueError as exc:
        raise ConfigError(f"{source}: EXTRA_PORTS={value!r}: {exc}; fix it and run again") from None
    for spec in publish:
        try:
            mappings += parse_port_specs(spec, f"-p {spec}")
        except ValueError as exc:
            raise ConfigError(f"flag -p: {exc}") from None
    if publish:
        sources["EXTRA_PORTS"] = "flag -p" if source == "default" else f"{source} and flag -p"
    return mappings


def _config_error(exc: ValidationError, raw: Mapping[str, Any], sources: Mapping[str, str]) -> ConfigError:
    error = exc.errors()[0]
    loc = error.get("loc") or ()
    key = str(loc[0]) if loc else ""
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if key in sources:
        value = MASK if key in SECRET_KEYS else raw.get(key, "")
        return ConfigError(f"{sources[key]}: {key}={value!r} {message}; fix it and run again")
    # A check across keys (for example two equal ports): name every source involved.
    involved = [k for k in ("SIFU_PORT", "JUPYTER_PORT", "HTTP_PORT", "NOTEBOOK_CONTAINER_NAME") if k in message]
    where = ", ".join(f"{k} from {sources.get(k, 'default')}" for k in involved)
    return ConfigError(f"{message} ({where})" if where else message)
