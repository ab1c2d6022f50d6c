"""Settings and the project's files become the stack's description.

`describe_stack(settings, project)` is pure: no Docker, no file system at all. What it needs from
the project's files comes in as `ProjectFacts`, read at the edge by `read_project`; `load_stack`
does both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from ..hosts import LOOPBACK_NAMES, is_wildcard
from ..settings import Settings
from .balancer import LbListener
from .model import (
    BUILD_DOCKER_ENVS,
    LABEL_INSTANCE,
    LB_CONFIG_DIR,
    LB_ADMIN_PORT,
    LB_STATS_PORT,
    BalancerSpec,
    InstanceSpec,
    LbBackend,
    LABEL_PROJECT,
    AppSpec,
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
from .network import (DEFAULT_SERVER_PORT, HOST_MODE_PORT_OFFSET, JUPYTER_CONTAINER_PORT, SIFU_CONTAINER_PORT,
                      NetworkLayout, network_layout)
from .app import DOCKERRUN, NOTEBOOKS, Dockerrun, ProjectApp
from .project import ProjectFacts, proxy_source_folders, read_project
from . import rds


def load_stack(settings: Settings, ids: tuple[int, int] | None = None) -> StackSpec:
    """The stack as the project's files are now (`ids`: the notebook user, instead of the folder's owner)."""
    return describe_stack(settings, read_project(settings, ids))


def describe_stack(settings: Settings, project: ProjectFacts) -> StackSpec:
    """The whole stack for these settings and project files. Pure."""
    app = project.app if _runs_project_app(settings, project.app) else None
    network = network_layout(settings, _process_ports(app.dockerrun) if app is not None else None)
    state_dir = settings.state_dir
    database = _database(settings, project, network)
    build_network = network.name if database is not None else ""
    hostnames = served_hostnames(settings)
    docker_envs_path = state_dir / "docker_envs" if project.docker_envs else None
    proxy_dir = state_dir / "proxy"
    choice = proxy_choice(settings, project)
    if settings.instances > 1 and network.host_mode:
        raise ConfigError(f"INSTANCES={settings.instances} with NETWORK_MODE=host: the instances' proxies would all "
                          "bind the host's SIFU_PORT and JUPYTER_PORT; use NETWORK_MODE=bridge, or INSTANCES=1")
    proxy = ProxySpec(
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
    )
    notebook = (_notebook(settings, project, network, hostnames, database) if app is None
                else _project_notebook(settings, project, network, app, database))
    services, instances = _instances(settings, notebook, _proxy(settings, network, proxy_dir, choice), proxy)
    balancer = _balancer(settings, project, network, proxy, instances, services) \
        if settings.instances > 1 else None
    if balancer is not None:
        services += (_lb_service(settings, network, balancer),)
    if database is not None:
        services += (_database_service(settings, network, database),)
    return StackSpec(
        project=settings.project_name,
        network=network,
        # A migration at build time (production's Dockerfile runs one) reaches the database by its name.
        images=_bundled_images(settings, build_network) if app is None else _project_images(
            settings, app, project.docker_envs is not None and project.docker_envs.dockerfile_copy, build_network),
        services=services,
        proxy=proxy,
        notebooks_dir=settings.notebooks_path,
        state_dir=state_dir,
        app=_bundled_app(settings) if app is None else _project_app_spec(settings, app),
        secrets_dir=state_dir / "secrets",
        host_ports=_host_ports(settings, network, database),
        docker_envs=project.docker_envs,
        docker_envs_path=docker_envs_path,
        environment=project.environment,
        database=database,
        instances=instances,
        balancer=balancer,
    )


# -- the instances and the load balancer in front of them --------------------------------


def _instances(settings: Settings, notebook: ServiceSpec, proxy_service: ServiceSpec, proxy: ProxySpec
               ) -> tuple[tuple[ServiceSpec, ...], tuple[InstanceSpec, ...]]:
    """One notebook and one proxy per instance. Alone, they keep today's names; with N > 1 each is
    `<name>-K`, its proxy publishes nothing (the load balancer does) and has its own configuration
    generations; EXTRA_PORTS stay on the first instance's notebook (a host port is published once)."""
    if settings.instances == 1:
        return (notebook, proxy_service), (InstanceSpec(1, notebook.name, proxy_service.name, proxy),)
    services: list[ServiceSpec] = []
    instances: list[InstanceSpec] = []
    for number in range(1, settings.instances + 1):
        proxy_dir = proxy.config_dir if number == 1 else proxy.config_dir.with_name(f"proxy-{number}")
        own = replace(proxy, config_dir=proxy_dir)
        services.append(_numbered(settings, notebook, number, ports=notebook.ports if number == 1 else ()))
        services.append(_numbered(settings, proxy_service, number, ports=(),
                                  mounts=(MountSpec(proxy_dir, PROXY_MOUNT, read_only=True),)))
        instances.append(InstanceSpec(number, f"notebook-{number}", f"proxy-{number}", own))
    return tuple(services), tuple(instances)


def _numbered(settings: Settings, service: ServiceSpec, number: int, **changes: object) -> ServiceSpec:
    name = f"{service.name}-{number}"
    labels = (*_labels(settings, name), (LABEL_INSTANCE, str(number)))
    return replace(service, name=name, container_name=f"{service.container_name}-{number}", labels=labels,
                   **changes)  # type: ignore[arg-type]


def _balancer(settings: Settings, project: ProjectFacts, network: NetworkLayout, proxy: ProxySpec,
              instances: tuple[InstanceSpec, ...], services: tuple[ServiceSpec, ...]) -> BalancerSpec:
    """The load balancer as the project declares it: for each published listener (the ports Sifu and
    Jupyter are served on, 3334 and 3335 as in production) the declared protocol and instance port,
    HTTP to the same port when nothing is declared (EB's default listener protocol)."""
    declared = {listener.port: listener for listener in project.balancer.listeners}
    listeners = tuple(declared.get(listener.nginx_port, LbListener(listener.nginx_port, "HTTP", listener.nginx_port))
                      for listener in network.listeners)
    if network.http is not None:
        listeners += (default_server_listener(project.balancer.listeners),)
    health = project.balancer.health
    instance_ports = [listener.instance_port for listener in listeners]
    if health.port not in instance_ports:
        # EB checks port 80 by default, which devstack's proxies do not serve: the first listener's instead.
        health = replace(health, port=instance_ports[0])
    by_name = {service.name: service for service in services}
    backends = tuple(LbBackend(f"i{i.number}", i.number, by_name[i.proxy].container_name) for i in instances)
    return BalancerSpec(
        service="lb", listeners=listeners, backends=backends, stickiness=project.balancer.stickiness, health=health,
        deployment=project.balancer.deployment, idle_timeout=project.balancer.idle_timeout,
        config_dir=settings.state_dir / "lb", hostname=proxy.hostnames[0], declarations=project.balancer)


def default_server_listener(declared: tuple[LbListener, ...]) -> LbListener:
    """The load balancer's listener to the instances' port 80 (their default server), which HTTP_PORT publishes:
    the declared one (its own port 80's first, production's TCP 80), or EB's default listener, HTTP 80 to 80."""
    to_80 = sorted((listener for listener in declared if listener.instance_port == DEFAULT_SERVER_PORT),
                   key=lambda listener: listener.port != DEFAULT_SERVER_PORT)
    return to_80[0] if to_80 else LbListener(DEFAULT_SERVER_PORT, "HTTP", DEFAULT_SERVER_PORT)


def _lb_service(settings: Settings, network: NetworkLayout, balancer: BalancerSpec) -> ServiceSpec:
    return ServiceSpec(
        name=balancer.service,
        container_name=f"{settings.project_name}-lb",
        image=settings.lb_image,
        image_origin="LB_IMAGE",
        command=("haproxy", "-f", f"{LB_CONFIG_DIR}/haproxy.cfg"),
        mounts=(MountSpec(balancer.config_dir, LB_CONFIG_DIR, read_only=True),),
        # The listeners on BIND_ADDRESS, where the single proxy published them; haproxy's statistics
        # and its runtime API, each on a port of loopback the engine picks (`status` reads each instance's
        # health there; a deployment takes instances out of the rotation and back).
        ports=(*(PortSpec(settings.bind_address, listener.public_port, listener.nginx_port)
                 for listener in network.listeners),
               # HTTP_PORT onto the listener in front of the instances' default servers.
               *((PortSpec(settings.bind_address, network.http.public_port, balancer.default_server.port),)
                 if network.http is not None and balancer.default_server is not None else ()),
               PortSpec("127.0.0.1", 0, LB_STATS_PORT), PortSpec("127.0.0.1", 0, LB_ADMIN_PORT)),
        extra_hosts=network.extra_hosts,
        labels=_labels(settings, balancer.service),
        # haproxy's graceful stop: it finishes the connections it holds.
        stop_signal="SIGUSR1",
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


# -- whose images: devstack's, or the project's own -----------------------------------------


def _runs_project_app(settings: Settings, app: ProjectApp) -> bool:
    if settings.images == "project" and not app.present:
        raise ConfigError(f"IMAGES=project, but {app.root} has neither a Dockerfile nor a {DOCKERRUN}: "
                          "add one, or set IMAGES=auto to run devstack's bundled images")
    return app.present and settings.images != "bundled"


def _bundled_images(settings: Settings, build_network: str) -> tuple[ImageSpec, ...]:
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
        network=build_network,
    )
    return base, final


def _bundled_app(settings: Settings) -> AppSpec:
    why = "the project has no Dockerfile or Dockerrun.aws.json" if settings.images == "auto" else "IMAGES=bundled"
    return AppSpec("bundled", f"images: devstack's bundled base and final images ({why})",
                   settings.sifu_health_path or "/health")


def base_tag_for(settings: Settings, app: ProjectApp) -> str:
    """The tag the project's base build gets: the name its final Dockerfile starts FROM when that names a
    private registry's image (production's ECR repository, which a laptop cannot pull), so that the
    final build finds it here and never pulls it; BASE_IMAGE_TAG otherwise."""
    if app.final_from is not None and _is_private(app.final_from.what):
        return app.final_from.what
    return settings.base_image_tag


def _is_private(ref: str) -> bool:
    first = ref.split("/", 1)[0]
    return "/" in ref and ("." in first or ":" in first or first == "localhost")


def _project_images(settings: Settings, app: ProjectApp, docker_envs_copied: bool,
                    build_network: str) -> tuple[ImageSpec, ...]:
    if app.dockerfile is None:
        return ()  # Dockerrun.aws.json's Image.Name runs as it is
    images = []
    if app.base_context is not None:
        images.append(ImageSpec(name="base", tag=base_tag_for(settings, app), context=app.base_context))
    # The root is the final image's context: what devstack keeps there, and the notebooks, are not the app's.
    inside = [folder for folder in (settings.state_dir, settings.notebooks_path)
              if folder is not None and folder.resolve().is_relative_to(app.root.resolve())]
    # production's hook writes docker_envs into the deploy folder before the build, which COPYs it.
    overlays = (("docker_envs", settings.state_dir / BUILD_DOCKER_ENVS),) if docker_envs_copied else ()
    images.append(ImageSpec(name="notebook", tag=settings.notebook_image_tag, context=app.root,
                            parent="base" if app.base_context is not None else None, overlays=overlays,
                            read=app.final_sources, network=build_network,
                            ignored=tuple(f.resolve().relative_to(app.root.resolve()).as_posix() for f in inside)))
    return tuple(images)


def _project_app_spec(settings: Settings, app: ProjectApp) -> AppSpec:
    parts = []
    if app.dockerfile is not None:
        parts.append(f"final from {_shown(app, app.dockerfile)}"
                     + (f" (FROM {app.final_from.what})" if app.final_from else ""))
        if app.base_context is not None:
            tag = base_tag_for(settings, app)
            built_for_from = app.final_from is not None and tag == app.final_from.what
            parts.append(f"base from {_shown(app, app.base_context / 'Dockerfile')}, "
                         + ("tagged with that name here, never pulled" if built_for_from else f"tagged {tag}"))
    elif app.dockerrun is not None:
        parts.append(f"{app.dockerrun.image} (Image.Name of {DOCKERRUN})")
    if app.dockerrun is not None:
        parts.append(f"{DOCKERRUN} v1 for the volumes, ports and log folder")
    program = app.sifu_program
    return AppSpec("project", f"images: the project's own: {'; '.join(parts)}",
                   settings.sifu_health_path or "/",
                   sifu_program=program.name if program is not None else "sifu",
                   sifu_path=_sifu_path(settings, app), root=app.root,
                   pull_each_up=app.dockerfile is None and app.dockerrun is not None and app.dockerrun.update)


def _shown(app: ProjectApp, path: Path) -> str:
    return str(path.relative_to(app.root)) if path.is_relative_to(app.root) else str(path)


def _sifu_path(settings: Settings, app: ProjectApp) -> str:
    return settings.sifu_path or app.sifu_path or SIFU_MOUNT


def _process_ports(dockerrun: Dockerrun | None) -> tuple[int, int]:
    """Sifu's and Jupyter's ports in the project's container: Dockerrun.aws.json's Ports, in order."""
    if dockerrun is None or not dockerrun.ports:
        return SIFU_CONTAINER_PORT, JUPYTER_CONTAINER_PORT
    if len(dockerrun.ports) < 2:
        raise ConfigError(f"{dockerrun.path}: Ports lists only {dockerrun.ports[0]}: devstack serves Sifu and "
                          "Jupyter, so list both container ports (Sifu's first, as production's 3334, 3335)")
    return dockerrun.ports[0], dockerrun.ports[1]


def _project_notebook(settings: Settings, project: ProjectFacts, network: NetworkLayout,
                      app: ProjectApp, database: DatabaseSpec | None) -> ServiceSpec:
    """The project's container as EB runs it: its image's own command and user, the environment
    properties, the Dockerrun.aws.json volumes and log folder; none of devstack's internals."""
    environment = _eb_environment(project, database)
    # EDX_HOSTNAME is devstack's setting and one of production's properties (its Sifu and jupyter_cors.sh
    # read it): the project's container gets devstack's, the local Open edX.
    environment["EDX_HOSTNAME"] = settings.edx_hostname
    mounts = []
    dockerrun = app.dockerrun
    volumes = dockerrun.volumes if dockerrun is not None and dockerrun.volumes else ()
    if not volumes and settings.notebooks_path is not None:
        mounts.append(MountSpec(settings.notebooks_path, NOTEBOOKS))
    for volume in volumes:
        if NOTEBOOKS in (volume.host.rstrip("/"), volume.container.rstrip("/")):
            if settings.notebooks_path is not None:  # the EFS folder every instance shares: NOTEBOOKS_DIR
                mounts.append(MountSpec(settings.notebooks_path, volume.container))
        else:  # a folder of the EB instance: one of this project's own, under .devstack/
            mounts.append(MountSpec(settings.state_dir / "host" / volume.host.strip("/"), volume.container))
    if dockerrun is not None and dockerrun.logging:
        # EB mounts a host folder there so that `eb logs` finds the files.
        mounts.append(MountSpec(settings.state_dir / "logs", dockerrun.logging))
    if project.docker_envs is not None:
        mounts.append(MountSpec(settings.state_dir / "docker_envs", project.docker_envs.target, read_only=True))
    if settings.sifu_src_path is not None:
        mounts.append(MountSpec(settings.sifu_src_path, _sifu_path(settings, app), read_only=True))
    return ServiceSpec(
        name="notebook",
        container_name=settings.notebook_container_name or f"{settings.project_name}-notebook",
        image=settings.notebook_image_tag if app.dockerfile is not None else dockerrun.image,  # type: ignore[union-attr]
        build="notebook" if app.dockerfile is not None else None,
        image_origin="" if app.dockerfile is not None else f"Image.Name of {DOCKERRUN}",
        environment=tuple(sorted(environment.items())),
        mounts=tuple(mounts),
        ports=tuple(PortSpec(settings.bind_address, m.host_port, m.container_port) for m in settings.extra_ports),
        extra_hosts=network.extra_hosts,
        labels=_labels(settings, "notebook"),
    )


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
    generated, root, build = project.rds_passwords or ("", "", "")
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
        ready_timeout=settings.rds_ready_timeout,
        password=password,
        root_password=password if request.as_root else root,
        password_generated=not request.password,
        build_password=build,
    )


def _database_service(settings: Settings, network: NetworkLayout, database: DatabaseSpec) -> ServiceSpec:
    return ServiceSpec(
        name=database.service,
        container_name=database.container_name,
        image=database.image,
        image_origin="RDS_IMAGE",
        command=rds.server_options(database.port, loopback_only=network.host_mode),
        environment=tuple(sorted(rds.image_environment(database.database, database.user, database.password,
                                                         database.root_password).items())),
        volumes=(VolumeMount(database.volume, rds.DATA_DIR),),
        labels=_labels(settings, database.service),
    )


def _eb_environment(project: ProjectFacts, database: DatabaseSpec | None) -> dict[str, str]:
    """EB's environment properties (.ebextensions option_settings < overrides.yml < .env < the environment
    < --set), as EB's `docker run --env` gives them; devstack's settings (ports, KERNEL_IDLE_WAIT, the
    secrets) are devstack's, not the notebook's (spec/eb_env.py leaves them out)."""
    environment = project.environment.values()
    if database is not None:
        # What EB adds for the database it couples: RDS_HOSTNAME, and the four others filled in.
        environment.update(rds.notebook_variables(database.hostname, database.port, database.database,
                                                  database.user, database.password))
    return environment


def _notebook(settings: Settings, project: ProjectFacts, network: NetworkLayout,
              hostnames: tuple[str, ...], database: DatabaseSpec | None = None) -> ServiceSpec:
    environment = _eb_environment(project, database)
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
        image_origin=choice.flavor.image_setting,
        entrypoint=("/bin/sh", "-c"),
        command=(proxy_command(choice.flavor),),
        mounts=(MountSpec(proxy_dir, PROXY_MOUNT, read_only=True),),
        ports=tuple(PortSpec(settings.bind_address, listener.public_port, listener.nginx_port)
                    for listener in network.published) if network.publishes else (),
        extra_hosts=network.extra_hosts,
        labels=_labels(settings, "proxy"),
        # nginx finishes the requests in flight on SIGQUIT.
        stop_signal="SIGQUIT",
    )


def _host_ports(settings: Settings, network: NetworkLayout, database: DatabaseSpec | None = None
                ) -> tuple[HostPort, ...]:
    front = "lb" if settings.instances > 1 else "proxy"
    ports = [HostPort(settings.bind_address, listener.public_port, listener.setting,
                      f"the {'load balancer' if front == 'lb' else 'proxy'}'s {listener.title} listener", front,
                      fix=_moved_by(listener.setting))
             for listener in network.published]
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
