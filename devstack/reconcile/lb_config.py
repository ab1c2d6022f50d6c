"""Loading the load balancer's configuration: render it, check it with the real `haproxy -c` (in a
throwaway container of the load balancer's image), put it in place atomically, reload haproxy
(SIGUSR2 to its master: the connections it holds finish on the old configuration). A configuration
haproxy rejects never replaces the one being served."""

from __future__ import annotations

import os

from ..balancer.render import render_haproxy_config
from ..docker.engine import Engine
from ..errors import ProxyConfigError
from ..spec import LABEL_SERVICE, LB_CONFIG_DIR, LB_CONFIG_FILE, BalancerSpec, StackSpec
from ..state import ensure_state_dir

_STAGED = LB_CONFIG_FILE + ".next"


def current_lb_config(balancer: BalancerSpec) -> str | None:
    """The configuration in place (what the load balancer reads), or None."""
    try:
        return (balancer.config_dir / LB_CONFIG_FILE).read_text(encoding="utf-8")
    except OSError:
        return None


def load_lb_config(engine: Engine, spec: StackSpec) -> bool:
    """Check and put in place the configuration for the declarations; reload a running load balancer.
    Returns whether anything changed."""
    balancer = spec.balancer
    assert balancer is not None
    rendered = render_haproxy_config(balancer)
    if current_lb_config(balancer) == rendered:
        return False
    ensure_state_dir(spec.state_dir)
    balancer.config_dir.mkdir(parents=True, exist_ok=True)
    balancer.config_dir.chmod(0o755)  # haproxy runs as its own user
    staged = balancer.config_dir / _STAGED
    staged.write_text(rendered, encoding="utf-8")
    staged.chmod(0o644)
    service = spec.service(balancer.service)
    code, output = engine.run_once(service.image, ["haproxy"], ["-c", "-f", f"{LB_CONFIG_DIR}/{_STAGED}"],
                                   service.mounts, {**spec.labels, LABEL_SERVICE: "lb-check"})
    if code != 0:  # the staged file is kept, for reading; only a checked one is ever put in place
        problems = [line.strip() for line in output.splitlines() if "ALERT" in line]
        raise ProxyConfigError("haproxy rejected the load balancer's configuration, the running one is kept: "
                               + ("; ".join(problems) or output.strip()[-400:])
                               + f" (rendered from the project's .ebextensions: see {balancer.config_dir / _STAGED})")
    os.replace(staged, balancer.config_dir / LB_CONFIG_FILE)
    found = engine.container(service.container_name)
    if found is not None and found.running:
        engine.signal(found.id, found.name, "SIGUSR2")  # the master re-reads the file, workers hand over
    return True
