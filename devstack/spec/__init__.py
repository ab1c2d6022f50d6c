"""The stack as data: settings and the project's files become one frozen `StackSpec`."""

from .describe import describe_stack, load_stack, served_hostnames
from .model import (
    LABEL_CONFIG_HASH,
    LABEL_CONTEXT_HASH,
    LABEL_IMAGE,
    LABEL_PROJECT,
    LABEL_SERVICE,
    PROXY_MOUNT,
    PROXY_PREPARE,
    SECRETS_MOUNT,
    SIFU_MOUNT,
    HostPort,
    ImageSpec,
    MountSpec,
    PortSpec,
    ProxySpec,
    ServiceSpec,
    StackSpec,
    Upstream,
)
from .network import JUPYTER_CONTAINER_PORT, SIFU_CONTAINER_PORT, Listener, NetworkLayout, network_layout
from .project import DockerEnvsRequest, ProjectFacts, ProjectProxyFiles, read_project

__all__ = [
    "JUPYTER_CONTAINER_PORT", "SIFU_CONTAINER_PORT", "LABEL_CONFIG_HASH", "LABEL_CONTEXT_HASH", "LABEL_IMAGE", "LABEL_PROJECT", "LABEL_SERVICE", "PROXY_MOUNT",
    "PROXY_PREPARE", "SECRETS_MOUNT", "SIFU_MOUNT", "DockerEnvsRequest", "HostPort", "ImageSpec", "Listener",
    "MountSpec", "NetworkLayout", "PortSpec", "ProjectFacts", "ProjectProxyFiles", "ProxySpec", "ServiceSpec",
    "StackSpec", "Upstream", "describe_stack", "load_stack", "network_layout", "read_project", "served_hostnames",
]
