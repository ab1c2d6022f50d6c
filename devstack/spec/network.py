"""How the stack sits on the network, decided once: bridge (the project's own network) or host
(the seed's `docker run --net=host`). Everything else reads the layout instead of asking the mode."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..hosts import is_loopback, url_host
from ..settings import Settings

# Inside the notebook container, Sifu and Jupyter listen where production has them.
SIFU_CONTAINER_PORT = 3334
JUPYTER_CONTAINER_PORT = 3335
# With NETWORK_MODE=host nginx serves SIFU_PORT and JUPYTER_PORT on the host itself, so the
# notebook's processes move to loopback ports derived from them (two projects with distinct
# public ports get distinct internal ones): PORT+10000, or PORT-10000 where that passes 65535.
HOST_MODE_PORT_OFFSET = 10000
# Where an EB instance's platform nginx has its default server (proxying to the container's first
# port); HTTP_PORT publishes it.
DEFAULT_SERVER_PORT = 80
# Inside a bridge network the containers reach the host's services (a local Open edX) by this name.
HOST_GATEWAY_NAME = "host.docker.internal"


@dataclass(frozen=True)
class Listener:
    """One service the proxy serves: where people reach it, where nginx listens, where its process listens."""

    name: str  # "sifu" or "jupyter", also the nginx upstream's name
    title: str  # "Sifu" or "Jupyter", for messages
    setting: str  # the setting that chose the public port
    public_port: int  # on BIND_ADDRESS, what people open
    nginx_port: int  # the port nginx listens on (in the sidecar; on the host in host mode)
    nginx_listen: str  # what devstack's server file writes after `listen`
    process_port: int  # Sifu's or Jupyter's own port in the notebook container


@dataclass(frozen=True)
class NetworkLayout:
    mode: str  # "bridge" or "host"
    name: str  # the network the containers share: the project's own, or "host"
    bind_address: str
    process_address: str  # where Sifu and Jupyter bind inside the notebook container
    # The upstreams' host: "" means the notebook container's IP on `name`.
    upstream_host: str
    publishes: bool  # Docker publishes the host ports (bridge); in host mode nginx binds them itself
    extra_hosts: tuple[tuple[str, str], ...]  # how the containers reach the host's services
    edx_internal_url: str  # how processes in the notebook container reach EDX_HOSTNAME's Open edX
    sifu: Listener
    jupyter: Listener
    # The EB platform's default server (port 80, to the `docker` upstream), when HTTP_PORT publishes it.
    http: Listener | None = None

    @property
    def host_mode(self) -> bool:
        return self.mode == "host"

    @property
    def listeners(self) -> tuple[Listener, Listener]:
        """Sifu's and Jupyter's: the listeners every stack serves."""
        return (self.sifu, self.jupyter)

    @property
    def published(self) -> tuple[Listener, ...]:
        """Every listener published on BIND_ADDRESS: Sifu's, Jupyter's and, with HTTP_PORT, the default server."""
        return self.listeners + ((self.http,) if self.http is not None else ())


def network_layout(settings: Settings, process_ports: tuple[int, int] | None = None) -> NetworkLayout:
    """The layout for these settings. Pure. `process_ports`: where the project's own image has Sifu and
    Jupyter listen (its Dockerrun.aws.json's Ports), when it is not production's 3334 and 3335."""
    bind = url_host(settings.bind_address)
    sifu_process, jupyter_process = process_ports or (SIFU_CONTAINER_PORT, JUPYTER_CONTAINER_PORT)
    if settings.network_mode == "host":
        if process_ports is not None:
            raise ConfigError("NETWORK_MODE=host runs devstack's own images only: the project's image listens on "
                              f"{sifu_process} and {jupyter_process}, where the proxy listens on the host; "
                              "use NETWORK_MODE=bridge, or IMAGES=bundled")
        sifu_port, jupyter_port = _internal_port(settings.sifu_port), _internal_port(settings.jupyter_port)
        _check_distinct_ports(settings, sifu_port, jupyter_port)
        http = settings.http_port
        return NetworkLayout(
            mode="host", name="host", bind_address=settings.bind_address,
            # Never reachable from the network: the cookie gate is nginx's.
            process_address="127.0.0.1", upstream_host="127.0.0.1", publishes=False, extra_hosts=(),
            edx_internal_url=f"http://{_edx_host_from_container(settings.edx_host, True)}:{settings.edx_port}",
            sifu=Listener("sifu", "Sifu", "SIFU_PORT", settings.sifu_port, settings.sifu_port,
                          f"{bind}:{settings.sifu_port}", sifu_port),
            jupyter=Listener("jupyter", "Jupyter", "JUPYTER_PORT", settings.jupyter_port, settings.jupyter_port,
                             f"{bind}:{settings.jupyter_port}", jupyter_port),
            # nginx binds HTTP_PORT on the host itself, as it binds the two others.
            http=_default_server(http, http, f"{bind}:{http}", sifu_port) if http is not None else None,
        )
    return NetworkLayout(
        mode="bridge", name=f"{settings.project_name}_default", bind_address=settings.bind_address,
        process_address="0.0.0.0", upstream_host="", publishes=True,
        extra_hosts=((HOST_GATEWAY_NAME, "host-gateway"),),
        edx_internal_url=f"http://{_edx_host_from_container(settings.edx_host, False)}:{settings.edx_port}",
        # nginx listens where EB's does (3334, 3335) and Docker publishes the host ports onto them.
        sifu=Listener("sifu", "Sifu", "SIFU_PORT", settings.sifu_port, SIFU_CONTAINER_PORT, str(SIFU_CONTAINER_PORT),
                      sifu_process),
        jupyter=Listener("jupyter", "Jupyter", "JUPYTER_PORT", settings.jupyter_port, JUPYTER_CONTAINER_PORT,
                         str(JUPYTER_CONTAINER_PORT), jupyter_process),
        http=_default_server(settings.http_port, DEFAULT_SERVER_PORT, str(DEFAULT_SERVER_PORT), sifu_process)
        if settings.http_port is not None else None,
    )


def _default_server(public: int, nginx_port: int, nginx_listen: str, sifu_process: int) -> Listener:
    """The EB platform's default server: its upstream `docker` is the container's first port, Sifu's."""
    return Listener("docker", "port-80", "HTTP_PORT", public, nginx_port, nginx_listen, sifu_process)


def _internal_port(public: int) -> int:
    shifted = public + HOST_MODE_PORT_OFFSET
    return shifted if shifted <= 65535 else public - HOST_MODE_PORT_OFFSET


def _check_distinct_ports(settings: Settings, sifu_internal: int, jupyter_internal: int) -> None:
    ports = {"SIFU_PORT": settings.sifu_port, "JUPYTER_PORT": settings.jupyter_port,
             f"Sifu's internal port (SIFU_PORT±{HOST_MODE_PORT_OFFSET})": sifu_internal,
             f"Jupyter's internal port (JUPYTER_PORT±{HOST_MODE_PORT_OFFSET})": jupyter_internal}
    if settings.http_port is not None:
        ports["HTTP_PORT"] = settings.http_port
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise ConfigError(f"NETWORK_MODE=host: {seen[port]} and {name} are both {port}: "
                              f"move SIFU_PORT, JUPYTER_PORT or HTTP_PORT so that the {len(ports)} ports differ")
        seen[port] = name


def _edx_host_from_container(host: str, host_mode: bool) -> str:
    """The Open edX host as the notebook container must write it: a loopback name means the
    host itself, which a bridge network reaches through the gateway name."""
    if host == "0.0.0.0" or is_loopback(host):
        return "127.0.0.1" if host_mode else HOST_GATEWAY_NAME
    return url_host(host)
