"""Replacing notebook containers as EB deploys a new version, whenever `up` or the watcher recreates them.

- Several instances (a load balancer in front), as `aws:elasticbeanstalk:command` declares
  (`DeploymentPolicy`, `BatchSize`; Rolling one instance at a time unless declared):
  - Rolling and AllAtOnce: batches in turn. A batch leaves the rotation (haproxy's `maint`: no new
    requests, those in flight finish), is replaced, its proxy pointed at the new address; once its
    processes answer it is put back, and the next batch waits until the load balancer's health
    checks have it in service again.
  - RollingWithAdditionalBatch, Immutable, TrafficSplitting: EB launches the new instances first, so
    the old ones serve until the new ones are in service. Here each instance gets the staging flip
    below behind its own proxy and never leaves the rotation (TrafficSplitting's evaluation period,
    a share of the traffic on the new version, is not mimicked: it is flipped as Immutable is).
- One instance: the staging flip of EB's own deploy. The new container starts beside the old one
  (the old renamed `<name>-previous`), the proxy's upstream flips to it by a reload (no restart) once
  it answers, then the old one is removed. If the new one never answers, it is removed and the old
  one keeps serving under its name.

Each step of the way is a `DeploymentProgress` event (batch K of M, and its phase), which the live view
and `status --json` show. Busy kernels are waited for before, as for any recreate (the watcher's
`before` hook, which asks every instance).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..balancer.runtime import admin_address, set_state
from ..errors import NotReady
from ..events import PHASE_BESIDE, PHASE_COMPLETE, PHASE_IN, PHASE_OUT, Acted, DeploymentProgress
from ..spec import LABEL_CONFIG_HASH, InstanceSpec
from .plan import Plan, Step, Verb, notebook_address

if TYPE_CHECKING:
    from .stack import Stack

READY_TIMEOUT = 180.0
PREVIOUS_SUFFIX = "-previous"
STAGING = "staging"  # the policy's name in progress events for one instance: EB's own single-instance deploy


def answers_check(*ports: int) -> list[str]:
    """A command run in a notebook container: exit 0 once every port answers HTTP (any status; a redirect
    is not followed: Sifu's points at the public URL, which means nothing inside the container)."""
    code = ("import http.client\n"
            f"for port in {tuple(ports)!r}:\n"
            "    c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)\n"
            "    c.request('GET', '/api/status')\n"
            "    c.getresponse()\n")
    return ["python3", "-c", code]


@dataclass(frozen=True)
class Batch:
    """The batch an instance is deployed in: its place among the batches, and the instances of it that
    are being replaced."""

    number: int  # 1-based
    count: int
    members: tuple[InstanceSpec, ...]
    last: bool  # no later batch has an instance to replace: this one ends the deployment

    def progress(self, policy: str, phase: str, message: str) -> DeploymentProgress:
        return DeploymentProgress(message, "lb", policy=policy, batch=self.number, batches=self.count,
                                  instances=tuple(m.number for m in self.members), phase=phase)


def batch_of(instance: InstanceSpec, instances: Sequence[InstanceSpec], per_batch: int,
             replaced: Callable[[InstanceSpec], bool]) -> Batch:
    """The batch `instance` belongs to when `per_batch` instances are deployed at a time (in instance
    order, as EB's batches go), counting only the instances that `replaced` says are replaced."""
    index = (instance.number - 1) // per_batch
    members = tuple(i for i in instances if (i.number - 1) // per_batch == index and replaced(i))
    later = any((i.number - 1) // per_batch > index and replaced(i) for i in instances)
    return Batch(index + 1, math.ceil(len(instances) / per_batch), members, not later)


class Deployer:
    """Replaces one stack's notebook containers without taking the environment down."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self._out: set[int] = set()  # instances out of the rotation (rolling), or being replaced (beside)
        self._replaced: set[int] = set()

    def handles(self, step: Step) -> bool:
        """A recreate of an instance's notebook container (what a new image or setting means)."""
        if step.verb is not Verb.RECREATE or not step.ready or not step.container_id:
            return False
        instance = self.stack.spec.instance(step.target)
        return instance is not None and instance.notebook == step.target

    def apply(self, step: Step, plan: Plan) -> None:
        balancer = self.stack.spec.balancer
        if balancer is not None and not balancer.deployment.keeps_capacity:
            self._rolling(step, plan)
        else:
            self._beside(step, plan)

    def _batch(self, step: Step, plan: Plan) -> tuple[InstanceSpec, Batch]:
        spec = self.stack.spec
        instance = spec.instance(step.target)
        assert instance is not None
        instances = spec.instance_list
        per_batch = spec.balancer.deployment.per_batch(len(instances)) if spec.balancer is not None else 1
        batch = batch_of(instance, instances, per_batch,
                         lambda i: i.number in self._out or i.number in self._replaced or plan.recreates(i.notebook))
        return instance, batch

    def _policy(self) -> str:
        balancer = self.stack.spec.balancer
        return balancer.deployment.policy if balancer is not None else STAGING

    def _batch_done(self, batch: Batch, policy: str) -> None:
        which = ", ".join(str(m.number) for m in batch.members)
        said = f"deployment ({policy}): batch {batch.number} of {batch.count} in service (instance {which})"
        if batch.last:
            self.stack.notify(batch.progress(policy, PHASE_COMPLETE, f"{said}: deployment complete"))
        else:
            self.stack.notify(batch.progress(policy, PHASE_IN, said))
        for member in batch.members:
            self._out.discard(member.number)
            self._replaced.discard(member.number)

    # -- rolling batches ---------------------------------------------------------------------------

    def _rolling(self, step: Step, plan: Plan) -> None:
        spec, applier = self.stack.spec, self.stack.applier()
        balancer = spec.balancer
        assert balancer is not None
        instance, batch = self._batch(step, plan)
        admin = self._admin()
        policy = balancer.deployment.policy
        if instance.number not in self._out:
            for member in batch.members:
                if admin is not None:
                    set_state(admin, balancer, _backend(member), "maint")
                self._out.add(member.number)
            size = balancer.deployment.per_batch(len(spec.instance_list))
            self.stack.notify(batch.progress(policy, PHASE_OUT, (
                f"deployment ({policy}, {size} at a time): batch {batch.number} of {batch.count}: instance "
                f"{', '.join(str(m.number) for m in batch.members)} out of the rotation")))
        applier.apply(step)
        applier.load_proxy_config(instance.proxy)
        self._replaced.add(instance.number)
        if not all(m.number in self._replaced for m in batch.members):
            return
        for member in batch.members:
            self._wait_answers(member)
            if admin is not None:
                set_state(admin, balancer, _backend(member), "ready")
        if admin is not None:
            self.stack.running.wait_instances(READY_TIMEOUT)
        self._batch_done(batch, policy)

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

    # -- the staging flip: the new container beside the old ---------------------------------------

    def _beside(self, step: Step, plan: Plan) -> None:
        spec, applier, engine = self.stack.spec, self.stack.applier(), self.stack.engine()
        service = spec.service(step.target)
        instance, batch = self._batch(step, plan)
        policy = self._policy()
        old = engine.container(step.container_id)
        if old is None or not old.running or service.ports or spec.network.host_mode:
            # Nothing serving to keep, or two containers cannot share what it binds (EXTRA_PORTS, the
            # host's ports): replaced in place, as before.
            applier.apply(step)
            if spec.balancer is not None:
                applier.load_proxy_config(instance.proxy)
        else:
            self._flip(step, instance, batch, policy)
        self._replaced.add(instance.number)
        if all(m.number in self._replaced for m in batch.members):
            self._batch_done(batch, policy)

    def _flip(self, step: Step, instance: InstanceSpec, batch: Batch, policy: str) -> None:
        spec, applier, engine = self.stack.spec, self.stack.applier(), self.stack.engine()
        service = spec.service(step.target)
        old = engine.container(step.container_id)
        assert old is not None
        if not self._out & {m.number for m in batch.members}:
            self.stack.notify(batch.progress(policy, PHASE_BESIDE, (
                f"deployment ({policy}): batch {batch.number} of {batch.count}: new containers start beside the "
                f"old ones (instance {', '.join(str(m.number) for m in batch.members)})")))
        self._out.add(instance.number)
        self.stack.notify(Acted(self.stack.redact(f"{step} (staging: the new container beside the old one)"),
                                step.target))
        previous = f"{service.container_name}{PREVIOUS_SUFFIX}"
        leftover = engine.container(previous)
        if spec.owns(leftover):
            engine.remove(leftover.id, previous)  # an earlier flip that did not finish
        engine.rename(old.id, old.name, previous)
        created = engine.create_container(service, spec.network.name, {LABEL_CONFIG_HASH: step.config_hash})
        engine.start(created, service.container_name)
        if not self._answers(created, READY_TIMEOUT):
            logs = self.stack.running.last_logs(step.target, lines=20)
            engine.remove(created, service.container_name)
            engine.rename(old.id, previous, service.container_name)
            self._out.discard(instance.number)
            raise NotReady(f"the new {service.container_name} did not answer within {READY_TIMEOUT:.0f}s: it was "
                           "removed, and the old one keeps serving", logs=logs)
        # The flip: the proxy's upstream to the new container, by a reload (connections kept).
        applier.loader(instance.proxy).load(notebook_address(spec, engine.container(created)))
        engine.remove(old.id, previous)
        applier.superseded(old.image_id)


def _backend(instance: InstanceSpec) -> str:
    return f"i{instance.number}"
