"""The stack as data: frozen descriptions of its images, services, proxy and ports.

`describe.describe_stack` makes one from the settings; the Docker driver, the compose export,
the proxy renderer and the status view all read it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ..hosts import LOOPBACK_NAMES, is_loopback, is_wildcard, url_host
from .flavor import Flavor, ProxyChoice
from .eb_env import EbEnvironment
from .network import NetworkLayout
from .balancer import BalancerDeclarations, Deployment, HealthCheck, LbListener, Stickiness
from .project import DockerEnvsRequest, ProjectProxyFiles

# Labels are identity: "what devstack owns" is a query on these, never a name guess.
LABEL_PROJECT = "devstack.project"
LABEL_SERVICE = "devstack.service"
LABEL_CONFIG_HASH = "devstack.config-hash"
LABEL_CONTEXT_HASH = "devstack.context-hash"
LABEL_IMAGE = "devstack.image"
# With INSTANCES > 1: which instance a notebook or proxy container belongs to (1..N).
LABEL_INSTANCE = "devstack.instance"


class Labelled(Protocol):
    """What the engine says of a container, network or volume, as far as ownership goes."""

    @property
    def labels(self) -> Mapping[str, str]: ...


# Where the sidecar finds the rendered generations (a read-only bind mount); `current` is the loaded one.
PROXY_MOUNT = "/etc/devstack-proxy"
# The docker_envs a project's final build COPYs (under the state folder): the runtime one, with the
# database's password for builds in place of the real one.
BUILD_DOCKER_ENVS = "build/docker_envs"
# Where the notebook container finds the per-project secrets (a read-only bind mount).
SECRETS_MOUNT = "/run/devstack-secrets"
# Where the final image keeps Sifu's source (compose/notebook/Dockerfile); SIFU_SRC is mounted over it.
SIFU_MOUNT = "/opt/sifu"


@dataclass(frozen=True)
class ImageSpec:
    name: str  # "base" or "notebook"
    tag: str
    context: Path
    build_args: tuple[tuple[str, str], ...] = ()
    parent: str | None = None  # the image this one is built FROM, rebuilt first
    dockerfile: str = "Dockerfile"
    # Folders sent into the build context under a path of their own, replacing
    # what the context has there (Sifu's source fetched on the host).
    overlays: tuple[tuple[str, Path], ...] = ()
    # Files of the context sent empty: they hold a secret the project's Dockerfile COPYs (production's
    # base-image/.deployment_token), which must reach no layer.
    blanked: tuple[str, ...] = ()
    # Folders of the context never sent nor hashed: devstack's state folder and the notebooks folder, when
    # they lie inside it (the project's root is the final image's context).
    ignored: tuple[str, ...] = ()
    # What of the context the Dockerfile reads (COPY/ADD sources): only these, the Dockerfile and
    # .dockerignore decide whether the image is out of date. None: the whole context does.
    read: tuple[str, ...] | None = None
    # The network its build's RUN steps join ("" the engine's default): the project's, when a
    # migration at build time must reach the coupled database.
    network: str = ""

    def reads(self, rel: str) -> bool:
        """Whether the build reads this file of the context (a file outside `read` changes nothing)."""
        if self.read is None or rel in (self.dockerfile, ".dockerignore"):
            return True
        return any(rel == source or rel.startswith(source + "/") or fnmatch.fnmatchcase(rel, source)
                   for source in self.read)


@dataclass(frozen=True)
class PortSpec:
    host_ip: str
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/tcp"


@dataclass(frozen=True)
class MountSpec:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class VolumeMount:
    """A named volume devstack creates (labelled as the project's) and mounts; `down` keeps it."""

    volume: str
    target: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # "notebook" or "proxy"
    container_name: str
    image: str
    build: str | None = None  # the ImageSpec that makes `image`
    image_origin: str = ""  # where `image` was named, when it is pulled, not built: "NGINX_IMAGE", ...
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = "SIGTERM"
    volumes: tuple[VolumeMount, ...] = ()

    def config_hash(self, image_id: str, extra: str = "") -> str:
        """A digest of everything that, when changed, means the container must be recreated."""
        spec = asdict(self)
        if not self.volumes:
            del spec["volumes"]  # the services without one hash as they did before volumes existed
        payload = json.dumps({"spec": spec, "image": image_id, "extra": extra}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Upstream:
    name: str  # the upstream block's name in nginx
    port: int  # the notebook container's port it points at


@dataclass(frozen=True)
class ProxySpec:
    """What the EB-mimic nginx serves: its listeners and where its server files come from."""

    network: NetworkLayout  # the listeners: public ports, nginx's ports, the processes' ports
    upstreams: tuple[Upstream, ...]
    server_templates: Path  # devstack's own template tree (nginx/)
    config_dir: Path  # where rendered generations are written (mounted into the sidecar)
    edx_origin: str
    choice: ProxyChoice  # stock nginx or OpenResty, its image, and why
    # The project's own EB proxy files (loaded unchanged), and every folder they may live in
    # (existing or not): what a watcher treats as proxy configuration.
    project_files: ProjectProxyFiles = field(default_factory=ProjectProxyFiles)
    sources: tuple[Path, ...] = ()
    # The Host names the stack answers to; devstack's own servers refuse any other (DNS rebinding).
    hostnames: tuple[str, ...] = LOOPBACK_NAMES

    @property
    def flavor(self) -> Flavor:
        return self.choice.flavor

    @property
    def sifu_port(self) -> int:
        return self.network.sifu.public_port

    @property
    def jupyter_port(self) -> int:
        return self.network.jupyter.public_port

    @property
    def bind_address(self) -> str:
        return self.network.bind_address

    @property
    def layout(self) -> str:
        """Where the server files come from: "bundled" (devstack's), or the project's EB platforms."""
        return self.project_files.layout


def proxy_prepare(flavor: Flavor) -> str:
    """What the sidecar, and the throwaway container that checks a first configuration, do before nginx
    runs: the healthd folder writable by the workers, as on EB; for OpenResty, /etc/nginx linked to its
    configuration folder, as production's install script links it."""
    steps = ["mkdir -p /var/log/nginx/healthd", "chmod 0777 /var/log/nginx/healthd"]
    if flavor.links_etc_nginx:
        steps.append(f"{{ [ -L /etc/nginx ] || {{ rm -rf /etc/nginx && ln -s {flavor.conf_dir} /etc/nginx; }}; }}")
    return " && ".join(steps)


def link_loaded_config(flavor: Flavor) -> str:
    """Each entry of the loaded generation linked into the image's configuration folder, where its nginx
    reads with no `-c`: what a QA engineer types on the EB host (`nginx -T`, `nginx -s reload`) acts on
    what is loaded. The links go through `current`, so they follow each activation; an entry that no
    generation has any more loses its link."""
    conf, current = flavor.conf_dir, f"{PROXY_MOUNT}/current"
    return (f'{{ for f in {conf}/*; do case "$(readlink "$f")" in {current}/*) [ -e "$f" ] || rm -f "$f";; esac; '
            f'done; for f in {current}/*; do n="${{f##*/}}"; [ "$(readlink "{conf}/$n")" = "$f" ] || '
            f'{{ rm -rf "{conf}/$n" && ln -s "$f" "{conf}/$n"; }} || exit 1; done; }}')


def proxy_command(flavor: Flavor) -> str:
    return f"{proxy_prepare(flavor)} && {link_loaded_config(flavor)} && exec nginx -g 'daemon off;'"


@dataclass(frozen=True)
class HostPort:
    """A port on the host that the stack needs free (or held by its own container)."""

    address: str
    port: int
    setting: str  # where it was asked for, for errors: "SIFU_PORT", "EXTRA_PORTS from .env:4", "-p 80:80"
    purpose: str
    service: str = "proxy"  # whose container binds it (in host mode the notebook binds its own)
    fix: str = ""  # how to choose another


@dataclass(frozen=True)
class AppSpec:
    """Whose images run (devstack's bundled ones, or the project's own), and what devstack must know of
    the processes in them."""

    source: str  # "bundled" or "project"
    reason: str  # one line for `up` and `config`
    sifu_health_path: str  # an answer below 500 there (through the proxy) says Sifu is up
    sifu_program: str = "sifu"  # supervisor's name for Sifu's program
    sifu_path: str = SIFU_MOUNT  # where the image keeps Sifu's checkout (SIFU_SRC is mounted there)
    root: Path | None = None  # the project folder whose files make the app (for its lint)
    # Dockerrun.aws.json's Image.Update (with no Dockerfile): EB pulls Image.Name again on each deploy.
    pull_each_up: bool = False

    @property
    def own(self) -> bool:
        return self.source == "project"


@dataclass(frozen=True)
class DatabaseSpec:
    """The coupled RDS: a MySQL-compatible service the notebook reaches as RDS_HOSTNAME:RDS_PORT."""

    service: str  # the ServiceSpec's name
    container_name: str
    image: str
    hostname: str  # RDS_HOSTNAME as the notebook (and the final image's build) gets it
    port: int
    database: str
    user: str
    volume: str  # the named volume holding /var/lib/mysql
    reason: str  # the property that asked for it, for messages: "RDS_DB_NAME from overrides.yml:18"
    # Run inside its container: exits 0 once the server accepts the user's login over TCP.
    ready_command: tuple[str, ...] = ()
    ready_timeout: float = 180.0  # RDS_READY_TIMEOUT: how long a first start may take to accept it
    password: str = field(default="", repr=False)
    root_password: str = field(default="", repr=False)
    # What RDS_PASSWORD is in the docker_envs a build COPYs into a layer: the database takes it only
    # while that build runs (reconcile/database.py), so no layer holds a password that works.
    build_password: str = field(default="", repr=False)
    password_generated: bool = False

    def describe(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}/{self.database}"


@dataclass(frozen=True)
class InstanceSpec:
    """One instance of the environment, as an EC2 instance of it runs: a notebook container and the
    EB-mimic proxy in front of it, with the proxy's own configuration generations."""

    number: int  # 1..N
    notebook: str  # the services' names: "notebook" and "proxy" alone, "notebook-K" and "proxy-K" with N > 1
    proxy: str
    proxy_spec: ProxySpec  # the stack's ProxySpec, with this instance's own config_dir


# Where the load balancer's image reads its configuration (the official haproxy image's layout).
LB_CONFIG_DIR = "/usr/local/etc/haproxy"
LB_CONFIG_FILE = "haproxy.cfg"
# Inside the load balancer: haproxy's statistics, which `status` reads (published on loopback only).
LB_STATS_PORT = 8404
# haproxy's runtime API (admin level: a deployment takes an instance out of the rotation and back),
# published on loopback only, like the statistics.
LB_ADMIN_PORT = 9999


@dataclass(frozen=True)
class LbBackend:
    """One instance as the load balancer sees it: a name for the stickiness cookie, and its proxy."""

    name: str  # "i1", "i2", ...: also the value of the stickiness cookie
    instance: int
    host: str  # the proxy container's name, resolved by the engine's DNS on the project's network


@dataclass(frozen=True)
class BalancerSpec:
    """The load balancer in front of the instances: what it listens on, and how, as the project declares."""

    service: str  # its service name ("lb")
    # The published ones, with the declared protocol: Sifu's and Jupyter's, then (with HTTP_PORT) the one to
    # the instances' port 80, their default server.
    listeners: tuple[LbListener, ...]
    backends: tuple[LbBackend, ...]
    stickiness: Stickiness
    health: HealthCheck  # its port resolved to an instance port the proxies serve
    deployment: Deployment
    idle_timeout: int
    config_dir: Path  # .devstack/lb, mounted read-only at LB_CONFIG_DIR
    hostname: str  # the Host the health checks send: a name the proxies answer to
    declarations: BalancerDeclarations = field(default_factory=BalancerDeclarations)

    @property
    def default_server(self) -> LbListener | None:
        """The listener to the instances' port 80, their default server (with HTTP_PORT only)."""
        return self.listeners[2] if len(self.listeners) > 2 else None


@dataclass(frozen=True)
class StackSpec:
    project: str
    network: NetworkLayout
    images: tuple[ImageSpec, ...]
    services: tuple[ServiceSpec, ...]
    proxy: ProxySpec
    notebooks_dir: Path | None
    state_dir: Path
    app: AppSpec
    secrets_dir: Path = field(default=Path())
    host_ports: tuple[HostPort, ...] = ()
    # Production's docker_envs, when the image expects it: the host file devstack writes.
    docker_envs: DockerEnvsRequest | None = None
    docker_envs_path: Path | None = None
    # EB's environment properties, with their sources (what reaches the notebook as variables).
    environment: EbEnvironment = field(default_factory=EbEnvironment)
    database: DatabaseSpec | None = None  # the coupled RDS devstack runs, if any
    # The environment's instances (one, unless INSTANCES says more) and, with more, the load balancer.
    instances: tuple[InstanceSpec, ...] = ()
    balancer: BalancerSpec | None = None

    def secret_values(self) -> list[str]:
        """Values no line devstack prints may carry: secret properties, the database's passwords."""
        found = self.environment.secret_values()
        if self.database is not None:
            found += [self.database.password, self.database.root_password, self.database.build_password]
        return [value for value in found if value]

    def service(self, name: str) -> ServiceSpec:
        """A service by name; "notebook" and "proxy" also name the first instance's when there are several."""
        for service in self.services:
            if service.name == name:
                return service
        if name in ("notebook", "proxy") and self.instances:
            return self.service(getattr(self.instances[0], name))
        raise KeyError(name)

    @property
    def instance_list(self) -> tuple[InstanceSpec, ...]:
        """The instances, one when the description names none."""
        return self.instances or (InstanceSpec(1, "notebook", "proxy", self.proxy),)

    def instance(self, service: str) -> InstanceSpec | None:
        """The instance a notebook or proxy service belongs to."""
        return next((i for i in self.instance_list if service in (i.notebook, i.proxy)), None)

    def copies_docker_envs(self, image: ImageSpec) -> bool:
        """Whether the image's build COPYs docker_envs (the builds' copy under the state folder)."""
        return any(folder == self.state_dir / BUILD_DOCKER_ENVS for _, folder in image.overlays)

    def build_migrates(self, image: ImageSpec) -> bool:
        """Whether the image's build may migrate the coupled database: it COPYs docker_envs (production's
        Dockerfile runs the migration at build time, with the database's address and a password)."""
        return self.database is not None and self.copies_docker_envs(image)

    def owns(self, found: Labelled | None) -> bool:
        """Whether a container, network or volume is this project's: devstack made it for the project
        (its label says so; a name proves nothing). What is not, devstack never changes."""
        return found is not None and found.labels.get(LABEL_PROJECT) == self.project

    def image(self, name: str) -> ImageSpec:
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_PROJECT: self.project}

    @property
    def edx_internal_url(self) -> str:
        """How processes in the notebook container reach the Open edX of EDX_HOSTNAME."""
        return self.network.edx_internal_url

    @property
    def probe_host(self) -> str:
        """The address a probe on this machine uses to reach the published ports."""
        return probe_host(self.network.bind_address)

    @property
    def public_host(self) -> str:
        return public_host(urlsplit(self.proxy.edx_origin).hostname or "", self.network.bind_address)

    def urls(self, host: str | None = None) -> dict[str, str]:
        """The stack's URLs on the public host (or another one: probes use `probe_host`)."""
        http = self.network.http
        return stack_urls(host or self.public_host, self.proxy.sifu_port, self.proxy.jupyter_port,
                          http.public_port if http is not None else None)


def probe_host(bind_address: str) -> str:
    """The address a probe on this machine uses to reach ports published on `bind_address`."""
    return "127.0.0.1" if is_wildcard(bind_address) else bind_address


def public_host(edx_host: str, bind_address: str) -> str:
    """The host people open: edX's own loopback name when the proxy answers on loopback, so that
    the notebook and the edX page framing it are one site and the browser keeps their cookies;
    otherwise the address the ports are published on."""
    if edx_host.lower() in LOOPBACK_NAMES and is_loopback(probe_host(bind_address)):
        return edx_host.lower()
    return probe_host(bind_address)


def stack_urls(host: str, sifu_port: int, jupyter_port: int, http_port: int | None = None) -> dict[str, str]:
    """Sifu's, its login's and Jupyter's; "http", the port-80 listener's, when HTTP_PORT publishes it."""
    host = url_host(host)
    urls = {
        "sifu": f"http://{host}:{sifu_port}/",
        "login": f"http://{host}:{sifu_port}/login",
        "jupyter": f"http://{host}:{jupyter_port}/",
    }
    if http_port is not None:
        urls["http"] = f"http://{host}:{http_port}/"
    return urls
