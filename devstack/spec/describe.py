"""Settings and the project's files become the stack's description.

`describe_stack(settings, project)` is pure: no Docker, no file system at all. What it needs from
the project's files comes in as `ProjectFacts`, read at the edge by `read_project`; `load_stack`
does both.
"""

from __future__ import annotations

from pathlib import Path

from ..hosts import LOOPBACK_NAMES, is_wildcard
from ..settings import Settings
from .model import (
    LABEL_PROJECT,
    LABEL_SERVICE,
    PROXY_MOUNT,
    SECRETS_MOUNT,
    SIFU_MOUNT,
    DatabaseSpec,
    HostPort,
    ImageSpec,
    MountSpec,
    PortSpec,
    ProxySpec,
    ServiceSpec,
    StackSpec,
    Upstream,
    VolumeMount,
    proxy_command,
    public_host,
    stack_urls,
)
from .flavor import FLAVOR_SETTING, FLAVORS, NGINX, OPENRESTY, ProxyChoice
from .network import HOST_MODE_PORT_OFFSET, NetworkLayout, network_layout
from .project import ProjectFacts, proxy_source_folders, read_project
from . import rds


def load_stack(settings: Settings, ids: tuple[int, int] | None = None) -> StackSpec:
    """The stack as the project's files are now (`ids`: the notebook user, instead of the folder's owner)."""
    return describe_stack(settings, read_project(settings, ids))


def describe_stack(settings: Settings, project: ProjectFacts) -> StackSpec:
    """The whole stack for these settings and project files. Pure."""
    network = network_layout(settings)
    state_dir = settings.state_dir
    base = ImageSpec(
        name="base",
        tag=settings.base_image_tag,
        context=settings.base_context_path,
        build_args=(("BASE_FROM_IMAGE", settings.base_from_image),),
    )
    database = _database(settings, project, network)
    final = ImageSpec(
        name="notebook",
        tag=settings.notebook_image_tag,
        context=settings.notebook_context_path,
        build_args=(("BASE_IMAGE", settings.base_image_tag),),
        parent="base",
        # A migration at build time (production's Dockerfile runs one) reaches the database by its name.
        network=network.name if database is not None else "",
    )
    hostnames = served_hostnames(settings)
    docker_envs_path = state_dir / "docker_envs" if project.docker_envs else None
    proxy_dir = state_dir / "proxy"
    choice = proxy_choice(settings, project)
    services = (_notebook(settings, project, network, hostnames, database), _proxy(settings, network, proxy_dir, choice))
    if database is not None:
        services += (_database_service(settings, network, database),)
    return StackSpec(
        project=settings.project_name,
        network=network,
        images=(base, final),
        services=services,
        proxy=ProxySpec(
            network=network,
            upstreams=(
                Upstream("sifu", network.sifu.process_port),
                Upstream("jupyter", network.jupyter.process_port),
                # EB's own default upstream points at the container's first exposed port.
                Upstream("docker", network.sifu.process_port),
            ),
            server_templates=settings.proxy_templates_path,
            config_dir=proxy_dir,
            edx_origin=settings.edx_origin,
            choice=choice,
            project_files=project.proxy_files,
            sources=proxy_source_folders(settings.project_dir),
            hostnames=hostnames,
        ),
        notebooks_dir=settings.notebooks_path,
        state_dir=state_dir,
        secrets_dir=state_dir / "secrets",
        host_ports=_host_ports(settings, network, database),
        docker_envs=project.docker_envs,
        docker_envs_path=docker_envs_path,
        environment=project.environment,
        database=database,
    )


def proxy_choice(settings: Settings, project: ProjectFacts) -> ProxyChoice:
    """PROXY_FLAVOR when it names one; `auto`: OpenResty when the project installs it on its EB host or
    its proxy files need OpenResty's modules (stock nginx would refuse them), stock nginx otherwise."""
    images = {NGINX.name: settings.nginx_image, OPENRESTY.name: settings.openresty_image}
    if settings.proxy_flavor in FLAVORS:
        flavor = FLAVORS[settings.proxy_flavor]
        return ProxyChoice(flavor, images[flavor.name], f"as {FLAVOR_SETTING}={flavor.name} asks")
    evidence = project.openresty_installer or project.openresty_directive
    if evidence is not None:
        return ProxyChoice(OPENRESTY, images[OPENRESTY.name], f"because {evidence} ({FLAVOR_SETTING}=auto)")
    return ProxyChoice(NGINX, images[NGINX.name], f"since nothing in the project asks for OpenResty "
                                                  f"({FLAVOR_SETTING}=auto)")


def served_hostnames(settings: Settings) -> tuple[str, ...]:
    """The Host names the stack answers to: the loopback names, EDX_HOSTNAME's host (a local edX's
    name, such as Tutor's, usually points at this machine too), BIND_ADDRESS, and ALLOWED_HOSTS.
    A web page under any other name reaches neither Sifu nor Jupyter, even when its DNS answers
    127.0.0.1 (DNS rebinding)."""
    names = [*LOOPBACK_NAMES, settings.edx_host.lower(), settings.bind_address.lower(), *settings.extra_hostnames]
    return tuple(dict.fromkeys(name.strip("[]") for name in names if not is_wildcard(name)))


def _labels(settings: Settings, service: str) -> tuple[tuple[str, str], ...]:
    return ((LABEL_PROJECT, settings.project_name), (LABEL_SERVICE, service))


def _database(settings: Settings, project: ProjectFacts, network: NetworkLayout) -> DatabaseSpec | None:
    """The coupled RDS the environment asks for (spec/rds.py), or None."""
    request = rds.database_request(project.environment)
    if request is None:
        return None
    generated, root = project.rds_passwords or ("", "")
    password = request.password or generated
    return DatabaseSpec(
        service=rds.SERVICE,
        container_name=f"{settings.project_name}-{rds.SERVICE}",
        image=settings.rds_image,
        # On the project's network the container's name; sharing the host's, the server listens on loopback.
        hostname="127.0.0.1" if network.host_mode else f"{settings.project_name}-{rds.SERVICE}",
        port=request.port,
        database=request.database,
        user=request.user,
        volume=f"{settings.project_name}_{rds.SERVICE}-data",
        reason=request.reason,
        ready_command=rds.ready_command(request),
        password=password,
        root_password=password if request.as_root else root,
        password_generated=not request.password,
    )


def _database_service(settings: Settings, network: NetworkLayout, database: DatabaseSpec) -> ServiceSpec:
    return ServiceSpec(
        name=database.service,
        container_name=database.container_name,
        image=database.image,
        command=rds.server_options(database.port, loopback_only=network.host_mode),
        environment=tuple(sorted(rds.image_environment(database.database, database.user, database.password,
                                                         database.root_password).items())),
        volumes=(VolumeMount(database.volume, rds.DATA_DIR),),
        labels=_labels(settings, database.service),
    )


def _notebook(settings: Settings, project: ProjectFacts, network: NetworkLayout,
              hostnames: tuple[str, ...], database: DatabaseSpec | None = None) -> ServiceSpec:
    # EB's environment properties (.ebextensions option_settings < overrides.yml < .env < the environment
    # < --set) reach the container as EB's `docker run --env` gives them; devstack's settings (ports,
    # KERNEL_IDLE_WAIT, the secrets) are devstack's, not the notebook's (spec/eb_env.py leaves them out).
    environment = project.environment.values()
    if database is not None:
        # What EB adds for the database it couples: RDS_HOSTNAME, and the four others filled in.
        environment.update(rds.notebook_variables(database.hostname, database.port, database.database,
                                                  database.user, database.password))
    urls = stack_urls(public_host(settings.edx_host, settings.bind_address), settings.sifu_port, settings.jupyter_port)
    environment.update({
        "NB_UID": str(project.host_uid),
        "NB_GID": str(project.host_gid),
        "NOTEBOOK_LISTEN_ADDRESS": network.process_address,
        "SIFU_LISTEN_PORT": str(network.sifu.process_port),
        "JUPYTER_LISTEN_PORT": str(network.jupyter.process_port),
        "SIFU_PUBLIC_PORT": str(settings.sifu_port),
        "JUPYTER_PUBLIC_PORT": str(settings.jupyter_port),
        "EDX_ORIGIN": settings.edx_origin,
        "EDX_INTERNAL_URL": network.edx_internal_url,
        # Sifu builds its redirects from these, never from the Host header; Jupyter answers only these names.
        "SIFU_PUBLIC_URL": urls["sifu"].rstrip("/"),
        "JUPYTER_PUBLIC_URL": urls["jupyter"].rstrip("/"),
        "DEVSTACK_HOSTNAMES": ",".join(hostnames),
        "DEVSTACK_SECRETS_DIR": SECRETS_MOUNT,
    })
    # supervisor starts Sifu with $SIFU_COMMAND; unset, the image's default.
    if settings.sifu_command:
        environment["SIFU_COMMAND"] = settings.sifu_command

    mounts = [MountSpec(settings.state_dir / "secrets", SECRETS_MOUNT, read_only=True)]
    if settings.notebooks_path is not None:
        mounts.append(MountSpec(settings.notebooks_path, "/notebooks"))
    if project.docker_envs is not None:
        # Mounted at run time, read-only: production's file without an image layer holding it.
        mounts.append(MountSpec(settings.state_dir / "docker_envs", project.docker_envs.target, read_only=True))
    if settings.sifu_src_path is not None:
        # Read-only: Sifu runs from the user's checkout and never writes into it.
        mounts.append(MountSpec(settings.sifu_src_path, SIFU_MOUNT, read_only=True))
    return ServiceSpec(
        name="notebook",
        # A name of the user's choosing keeps `docker exec -it proversity.jupyter.cont bash` working;
        # ownership is still decided by the labels.
        container_name=settings.notebook_container_name or f"{settings.project_name}-notebook",
        image=settings.notebook_image_tag,
        build="notebook",
        environment=tuple(sorted(environment.items())),
        mounts=tuple(mounts),
        # EXTRA_PORTS and `up -p`: published straight from the notebook container, as `docker run -p` does
        # (on the host network there is nothing to publish: the processes bind the host's ports).
        ports=tuple(PortSpec(settings.bind_address, m.host_port, m.container_port) for m in settings.extra_ports)
        if network.publishes else (),
        extra_hosts=network.extra_hosts,
        labels=_labels(settings, "notebook"),
    )


def _proxy(settings: Settings, network: NetworkLayout, proxy_dir: Path, choice: ProxyChoice) -> ServiceSpec:
    return ServiceSpec(
        name="proxy",
        container_name=f"{settings.project_name}-proxy",
        image=choice.image,
        entrypoint=("/bin/sh", "-c"),
        command=(proxy_command(choice.flavor),),
        mounts=(MountSpec(proxy_dir, PROXY_MOUNT, read_only=True),),
        ports=tuple(PortSpec(settings.bind_address, listener.public_port, listener.nginx_port)
                    for listener in network.listeners) if network.publishes else (),
        extra_hosts=network.extra_hosts,
        labels=_labels(settings, "proxy"),
        # nginx finishes the requests in flight on SIGQUIT.
        stop_signal="SIGQUIT",
    )


def _host_ports(settings: Settings, network: NetworkLayout, database: DatabaseSpec | None = None
                ) -> tuple[HostPort, ...]:
    ports = [HostPort(settings.bind_address, listener.public_port, listener.setting,
                      f"the proxy's {listener.title} listener",
                      fix=_moved_by(listener.setting))
             for listener in network.listeners]
    if network.host_mode:
        ports += [HostPort(network.process_address, listener.process_port,
                           f"{listener.setting}±{HOST_MODE_PORT_OFFSET}, NETWORK_MODE=host",
                           f"{listener.title} inside the notebook container",
                           "notebook", _moved_by(listener.setting))
                  for listener in network.listeners]
    else:
        ports += [HostPort(settings.bind_address, m.host_port, m.origin,
                           f"the notebook container's port {m.container_port}", "notebook",
                           "publish the notebook's port on a free host port (EXTRA_PORTS or up -p)")
                  for m in settings.extra_ports]
    if database is not None and network.host_mode:
        # Sharing the host's network, the database binds RDS_PORT on the host's loopback.
        ports.append(HostPort("127.0.0.1", database.port, "RDS_PORT",
                              "the coupled database (RDS)", database.service,
                              "set RDS_PORT to a free port, or stop the database that holds it"))
    return tuple(ports)


def _moved_by(key: str) -> str:
    return f"set {key} to a free port in .env"
