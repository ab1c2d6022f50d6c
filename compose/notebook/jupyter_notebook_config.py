# Production's Jupyter Notebook configuration, driven by the environment that
# devstack (or docker compose) gives the container.
import ipaddress
import os
import re

from notebook.log import log_request

c = get_config()  # noqa: F821 - provided by Jupyter

edx_origin = os.environ.get("EDX_ORIGIN", "http://localhost:8000")

# 0.0.0.0 on the stack's own network; 127.0.0.1 when the container shares the
# host's network (NETWORK_MODE=host), so that only the proxy, with its cookie gate, is reachable.
c.NotebookApp.ip = os.environ.get("NOTEBOOK_LISTEN_ADDRESS", "0.0.0.0")
c.NotebookApp.port = int(os.environ.get("JUPYTER_LISTEN_PORT", "3335"))
c.NotebookApp.port_retries = 0
c.NotebookApp.open_browser = False
c.NotebookApp.notebook_dir = "/notebooks"
# DNS rebinding: Jupyter answers only to the Host names the stack is served under (devstack passes
# them; Jupyter's own default is localhost), so that a web page whose name is re-pointed at this
# machine cannot start a kernel, even behind a project's own proxy files that let any Host through.
c.NotebookApp.allow_remote_access = False
hostnames = [name for name in os.environ.get("DEVSTACK_HOSTNAMES", "localhost").split(",") if name]
c.NotebookApp.local_hostnames = hostnames
c.NotebookApp.trust_xheaders = True
# The notebook user is the owner of the host's notebooks folder, root included.
c.NotebookApp.allow_root = os.getuid() == 0
# The edX site frames the notebook and calls its API with credentials.
c.NotebookApp.allow_origin = edx_origin
c.NotebookApp.allow_credentials = True
# The kernel websocket opens on the origin the page came from: the local proxy.
# Production may name its EB hostname here; devstack never does (the browser
# would then leave the local stack for EB).
c.NotebookApp.websocket_url = ""
# The token comes from JUPYTER_TOKEN_FILE (Jupyter reads it itself), so it is
# never printed in the startup banner.
c.NotebookApp.login_handler_class = "sifu_gate.SifuGateLoginHandler"
# Every instance of the environment (INSTANCES > 1) signs Jupyter's login cookie with the project's
# one secret, so a browser the load balancer sends to another instance stays logged in there: what
# that instance does not have is the kernels started on the first.
_COOKIE_SECRET_FILE = "/run/devstack/jupyter_cookie_secret"
if os.path.exists(_COOKIE_SECRET_FILE):
    c.NotebookApp.cookie_secret_file = _COOKIE_SECRET_FILE


def _allow_listed_addresses(addresses):
    """Jupyter lets through IP literals only when they are loopback; an address the stack is served
    on (BIND_ADDRESS, ALLOWED_HOSTS) is no rebinding risk (a page cannot make a browser send another
    site's address as Host), so it is let through too."""
    from notebook.base.handlers import IPythonHandler

    check_host = IPythonHandler.check_host

    def check_host_or_listed_address(handler):
        host = re.match(r"^(.*?)(:\d+)?$", handler.request.host).group(1).strip("[]").lower()
        return host in addresses or check_host(handler)

    IPythonHandler.check_host = check_host_or_listed_address


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_addresses = {name for name in hostnames if _is_ip(name)}
if _addresses:
    _allow_listed_addresses(_addresses)

_TOKEN_IN_URI = re.compile(r"([?&]token=)[^&]*")


def log_request_without_token(handler):
    """Jupyter logs redirects with their full URI; a token there must not reach the logs."""
    handler.request.uri = _TOKEN_IN_URI.sub(r"\1[redacted]", handler.request.uri)
    log_request(handler)


c.NotebookApp.tornado_settings = {
    "headers": {"Content-Security-Policy": f"frame-ancestors 'self' {edx_origin}"},
    "log_function": log_request_without_token,
}
