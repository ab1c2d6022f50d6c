"""Which nginx plays the EB host's proxy: stock nginx, or the OpenResty production's hook installs.

Each flavour is the layout of its official image: where its nginx reads its configuration when no
`-c` is given (devstack links the loaded configuration there, so that `nginx -T`, `nginx -t` and
`nginx -s reload` typed in the sidecar act on it), and the modules it has beyond stock nginx's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..proxy.modules import OPENRESTY_MODULES

FLAVOR_SETTING = "PROXY_FLAVOR"


@dataclass(frozen=True)
class Flavor:
    name: str  # the PROXY_FLAVOR value
    title: str
    conf_dir: str  # the image's configuration folder (its nginx's default prefix)
    modules: tuple[str, ...] = ()  # modules beyond stock nginx's
    image_setting: str = "NGINX_IMAGE"
    # Production's install script links OpenResty's folder to /etc/nginx, where EB and people look.
    links_etc_nginx: bool = False


NGINX = Flavor("nginx", "stock nginx", "/etc/nginx")
OPENRESTY = Flavor("openresty", "OpenResty", "/usr/local/openresty/nginx/conf", OPENRESTY_MODULES,
                   image_setting="OPENRESTY_IMAGE", links_etc_nginx=True)
FLAVORS = {flavor.name: flavor for flavor in (NGINX, OPENRESTY)}


@dataclass(frozen=True)
class ProxyChoice:
    """The flavour the sidecar runs, its image, and why (for `up`, `config` and `doctor`)."""

    flavor: Flavor
    image: str
    reason: str

    def describe(self) -> str:
        return f"proxy: {self.flavor.title} ({self.image}), {self.reason}"
