"""haproxy.cfg for the load balancer, from what the project declares. Pure: the BalancerSpec in, text out.

How ELB's behaviour is written in haproxy's terms:

- a listener is a frontend on its port (3334, 3335 inside the container, published on SIFU_PORT and
  JUPYTER_PORT) in `mode http` or `mode tcp`, to a backend holding every instance's proxy at the
  listener's instance port; HTTP listeners add X-Forwarded-For, -Proto and -Port, as ELB's do;
- instances are taken in turn (`balance roundrobin`);
- stickiness is ELB's duration-based cookie (AWSELB, or the ALB's AWSALB), inserted by the load
  balancer and naming the instance; a TCP listener cannot carry a cookie, so it has none, as on EB;
- the health check is one per instance, as ELB's: the first backend checks each proxy (TCP connect,
  or GET of the path expecting 200) every Interval, failing after Timeout; UnhealthyThreshold
  failures take the instance out of every listener, HealthyThreshold successes bring it back
  (the other backends `track` the first);
- idle connections close after the idle timeout (ELB's 60 s unless declared);
- the proxies are found by their container names through the engine's DNS (re-resolved every
  second), so a recreated instance's new address needs no new configuration.
"""

from __future__ import annotations

from ..spec import LB_ADMIN_PORT, LB_STATS_PORT, BalancerSpec
from ..spec.balancer import LbListener

HEADER = "# Written by devstack from the project's load balancer declarations (.ebextensions). Do not edit.\n"
_NAMES = {3334: "sifu", 3335: "jupyter", 80: "http"}
# haproxy's httplog without the query string: Sifu's redirect carries Jupyter's token there (`?token=`).
HTTP_LOG = ('"%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq '
            '{%HM %HPO %HV}"')


def listener_name(listener: LbListener) -> str:
    return _NAMES.get(listener.port, f"port{listener.port}")


def render_haproxy_config(balancer: BalancerSpec) -> str:
    health = balancer.health
    idle = balancer.idle_timeout
    lines = [
        HEADER,
        "global",
        "    log stdout format raw local0 info",
        f"    stats socket ipv4@0.0.0.0:{LB_ADMIN_PORT} level admin",
        "",
        "resolvers engine",
        "    nameserver dns 127.0.0.11:53",
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        "    hold valid 1s",
        "    hold obsolete 1s",
        "    hold nx 1s",
        "    hold refused 1s",
        "    hold timeout 1s",
        "",
        "defaults",
        "    log global",
        "    option dontlognull",
        "    timeout connect 5s",
        f"    timeout client {idle}s",
        f"    timeout server {idle}s",
        f"    timeout tunnel {idle}s",
        f"    timeout check {health.timeout}s",
        f"    default-server inter {health.interval}s fall {health.unhealthy} rise {health.healthy} "
        "resolvers engine init-addr last,libc,none",
        "",
        "listen stats",
        f"    bind :{LB_STATS_PORT}",
        "    mode http",
        "    stats enable",
        "    stats uri /stats",
        "",
    ]
    checker = listener_name(balancer.listeners[0])
    for index, listener in enumerate(balancer.listeners):
        name = listener_name(listener)
        mode = "http" if listener.protocol == "HTTP" else "tcp"
        lines += [
            f"frontend {name}",
            f"    bind :{listener.port}",
            f"    mode {mode}",
            *([f"    log-format {HTTP_LOG}"] if mode == "http" else ["    option tcplog"]),
            f"    default_backend {name}",
            "",
            f"backend {name}",
            f"    mode {mode}",
            "    balance roundrobin",
        ]
        if mode == "http":
            lines += [
                "    option forwardfor",
                "    http-request set-header X-Forwarded-Proto http",
                "    http-request set-header X-Forwarded-Port %[dst_port]",
            ]
            if balancer.stickiness.enabled:
                life = f" maxlife {balancer.stickiness.duration}s" if balancer.stickiness.duration else ""
                lines.append(f"    cookie {balancer.stickiness.cookie} insert indirect nocache{life}")
        if index == 0 and health.protocol == "HTTP":
            lines += [
                "    option httpchk",
                f"    http-check send meth GET uri {health.path} ver HTTP/1.1 hdr Host {balancer.hostname}",
                "    http-check expect status 200",
            ]
        for backend in balancer.backends:
            server = f"    server {backend.name} {backend.host}:{listener.instance_port}"
            server += f" check port {health.port}" if index == 0 else f" track {checker}/{backend.name}"
            if mode == "http" and balancer.stickiness.enabled:
                server += f" cookie {backend.name}"
            lines.append(server)
        lines.append("")
    return "\n".join(lines)
