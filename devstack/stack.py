"""The desired stack, described once as data.

`describe_stack(settings, ...)` is a pure function from settings to a frozen
`StackSpec`. The Docker driver, the compose export, the proxy renderer and
the status view all read this one description.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .eb import DockerEnvsRequest, ProjectProxyFiles, docker_envs_request, find_project_proxy_files, proxy_source_folders
from .errors import ConfigError
from .hosts import LOOPBACK_NAMES, is_loopback, is_wildcard, url_host
from .settings import Settings, setting_keys

# Labels are identity: "what devstack owns" is a query on these, never a name guess.
LABEL_PROJECT = "devstack.project"
LABEL_SERVICE = "devstack.service"
LABEL_CONFIG_HASH = "devstack.config-hash"
LABEL_CONTEXT_HASH = "devstack.context-hash"
LABEL_IMAGE = "devstack.image"

# Inside the notebook container, Sifu and Jupyter listen where production has them.
SIFU_CONTAINER_PORT = 3334
JUPYTER_CONTAINER_PORT = 3335

# With NETWORK_MODE=host nginx serves SIFU_PORT and JUPYTER_PORT on the host itself, so the
# notebook's processes move to loopback ports derived from them (two projects with distinct
# public ports get distinct internal ones): PORT+10000, or PORT-10000 where that passes 65535.
HOST_MODE_PORT_OFFSET = 10000
# Inside a bridge network the containers reach the host's services (a local Open edX) by this name.
HOST_GATEWAY_NAME = "host.docker.internal"

# Where the sidecar finds the rendered configuration (a read-only bind mount).
PROXY_MOUNT = "/etc/devstack-proxy"
# What the sidecar does before nginx starts: the healthd folder writable by the workers, as on EB.
PROXY_PREPARE = "mkdir -p /var/log/nginx/healthd && chmod 0777 /var/log/nginx/healthd"
# Where the notebook container finds the per-project secrets (a read-only bind mount).
SECRETS_MOUNT = "/run/devstack-secrets"
# Where the final image keeps Sifu's source (compose/notebook/Dockerfile); SIFU_SRC is mounted over it.
SIFU_MOUNT = "/opt/sifu"

# The cookie Sifu sets and the proxy gates Jupyter on (production's name).
AUTH_COOKIE = "JUPYTER_AUTHORIZATION"


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
class ServiceSpec:
    name: str  # "notebook" or "proxy"
    container_name: str
    image: str
    build: str | None = None  # the ImageSpec that makes `image`
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = "SIGTERM"

    def config_hash(self, image_id: str, extra: str = "") -> str:
        """A digest of everything that, when changed, means the container must be recreated."""
        payload = json.dumps({"spec": asdict(self), "image": image_id, "extra": extra}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Upstream:
    name: str  # the upstream block's name in nginx
    port: int  # the notebook container's port it points at


@dataclass(frozen=True)
class ProxySpec:
    """What the EB-mimic nginx serves: its listeners and where its server files come from."""

    sifu_port: int  # host ports
    jupyter_port: int
    upstreams: tuple[Upstream, ...]
    server_templates: Path  # devstack's own template tree (nginx/)
    config_dir: Path  # where rendered generations are written (mounted into the sidecar)
    bind_address: str
    edx_origin: str
    # What devstack's own server files write after `listen`: the production port inside the
    # sidecar (Docker publishes the host port onto it), or BIND_ADDRESS:port in host mode.
    listen_sifu: str = str(SIFU_CONTAINER_PORT)
    listen_jupyter: str = str(JUPYTER_CONTAINER_PORT)
    # The ports nginx must listen on for the host to reach it: (Sifu's, Jupyter's).
    served_ports: tuple[int, int] = (SIFU_CONTAINER_PORT, JUPYTER_CONTAINER_PORT)
    # The upstreams' host: "" means the notebook container's IP on the stack's network.
    upstream_host: str = ""
    network_mode: str = "bridge"
    # The project's own EB proxy files (loaded unchanged), and every folder they may live in
    # (existing or not): what a watcher treats as proxy configuration.
    project_files: ProjectProxyFiles = field(default_factory=ProjectProxyFiles)
    sources: tuple[Path, ...] = ()
    # The Host names the stack answers to; devstack's own servers refuse any other (DNS rebinding).
    hostnames: tuple[str, ...] = LOOPBACK_NAMES

    @property
    def layout(self) -> str:
        return self.project_files.layout


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
class StackSpec:
    project: str
    network: str
    images: tuple[ImageSpec, ...]
    services: tuple[ServiceSpec, ...]
    proxy: ProxySpec
    notebooks_dir: Path | None
    state_dir: Path
    secrets_dir: Path = field(default=Path())
    network_mode: str = "bridge"
    host_ports: tuple[HostPort, ...] = ()
    # How processes in the notebook container reach the Open edX of EDX_HOSTNAME.
    edx_internal_url: str = ""
    # Production's docker_envs, when the image expects it: the host file devstack writes.
    docker_envs: DockerEnvsRequest | None = None
    docker_envs_path: Path | None = None

    def service(self, name: str) -> ServiceSpec:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def image(self, name: str) -> ImageSpec:
        for image in self.images:
            if image.name == name:
                return image
        raise KeyError(name)

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_PROJECT: self.project}

    @property
    def probe_host(self) -> str:
        """The address a probe on this machine uses to reach the published ports."""
        return probe_host(self.proxy.bind_address)

    @property
    def public_host(self) -> str:
        return public_host(urlsplit(self.proxy.edx_origin).hostname or "", self.proxy.bind_address)

    def urls(self, host: str | None = None) -> dict[str, str]:
        """The stack's URLs on the public host (or another one: probes use `probe_host`)."""
        return stack_urls(host or self.public_host, self.proxy.sifu_port, self.proxy.jupyter_port)


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


def stack_urls(host: str, sifu_port: int, jupyter_port: int) -> dict[str, str]:
    host = url_host(host)
    return {
        "sifu": f"http://{host}:{sifu_port}/",
        "login": f"http://{host}:{sifu_port}/login",
        "jupyter": f"http://{host}:{jupyter_port}/",
    }


def served_hostnames(settings: Settings) -> tuple[str, ...]:
    """The Host names the stack answers to: the loopback names, EDX_HOSTNAME's host (a local edX's
    name, such as Tutor's, usually points at this machine too), BIND_ADDRESS, and ALLOWED_HOSTS.
    A web page under any other name reaches neither Sifu nor Jupyter, even when its DNS answers
    127.0.0.1 (DNS rebinding)."""
    names = [*LOOPBACK_NAMES, settings.edx_host.lower(), settings.bind_address.lower(), *settings.extra_hostnames]
    return tuple(dict.fromkeys(name.strip("[]") for name in names if not is_wildcard(name)))


def describe_stack(settings: Settings, host_uid: int, host_gid: int) -> StackSpec:
    """The whole stack for these settings. Pure: no Docker, no file system writes."""
    project = settings.project_name
    state_dir = settings.state_dir
    secrets_dir = state_dir / "secrets"

    base = ImageSpec(
        name="base",
        tag=settings.base_image_tag,
        context=settings.base_context_path,
        build_args=(("BASE_FROM_IMAGE", settings.base_from_image),),
    )
    final = ImageSpec(
        name="notebook",
        tag=settings.notebook_image_tag,
        context=settings.notebook_context_path,
        build_args=(("BASE_IMAGE", settings.base_image_tag),),
        parent="base",
    )

    def service_labels(name: str) -> tuple[tuple[str, str], ...]:
        return ((LABEL_PROJECT, project), (LABEL_SERVICE, name))

    host_mode = settings.network_mode == "host"
    if host_mode:
        sifu_listen = (_internal_port(settings.sifu_port), "SIFU_PORT")
        jupyter_listen = (_internal_port(settings.jupyter_port), "JUPYTER_PORT")
        _check_distinct_ports(settings, sifu_listen[0], jupyter_listen[0])
        listen_address = "127.0.0.1"  # never reachable from the network: the cookie gate is nginx's
    else:
        sifu_listen, jupyter_listen = (SIFU_CONTAINER_PORT, ""), (JUPYTER_CONTAINER_PORT, "")
        listen_address = "0.0.0.0"
    edx_internal_url = f"http://{_edx_host_from_container(settings.edx_host, host_mode)}:{settings.edx_port}"

    # What `.env` adds beyond devstack's own settings reaches the container, as compose's env_file does;
    # devstack's settings (ports, KERNEL_IDLE_WAIT, the secrets) are devstack's, not the notebook's.
    own_settings = set(setting_keys())
    environment = {k: v for k, v in settings.dotenv.items() if k not in own_settings}
    hostnames = served_hostnames(settings)
    urls = stack_urls(public_host(settings.edx_host, settings.bind_address), settings.sifu_port, settings.jupyter_port)
    environment.update({
        "NB_UID": str(host_uid),
        "NB_GID": str(host_gid),
        "NOTEBOOK_LISTEN_ADDRESS": listen_address,
        "SIFU_LISTEN_PORT": str(sifu_listen[0]),
        "JUPYTER_LISTEN_PORT": str(jupyter_listen[0]),
        "SIFU_PUBLIC_PORT": str(settings.sifu_port),
        "JUPYTER_PUBLIC_PORT": str(settings.jupyter_port),
        "EDX_ORIGIN": settings.edx_origin,
        "EDX_INTERNAL_URL": edx_internal_url,
        # Sifu builds its redirects from these, never from the Host header; Jupyter answers only these names.
        "SIFU_PUBLIC_URL": urls["sifu"].rstrip("/"),
        "JUPYTER_PUBLIC_URL": urls["jupyter"].rstrip("/"),
        "DEVSTACK_HOSTNAMES": ",".join(hostnames),
        "DEVSTACK_SECRETS_DIR": SECRETS_MOUNT,
    })
    # supervisor starts Sifu with $SIFU_COMMAND; unset (even if `.env` has it empty), the image's default.
    environment.pop("SIFU_COMMAND", None)
    if settings.sifu_command:
        environment["SIFU_COMMAND"] = settings.sifu_command

    mounts = [MountSpec(secrets_dir, SECRETS_MOUNT, read_only=True)]
    if settings.notebooks_path is not None:
        mounts.append(MountSpec(settings.notebooks_path, "/notebooks"))
    docker_envs = docker_envs_request(settings.docker_envs_file, final.context / final.dockerfile)
    docker_envs_path = state_dir / "docker_envs" if docker_envs else None
    if docker_envs and docker_envs_path:
        # Mounted at run time, read-only: production's file without an image layer holding it.
        mounts.append(MountSpec(docker_envs_path, docker_envs.target, read_only=True))
    if settings.sifu_src_path is not None:
        # Read-only: Sifu runs from the user's checkout and never writes into it.
        mounts.append(MountSpec(settings.sifu_src_path, SIFU_MOUNT, read_only=True))

    # Bridge: containers reach the host's services (a local Open edX) as host.docker.internal.
    # Host: they share the host's network and reach them on 127.0.0.1.
    to_host = () if host_mode else ((HOST_GATEWAY_NAME, "host-gateway"),)
    notebook = ServiceSpec(
        name="notebook",
        # A name of the user's choosing keeps `docker exec -it proversity.jupyter.cont bash` working;
        # ownership is still decided by the labels.
        container_name=settings.notebook_container_name or f"{project}-notebook",
        image=settings.notebook_image_tag,
        build="notebook",
        environment=tuple(sorted(environment.items())),
        mounts=tuple(mounts),
        # EXTRA_PORTS and `up -p`: published straight from the notebook container, as `docker run -p` does
        # (on the host network there is nothing to publish: the processes bind the host's ports).
        ports=() if host_mode else tuple(
            PortSpec(settings.bind_address, m.host_port, m.container_port) for m in settings.extra_ports),
        extra_hosts=to_host,
        labels=service_labels("notebook"),
    )

    proxy_dir = state_dir / "proxy"
    proxy = ServiceSpec(
        name="proxy",
        container_name=f"{project}-proxy",
        image=settings.nginx_image,
        entrypoint=("/bin/sh", "-c"),
        command=(f"{PROXY_PREPARE} && exec nginx -c {PROXY_MOUNT}/current/nginx.conf -g 'daemon off;'",),
        mounts=(MountSpec(proxy_dir, PROXY_MOUNT, read_only=True),),
        # Bridge: nginx listens where EB's does (3334, 3335) and Docker publishes the host ports
        # onto them. Host: nothing to publish, nginx binds the host ports itself.
        ports=() if host_mode else (
            PortSpec(settings.bind_address, settings.sifu_port, SIFU_CONTAINER_PORT),
            PortSpec(settings.bind_address, settings.jupyter_port, JUPYTER_CONTAINER_PORT),
        ),
        extra_hosts=to_host,
        labels=service_labels("proxy"),
        # nginx finishes the requests in flight on SIGQUIT.
        stop_signal="SIGQUIT",
    )

    bind = url_host(settings.bind_address)
    proxy_spec = ProxySpec(
        sifu_port=settings.sifu_port,
        jupyter_port=settings.jupyter_port,
        upstreams=(
            Upstream("sifu", sifu_listen[0]),
            Upstream("jupyter", jupyter_listen[0]),
            # EB's own default upstream points at the container's first exposed port.
            Upstream("docker", sifu_listen[0]),
        ),
        server_templates=settings.proxy_templates_path,
        config_dir=proxy_dir,
        bind_address=settings.bind_address,
        edx_origin=settings.edx_origin,
        listen_sifu=f"{bind}:{settings.sifu_port}" if host_mode else str(SIFU_CONTAINER_PORT),
        listen_jupyter=f"{bind}:{settings.jupyter_port}" if host_mode else str(JUPYTER_CONTAINER_PORT),
        served_ports=(settings.sifu_port, settings.jupyter_port) if host_mode
        else (SIFU_CONTAINER_PORT, JUPYTER_CONTAINER_PORT),
        upstream_host="127.0.0.1" if host_mode else "",
        network_mode=settings.network_mode,
        project_files=find_project_proxy_files(settings.project_dir),
        sources=proxy_source_folders(settings.project_dir),
        hostnames=hostnames,
    )

    def moved_by(key: str) -> str:
        return f"set {key} to a free port in .env"

    host_ports = [
        HostPort(settings.bind_address, settings.sifu_port, "SIFU_PORT", "the proxy's Sifu listener",
                 fix=moved_by("SIFU_PORT")),
        HostPort(settings.bind_address, settings.jupyter_port, "JUPYTER_PORT", "the proxy's Jupyter listener",
                 fix=moved_by("JUPYTER_PORT")),
    ]
    if host_mode:
        host_ports += [
            HostPort("127.0.0.1", sifu_listen[0], f"SIFU_PORT±{HOST_MODE_PORT_OFFSET}, NETWORK_MODE=host",
                     "Sifu inside the notebook container", "notebook", moved_by("SIFU_PORT")),
            HostPort("127.0.0.1", jupyter_listen[0], f"JUPYTER_PORT±{HOST_MODE_PORT_OFFSET}, NETWORK_MODE=host",
                     "Jupyter inside the notebook container", "notebook", moved_by("JUPYTER_PORT")),
        ]
    else:
        host_ports += [
            HostPort(settings.bind_address, m.host_port, m.origin, f"the notebook container's port {m.container_port}",
                     "notebook", "publish the notebook's port on a free host port (EXTRA_PORTS or up -p)")
            for m in settings.extra_ports]

    return StackSpec(
        project=project,
        network="host" if host_mode else f"{project}_default",
        images=(base, final),
        services=(notebook, proxy),
        proxy=proxy_spec,
        notebooks_dir=settings.notebooks_path,
        state_dir=state_dir,
        secrets_dir=secrets_dir,
        network_mode=settings.network_mode,
        host_ports=tuple(host_ports),
        edx_internal_url=edx_internal_url,
        docker_envs=docker_envs,
        docker_envs_path=docker_envs_path,
    )


def _internal_port(public: int) -> int:
    shifted = public + HOST_MODE_PORT_OFFSET
    return shifted if shifted <= 65535 else public - HOST_MODE_PORT_OFFSET


def _check_distinct_ports(settings: Settings, sifu_internal: int, jupyter_internal: int) -> None:
    ports = {"SIFU_PORT": settings.sifu_port, "JUPYTER_PORT": settings.jupyter_port,
             f"Sifu's internal port (SIFU_PORT±{HOST_MODE_PORT_OFFSET})": sifu_internal,
             f"Jupyter's internal port (JUPYTER_PORT±{HOST_MODE_PORT_OFFSET})": jupyter_internal}
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise ConfigError(f"NETWORK_MODE=host: {seen[port]} and {name} are both {port}: "
                              "move SIFU_PORT or JUPYTER_PORT so that the four ports differ")
        seen[port] = name


def _edx_host_from_container(host: str, host_mode: bool) -> str:
    """The Open edX host as the notebook container must write it: a loopback name means the
    host itself, which a bridge network reaches through the gateway name."""
    if host.lower() == "0.0.0.0" or is_loopback(host):
        return "127.0.0.1" if host_mode else HOST_GATEWAY_NAME
    return url_host(host)
