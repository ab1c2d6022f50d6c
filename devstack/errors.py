"""The one family of errors devstack raises.

The core raises these and never prints or exits; the command line is the only
place that turns one into a red line on stderr and an exit code.
"""


class DevstackError(Exception):
    """A problem the user can act on. The message is one line: what is wrong, and what to do."""

    exit_code = 1


class ConfigError(DevstackError):
    """A setting, a `.env` line or a flag is invalid."""

    exit_code = 2


class EngineUnavailable(DevstackError):
    """The Docker Engine does not answer."""


class EngineError(DevstackError):
    """The Docker Engine refused an operation."""


class ConflictError(DevstackError):
    """Something devstack needs (a name, a port) is held by something it does not own."""


class BuildError(DevstackError):
    """An image build failed; carries the failing step and the end of its output."""

    def __init__(self, message: str, step: str = "", tail: list[str] | None = None):
        super().__init__(message)
        self.step = step
        self.tail = tail or []


class BuildCancelled(DevstackError):
    """A build was cancelled because devstack is ending (Ctrl-C, SIGTERM, SIGHUP)."""


class NotReady(DevstackError):
    """A readiness probe timed out; names the hop, the URL and the container's last log lines."""

    def __init__(self, message: str, logs: list[str] | None = None):
        super().__init__(message)
        self.logs = logs or []


class ProxyConfigError(DevstackError):
    """nginx rejected a proxy configuration; the running one is kept."""


class FetchError(DevstackError):
    """Sifu's source could not be fetched on the host (git missing, refused, unreachable)."""

    def __init__(self, message: str, category: str = "other"):
        super().__init__(message)
        self.category = category  # credentials, auth, not-found, unreachable, host-key, tls, timeout, other
