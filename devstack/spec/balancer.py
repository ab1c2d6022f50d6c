"""What the project's `.ebextensions` declare for the environment's load balancer, read at the edge.

EB reads every `.ebextensions/*.config` in name order, a later file's setting replacing an earlier
one's. The load balancer's part of them, each kept with the file and line that say it:

- listeners: `Resources: AWSEBLoadBalancer: Properties: Listeners` (production's resources.config:
  TCP on 80, 3334 and 3335) and `option_settings` `aws:elb:listener:PORT` (`ListenerProtocol`,
  `InstancePort`);
- stickiness: `aws:elb:policies` `Stickiness Policy` (the Classic Load Balancer's cookie, AWSELB) or
  `aws:elasticbeanstalk:environment:process:default` `StickinessEnabled` (the Application Load
  Balancer's, AWSALB); off unless declared, as on EB;
- health checks: `aws:elb:healthcheck` (`Interval`, `Timeout`, `HealthyThreshold`,
  `UnhealthyThreshold`, `Target`) and `aws:elasticbeanstalk:application` `Application Healthcheck URL`,
  with EB's defaults (10 s, 5 s, 3, 5, TCP);
- deployments: `aws:elasticbeanstalk:command` `DeploymentPolicy`, `BatchSizeType`, `BatchSize`.

Reading only; a file EB could not parse is skipped here as EB skips it (the app lint names it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .evidence import Evidence
from .options import option_settings

EBEXTENSIONS = Path(".ebextensions")
CLB_COOKIE = "AWSELB"  # the Classic Load Balancer's duration-based stickiness cookie
ALB_COOKIE = "AWSALB"  # the Application Load Balancer's
PROTOCOLS = ("HTTP", "TCP")
DEPLOYMENT_POLICIES = ("AllAtOnce", "Rolling", "RollingWithAdditionalBatch", "Immutable", "TrafficSplitting")
# EB launches new instances first for these (an additional batch, a new Auto Scaling group): full capacity throughout.
CAPACITY_KEEPING_POLICIES = ("RollingWithAdditionalBatch", "Immutable", "TrafficSplitting")


@dataclass(frozen=True)
class LbListener:
    """One listener: the load balancer's port, its protocol, and the instance port it forwards to."""

    port: int
    protocol: str  # HTTP or TCP (HTTPS and SSL terminate TLS, which a laptop has no certificate for)
    instance_port: int
    where: Evidence | None = None  # the line declaring it; None: devstack's default


@dataclass(frozen=True)
class Stickiness:
    enabled: bool = False
    cookie: str = CLB_COOKIE
    duration: int = 0  # seconds the cookie lasts; 0: as long as the browser session
    where: Evidence | None = None


@dataclass(frozen=True)
class HealthCheck:
    interval: int = 10
    timeout: int = 5
    healthy: int = 3
    unhealthy: int = 5
    protocol: str = "TCP"  # TCP: a connection is enough; HTTP: the path must answer 200
    port: int | None = None  # None: the first listener's instance port
    path: str = ""
    where: Evidence | None = None

    @property
    def target(self) -> str:
        port = "" if self.port is None else str(self.port)
        return f"{self.protocol}:{port}{self.path}" if self.protocol == "HTTP" else f"TCP:{port}"


@dataclass(frozen=True)
class Deployment:
    policy: str = "Rolling"
    batch_size_type: str = "Fixed"  # Percentage or Fixed
    batch_size: int = 1  # unless declared: one instance at a time
    where: Evidence | None = None

    @property
    def keeps_capacity(self) -> bool:
        """Whether the old instances serve until the new ones are in service (new ones launched beside
        them), rather than batches leaving the rotation to be replaced."""
        return self.policy in CAPACITY_KEEPING_POLICIES

    def per_batch(self, instances: int) -> int:
        """Instances per batch (at least one). Immutable and TrafficSplitting launch every new instance at once."""
        if self.policy in ("AllAtOnce", "Immutable", "TrafficSplitting"):
            return instances
        if self.batch_size_type == "Fixed":
            return max(1, min(instances, self.batch_size))
        return max(1, min(instances, instances * self.batch_size // 100))


@dataclass(frozen=True)
class BalancerDeclarations:
    listeners: tuple[LbListener, ...] = ()  # as declared (a later declaration of a port replaces one)
    stickiness: Stickiness = field(default_factory=Stickiness)
    health: HealthCheck = field(default_factory=HealthCheck)
    deployment: Deployment = field(default_factory=Deployment)
    idle_timeout: int = 60  # aws:elb:policies ConnectionSettingIdleTimeout
    problems: tuple[Evidence, ...] = ()  # values EB would refuse, each with its line


def read_balancer(project_dir: Path) -> BalancerDeclarations:
    """The load balancer's declarations in the project's `.ebextensions` (EB's defaults otherwise)."""
    reader = _Reader()
    folder = project_dir / EBEXTENSIONS
    for path in sorted(folder.glob("*.config")) if folder.is_dir() else ():
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(root, yaml.MappingNode):
            reader.read(path, root)
    return reader.result()


# -- reading YAML nodes (composed, not constructed: CloudFormation's !Ref tags stay harmless) ---------


def _items(node: yaml.Node) -> list[tuple[str, yaml.Node, int]]:
    if not isinstance(node, yaml.MappingNode):
        return []
    return [(str(key.value), value, key.start_mark.line + 1) for key, value in node.value
            if isinstance(key, yaml.ScalarNode)]


def _child(node: yaml.Node, name: str) -> yaml.Node | None:
    return next((value for key, value, _ in _items(node) if key == name), None)


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value).strip() if isinstance(node, yaml.ScalarNode) else None


class _Reader:
    def __init__(self) -> None:
        self.listeners: dict[int, LbListener] = {}
        self.options: dict[tuple[str, str], tuple[str, Evidence]] = {}
        self.problems: list[Evidence] = []

    def read(self, path: Path, root: yaml.MappingNode) -> None:
        resources = _child(root, "Resources")
        balancer = _child(_child(resources, "AWSEBLoadBalancer") or yaml.MappingNode("", []), "Properties") \
            if resources is not None else None
        listeners = _child(balancer, "Listeners") if balancer is not None else None
        if isinstance(listeners, yaml.SequenceNode):
            for entry in listeners.value:
                values = {key: _scalar(value) for key, value, _ in _items(entry)}
                self._listener(path, entry.start_mark.line + 1, values.get("LoadBalancerPort"),
                               values.get("Protocol"), values.get("InstancePort"), "Listeners")
        for setting in option_settings(root):
            if setting.text is not None:
                self.options[(setting.namespace, setting.option)] = (setting.text, Evidence(
                    path, setting.line, f"{setting.namespace} {setting.option}: {setting.text}"))

    def _listener(self, path: Path, line: int, port: str | None, protocol: str | None, instance: str | None,
                  what: str) -> None:
        where = Evidence(path, line, f"{what}: {protocol} {port} -> {instance}")
        if port is None or not port.isdigit():
            self.problems.append(Evidence(path, line, f"a listener without a LoadBalancerPort ({port!r})"))
            return
        proto = (protocol or "HTTP").upper()
        if proto not in PROTOCOLS:
            self.problems.append(Evidence(path, line, f"listener {port} is {proto}: devstack's load balancer has no "
                                          "certificate, so it serves it as "
                                          + ("HTTP" if proto == "HTTPS" else "TCP")))
            proto = "HTTP" if proto == "HTTPS" else "TCP"
        target = int(instance) if instance is not None and instance.isdigit() else int(port)
        self.listeners[int(port)] = LbListener(int(port), proto, target, where)

    def result(self) -> BalancerDeclarations:
        for (namespace, option), (value, where) in self.options.items():
            match = re.fullmatch(r"aws:elb:listener:(\d+)", namespace)
            if match is None:
                continue
            port = int(match[1])
            old = self.listeners.get(port, LbListener(port, "HTTP", port))
            if option == "ListenerProtocol":
                self._listener(where.path, where.line, str(port), value, str(old.instance_port), namespace)
            elif option == "InstancePort":
                self._listener(where.path, where.line, str(port), old.protocol, value, namespace)
        stickiness, health, deployment = self._stickiness(), self._health(), self._deployment()
        idle = self._number("aws:elb:policies", "ConnectionSettingIdleTimeout", 60, 1, 3600)
        return BalancerDeclarations(
            listeners=tuple(sorted(self.listeners.values(), key=lambda listener: listener.port)),
            stickiness=stickiness, health=health, deployment=deployment, idle_timeout=idle,
            problems=tuple(self.problems))

    def _option(self, namespace: str, option: str) -> tuple[str, Evidence] | None:
        return self.options.get((namespace, option))

    def _number(self, namespace: str, option: str, default: int, low: int, high: int) -> int:
        found = self._option(namespace, option)
        if found is None:
            return default
        value, where = found
        if not value.isdigit() or not low <= int(value) <= high:
            self.problems.append(Evidence(where.path, where.line, f"{namespace} {option} is {value!r}: EB accepts "
                                          f"{low} to {high}, so devstack uses its default, {default}"))
            return default
        return int(value)

    def _stickiness(self) -> Stickiness:
        clb = self._option("aws:elb:policies", "Stickiness Policy")
        alb = self._option("aws:elasticbeanstalk:environment:process:default", "StickinessEnabled")
        if clb is not None and _true(clb[0]):
            duration = self._number("aws:elb:policies", "Stickiness Cookie Expiration", 0, 0, 1000000)
            return Stickiness(True, CLB_COOKIE, duration, clb[1])
        if alb is not None and _true(alb[0]):
            duration = self._number("aws:elasticbeanstalk:environment:process:default",
                                    "StickinessLBCookieDuration", 86400, 1, 604800)
            return Stickiness(True, ALB_COOKIE, duration, alb[1])
        off = clb or alb
        return Stickiness(False, where=off[1] if off else None)

    def _health(self) -> HealthCheck:
        ns = "aws:elb:healthcheck"
        protocol, port, path, where = "TCP", None, "", None
        for namespace, option in ((ns, "Target"), ("aws:elasticbeanstalk:application", "Application Healthcheck URL")):
            found = self._option(namespace, option)
            if found is None or not found[0]:
                continue
            parsed = _health_target(found[0])
            if parsed is None:
                self.problems.append(Evidence(found[1].path, found[1].line, f"{option} {found[0]!r} is not a health "
                                              "check target (write /path, HTTP:PORT/path or TCP:PORT)"))
                continue
            (protocol, port, path), where = parsed, found[1]
        timings = [self._option(ns, o) for o in ("Interval", "Timeout", "HealthyThreshold", "UnhealthyThreshold")]
        where = where or next((found[1] for found in timings if found is not None), None)
        return HealthCheck(
            interval=self._number(ns, "Interval", 10, 5, 300), timeout=self._number(ns, "Timeout", 5, 2, 60),
            healthy=self._number(ns, "HealthyThreshold", 3, 2, 10),
            unhealthy=self._number(ns, "UnhealthyThreshold", 5, 2, 10),
            protocol=protocol, port=port, path=path, where=where)

    def _deployment(self) -> Deployment:
        ns = "aws:elasticbeanstalk:command"
        policy = self._option(ns, "DeploymentPolicy")
        kind = self._option(ns, "BatchSizeType")
        size = self._option(ns, "BatchSize")
        name = "Rolling"
        if policy is not None:
            name = next((p for p in DEPLOYMENT_POLICIES if p.lower() == policy[0].lower()), "")
            if not name:
                self.problems.append(Evidence(policy[1].path, policy[1].line, f"DeploymentPolicy {policy[0]!r} is not "
                                              f"one of {', '.join(DEPLOYMENT_POLICIES)}: devstack rolls"))
                name = "Rolling"
        # Nothing declared: one instance at a time. A BatchSize without a type is a percentage, as on EB.
        fixed = kind[0].lower() == "fixed" if kind is not None else size is None
        batch = self._number(ns, "BatchSize", 1 if fixed else 100, 1, 10000 if fixed else 100)
        where = next((found[1] for found in (policy, size, kind) if found is not None), None)
        return Deployment(name, "Fixed" if fixed else "Percentage", batch, where)


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1")


def _health_target(value: str) -> tuple[str, int | None, str] | None:
    """`/path` (HTTP on the first listener's port), `HTTP:PORT/path` or `TCP:PORT`."""
    if value.startswith("/"):
        return "HTTP", None, value
    match = re.fullmatch(r"(HTTPS?|TCP|SSL):(\d+)(/.*)?", value.strip(), re.IGNORECASE)
    if match is None:
        return None
    protocol = "HTTP" if match[1].upper().startswith("HTTP") else "TCP"
    return protocol, int(match[2]), (match[3] or "/") if protocol == "HTTP" else ""
