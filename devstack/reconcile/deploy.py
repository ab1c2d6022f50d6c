"""Replacing notebook containers as EB deploys a new version, whenever `up` or the watcher recreates them.

- Several instances (a load balancer in front): rolling batches, as `aws:elasticbeanstalk:command`
  declares them (`DeploymentPolicy`, `BatchSize`; one instance at a time unless declared). A batch
  leaves the rotation (haproxy's `maint`: no new requests, those in flight finish), is replaced, its
  proxy pointed at the new address; once its processes answer it is put back and the next batch waits
  until the load balancer's health checks have it in service again.
- One instance: the staging flip of EB's own deploy. The new container starts beside the old one
  (the old renamed `<name>-previous`), the proxy's upstream flips to it by a reload (no restart) once
  it answers, then the old one is removed. If the new one never answers, it is removed and the old
  one keeps serving under its name.

Busy kernels are waited for before, as for any recreate (the watcher's `before` hook).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from ..balancer.runtime import admin_address, set_state
from ..errors import NotReady
from ..events import Acted, Info
from ..spec import LABEL_CONFIG_HASH, LABEL_PROJECT, InstanceSpec
from .plan import Plan, Step, Verb, notebook_address

if TYPE_CHECKING:
    from .stack import Stack

READY_TIMEOUT = 180.0
PREVIOUS_SUFFIX = "-previous"


def answers_check(*ports: int) -> list[str]:
    """A command run in a notebook container: exit 0 once every port answers HTTP (any status; a redirect
    is not followed: Sifu's points at the public URL, which means nothing inside the container)."""
    code = ("import http.client\n"
            f"for port in {tuple(ports)!r}:\n"
            "    c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)\n"
            "    c.request('GET', '/api/status')\n"
            "    c.getresponse()\n")
    return ["python3", "-c", code]


class Deployer:
    """Replaces one stack's notebook containers without taking the environment down."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self._out: dict[int, int] = {}  # instances out of the rotation -> their batch
        self._replaced: set[int] = set()

    def handles(self, step: Step) -> bool:
        """A recreate of an instance's notebook container (what a new image or setting means)."""
        if step.verb is not Verb.RECREATE or not step.ready or not step.container_id:
            return False
        instance = self.stack.spec.instance(step.target)
        return instance is not None and instance.notebook == step.target

    def apply(self, step: Step, plan: Plan) -> None:
        if self.stack.spec.balancer is not None:
            self._rolling(step, plan)
        else:
            self._staging(step)

    # -- several instances: rolling batches -----------------------------------------------------

    def _rolling(self, step: Step, plan: Plan) -> None:
        spec, applier = self.stack.spec, self.stack.applier()
        balancer = spec.balancer
        assert balancer is not None
        instances = spec.instance_list
        instance = spec.instance(step.target)
        assert instance is not None
        size = balancer.deployment.batches(len(instances))
        batch = (instance.number - 1) // size
        batches = math.ceil(len(instances) / size)
        members = [i for i in instances if (i.number - 1) // size == batch
                   and (i.number in self._out or plan.recreates(i.notebook))]
        admin = self._admin()
        policy = balancer.deployment.policy
        if instance.number not in self._out:
            for member in members:
                if admin is not None:
                    set_state(admin, balancer, _backend(member), "maint")
                self._out[member.number] = batch
            rolled = "" if policy in ("Rolling", "AllAtOnce") else f" ({policy} is rolled here)"
            self.stack.notify(Info(f"deployment ({policy}{rolled}, {size} at a time): batch {batch + 1} of "
                                   f"{batches}: instance {', '.join(str(m.number) for m in members)} out of the "
                                   "rotation", "lb"))
        applier.apply(step)
        applier.load_proxy_config(instance.proxy)
        self._replaced.add(instance.number)
        if not all(m.number in self._replaced for m in members):
            return
        for member in members:
            self._wait_answers(member)
            if admin is not None:
                set_state(admin, balancer, _backend(member), "ready")
        if admin is not None:
            self.stack.running.wait_instances(READY_TIMEOUT)
        for member in members:
            self._out.pop(member.number, None)
            self._replaced.discard(member.number)
        self.stack.notify(Info(f"deployment: batch {batch + 1} of {batches} back in service "
                               f"(instance {', '.join(str(m.number) for m in members)})", "lb"))

    def _admin(self) -> tuple[str, int] | None:
        balancer = self.stack.spec.balancer
        found = self.stack.running.container(balancer.service) if balancer is not None else None
        return admin_address(found.ports) if found is not None and found.running else None

    def _wait_answers(self, instance: InstanceSpec) -> None:
        container = self.stack.running.container(instance.notebook)
        if container is None or not self._answers(container.id, READY_TIMEOUT):
            raise NotReady(f"instance {instance.number}'s new notebook container does not answer after "
                           f"{READY_TIMEOUT:.0f}s: it stays out of the rotation", logs=self.stack.running.last_logs(
                               instance.notebook, lines=20))

    def _answers(self, container_id: str, timeout: float) -> bool:
        network = self.stack.spec.network
        engine = self.stack.engine()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = engine.container(container_id)
            if found is None or not found.running:
                return False
            code, _ = engine.exec(container_id, answers_check(network.sifu.process_port,
                                                              network.jupyter.process_port))
            if code == 0:
                return True
            time.sleep(0.25)
        return False

    # -- one instance: the staging flip -------------------------------------------------------------

    def _staging(self, step: Step) -> None:
        spec, applier, engine = self.stack.spec, self.stack.applier(), self.stack.engine()
        service = spec.service(step.target)
        old = engine.container(step.container_id)
        if old is None or not old.running or service.ports or spec.network.host_mode:
            # Nothing serving to keep, or two containers cannot share what it binds (EXTRA_PORTS, the
            # host's ports): replaced in place, as before.
            applier.apply(step)
            return
        self.stack.notify(Acted(self.stack.redact(f"{step} (staging: the new container beside the old one)"),
                                step.target))
        previous = f"{service.container_name}{PREVIOUS_SUFFIX}"
        leftover = engine.container(previous)
        if leftover is not None and leftover.labels.get(LABEL_PROJECT) == spec.project:
            engine.remove(leftover.id, previous)  # an earlier flip that did not finish
        engine.rename(old.id, old.name, previous)
        created = engine.create_container(service, spec.network.name, {LABEL_CONFIG_HASH: step.config_hash})
        engine.start(created, service.container_name)
        if not self._answers(created, READY_TIMEOUT):
            logs = self.stack.running.last_logs(step.target, lines=20)
            engine.remove(created, service.container_name)
            engine.rename(old.id, previous, service.container_name)
            raise NotReady(f"the new {service.container_name} did not answer within {READY_TIMEOUT:.0f}s: it was "
                           "removed, and the old one keeps serving", logs=logs)
        # The flip: the proxy's upstream to the new container, by a reload (connections kept).
        applier.loader(spec.instance_list[0].proxy).load(notebook_address(spec, engine.container(created)))
        engine.remove(old.id, previous)
        applier.superseded(old.image_id)


def _backend(instance: InstanceSpec) -> str:
    return f"i{instance.number}"
