"""The stack as data: settings and the project's files become one frozen `StackSpec`."""

from .describe import describe_stack, load_stack, served_hostnames
from .model import (
    BUILD_DOCKER_ENVS,
    LABEL_CONFIG_HASH,
    LABEL_CONTEXT_HASH,
    LABEL_IMAGE,
    LABEL_INSTANCE,
    LABEL_PROJECT,
    LABEL_SERVICE,
    PROXY_MOUNT,
    SECRETS_MOUNT,
    SIFU_MOUNT,
    DatabaseSpec,
    LB_ADMIN_PORT,
    LB_CONFIG_DIR,
    LB_CONFIG_FILE,
    LB_STATS_PORT,
    BalancerSpec,
    HostPort,
    InstanceSpec,
    LbBackend,
    ImageSpec,
    MountSpec,
    PortSpec,
    ProxySpec,
    ServiceSpec,
    StackSpec,
    Upstream,
    VolumeMount,
    link_loaded_config,
    proxy_command,
    proxy_prepare,
)
from .flavor import FLAVORS, NGINX, OPENRESTY, Flavor, ProxyChoice
from .network import JUPYTER_CONTAINER_PORT, SIFU_CONTAINER_PORT, Listener, NetworkLayout, network_layout
from .project import DockerEnvsRequest, ProjectFacts, ProjectProxyFiles, read_project

__all__ = [
    "JUPYTER_CONTAINER_PORT", "SIFU_CONTAINER_PORT", "LABEL_CONFIG_HASH", "LABEL_CONTEXT_HASH", "LABEL_IMAGE", "LABEL_PROJECT", "LABEL_SERVICE", "PROXY_MOUNT",
    "BUILD_DOCKER_ENVS", "SECRETS_MOUNT", "SIFU_MOUNT", "DatabaseSpec", "DockerEnvsRequest", "VolumeMount", "HostPort", "ImageSpec", "Listener",
    "MountSpec", "NetworkLayout", "PortSpec", "ProjectFacts", "ProjectProxyFiles", "ProxySpec", "ServiceSpec",
    "StackSpec", "Upstream", "describe_stack", "load_stack", "network_layout", "read_project", "served_hostnames",
    "LABEL_INSTANCE", "LB_ADMIN_PORT", "LB_CONFIG_DIR", "LB_CONFIG_FILE", "LB_STATS_PORT", "BalancerSpec", "InstanceSpec",
    "LbBackend", "FLAVORS", "NGINX", "OPENRESTY", "Flavor", "ProxyChoice", "link_loaded_config", "proxy_command", "proxy_prepare",
]
