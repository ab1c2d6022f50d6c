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

from . import assets
from .settings import SECRET_KEYS, Settings

# Labels are identity: "what devstack owns" is a query on these, never a name guess.
LABEL_PROJECT = "devstack.project"
LABEL_SERVICE = "devstack.service"
LABEL_CONFIG_HASH = "devstack.config-hash"
LABEL_CONTEXT_HASH = "devstack.context-hash"
LABEL_IMAGE = "devstack.image"

# Inside the notebook container, Sifu and Jupyter listen where production has them.
SIFU_CONTAINER_PORT = 3334
JUPYTER_CONTAINER_PORT = 3335

# Where the sidecar finds the rendered configuration (a read-only bind mount).
PROXY_MOUNT = "/etc/devstack-proxy"
# Where the notebook container finds the per-project secrets (a read-only bind mount).
SECRETS_MOUNT = "/run/devstack-secrets"

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

    sifu_port: int
    jupyter_port: int
    upstreams: tuple[Upstream, ...]
    server_templates: Path  # folder of *.conf.j2 server files
    config_dir: Path  # where rendered generations are written (mounted into the sidecar)
    bind_address: str
    edx_origin: str


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
        bind = self.proxy.bind_address
        return "127.0.0.1" if bind in ("0.0.0.0", "::") else bind

    def urls(self) -> dict[str, str]:
        host = self.probe_host
        host = f"[{host}]" if ":" in host else host
        return {
            "sifu": f"http://{host}:{self.proxy.sifu_port}/",
            "login": f"http://{host}:{self.proxy.sifu_port}/login",
            "jupyter": f"http://{host}:{self.proxy.jupyter_port}/",
        }


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

    environment = {k: v for k, v in settings.dotenv.items() if k not in SECRET_KEYS}
    environment.update({
        "NB_UID": str(host_uid),
        "NB_GID": str(host_gid),
        "SIFU_LISTEN_PORT": str(SIFU_CONTAINER_PORT),
        "JUPYTER_LISTEN_PORT": str(JUPYTER_CONTAINER_PORT),
        "SIFU_PUBLIC_PORT": str(settings.sifu_port),
        "JUPYTER_PUBLIC_PORT": str(settings.jupyter_port),
        "EDX_ORIGIN": settings.edx_origin,
        "DEVSTACK_SECRETS_DIR": SECRETS_MOUNT,
    })
    # supervisor starts Sifu with $SIFU_COMMAND; unset (even if `.env` has it empty), the image's default.
    environment.pop("SIFU_COMMAND", None)
    if settings.sifu_command:
        environment["SIFU_COMMAND"] = settings.sifu_command

    mounts = [MountSpec(secrets_dir, SECRETS_MOUNT, read_only=True)]
    if settings.notebooks_path is not None:
        mounts.append(MountSpec(settings.notebooks_path, "/notebooks"))

    notebook = ServiceSpec(
        name="notebook",
        # A name of the user's choosing keeps `docker exec -it proversity.jupyter.cont bash` working;
        # ownership is still decided by the labels.
        container_name=settings.notebook_container_name or f"{project}-notebook",
        image=settings.notebook_image_tag,
        build="notebook",
        environment=tuple(sorted(environment.items())),
        mounts=tuple(mounts),
        # EXTRA_PORTS and `up -p`: published straight from the notebook container, as `docker run -p` does.
        ports=tuple(PortSpec(settings.bind_address, m.host_port, m.container_port) for m in settings.extra_ports),
        # Containers reach the host's services (a local Open edX) by this name.
        extra_hosts=(("host.docker.internal", "host-gateway"),),
        labels=service_labels("notebook"),
    )

    proxy_dir = state_dir / "proxy"
    proxy = ServiceSpec(
        name="proxy",
        container_name=f"{project}-proxy",
        image=settings.nginx_image,
        entrypoint=("/bin/sh", "-c"),
        # The healthd folder must be writable by nginx's workers, as on the EB host.
        command=(
            "mkdir -p /var/log/nginx/healthd && chmod 0777 /var/log/nginx/healthd && "
            f"exec nginx -c {PROXY_MOUNT}/current/nginx.conf -g 'daemon off;'",
        ),
        mounts=(MountSpec(proxy_dir, PROXY_MOUNT, read_only=True),),
        ports=(
            PortSpec(settings.bind_address, settings.sifu_port, settings.sifu_port),
            PortSpec(settings.bind_address, settings.jupyter_port, settings.jupyter_port),
        ),
        extra_hosts=(("host.docker.internal", "host-gateway"),),
        labels=service_labels("proxy"),
        # nginx finishes the requests in flight on SIGQUIT.
        stop_signal="SIGQUIT",
    )

    proxy_spec = ProxySpec(
        sifu_port=settings.sifu_port,
        jupyter_port=settings.jupyter_port,
        upstreams=(
            Upstream("sifu", SIFU_CONTAINER_PORT),
            Upstream("jupyter", JUPYTER_CONTAINER_PORT),
            # EB's own default upstream points at the container's first exposed port.
            Upstream("docker", SIFU_CONTAINER_PORT),
        ),
        server_templates=assets.nginx_dir(),
        config_dir=proxy_dir,
        bind_address=settings.bind_address,
        edx_origin=settings.edx_origin,
    )

    return StackSpec(
        project=project,
        network=f"{project}_default",
        images=(base, final),
        services=(notebook, proxy),
        proxy=proxy_spec,
        notebooks_dir=settings.notebooks_path,
        state_dir=state_dir,
        secrets_dir=secrets_dir,
    )

