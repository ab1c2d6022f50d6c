# Production's Jupyter Notebook configuration, driven by the environment that
# devstack (or docker compose) gives the container.
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
c.NotebookApp.allow_remote_access = True
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

_TOKEN_IN_URI = re.compile(r"([?&]token=)[^&]*")


def log_request_without_token(handler):
    """Jupyter logs redirects with their full URI; a token there must not reach the logs."""
    handler.request.uri = _TOKEN_IN_URI.sub(r"\1[redacted]", handler.request.uri)
    log_request(handler)


c.NotebookApp.tornado_settings = {
    "headers": {"Content-Security-Policy": f"frame-ancestors 'self' {edx_origin}"},
    "log_function": log_request_without_token,
}
