# Production's Jupyter Notebook configuration, driven by the environment that
# devstack (or docker compose) gives the container.
import os
import re

from notebook.log import log_request

c = get_config()  # noqa: F821 - provided by Jupyter

edx_origin = os.environ.get("EDX_ORIGIN", "http://localhost:8000")

c.NotebookApp.ip = "0.0.0.0"
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
