"""What the load balancer's declarations break in front of Jupyter, with several instances. Pure.

A Jupyter kernel lives in one process on one instance. Unless the load balancer keeps each browser
on one instance (an HTTP listener with a stickiness cookie), the browser's next request may go to
another instance, which does not know the kernel: Jupyter answers 404 and the notebook page loses it.
"""

from __future__ import annotations

from ..proxy.lint import Finding
from ..spec import StackSpec
from ..spec.balancer import EBEXTENSIONS

NOT_STICKY = "lb-not-sticky"
DECLARATION = "lb-declaration"

_BREAKS = ("a kernel started through one instance is unknown to the others: Jupyter answers 404 "
           "(Kernel does not exist) and the notebook page loses its kernel")
_STICKY_FIX = ("declare an HTTP listener for 3335 and stickiness: `aws:elb:listener:3335: ListenerProtocol: HTTP` "
               "and `aws:elb:policies: Stickiness Policy: true` (cookie AWSELB), or, with an Application Load "
               "Balancer, `aws:elasticbeanstalk:environment:process:default: StickinessEnabled: true` (AWSALB; "
               "on EB a Classic Load Balancer's HTTP listener does not pass websockets, an Application one's does)")


def lint_balancer(spec: StackSpec) -> list[Finding]:
    balancer = spec.balancer
    if balancer is None:
        return []
    findings = [Finding("warning", problem.path, problem.line, problem.what, "use a value EB accepts", DECLARATION)
                for problem in balancer.declarations.problems]
    count = len(balancer.backends)
    jupyter = next(listener for listener in balancer.listeners
                   if listener.port == spec.network.jupyter.nginx_port)
    folder = (spec.app.root or spec.state_dir.parent) / EBEXTENSIONS
    if jupyter.protocol == "TCP":
        where = jupyter.where
        findings.append(Finding(
            "warning", where.path if where else folder, where.line if where else None,
            f"the listener in front of Jupyter ({jupyter.port}) is TCP, with {count} instances: a TCP listener "
            f"cannot carry a stickiness cookie, so each connection may reach another instance and {_BREAKS}",
            _STICKY_FIX, NOT_STICKY))
    elif not balancer.stickiness.enabled:
        where = balancer.stickiness.where or jupyter.where
        findings.append(Finding(
            "warning", where.path if where else folder, where.line if where else None,
            f"stickiness is off ({'as declared' if balancer.stickiness.where else 'EB’s default'}) with {count} "
            f"instances: the load balancer sends a browser's requests to each instance in turn, so {_BREAKS}",
            _STICKY_FIX.replace("declare an HTTP listener for 3335 and stickiness: "
                                "`aws:elb:listener:3335: ListenerProtocol: HTTP` and ", "declare "),
            NOT_STICKY))
    return findings
