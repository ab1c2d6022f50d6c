"""An in-memory engine with the surface of `devstack.docker.engine.Engine`, for the planner and the
applier's own logic (what real containers do is tested against the real engine).

It keeps images, containers and networks as records and logs every change it is asked for,
so a test can say what applying a plan did and that a second plan is empty.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from devstack.docker.engine import ContainerInfo, ImageInfo, NetworkInfo, VolumeInfo
from devstack.errors import ConflictError, EngineError
from devstack.spec import LABEL_PROJECT, LABEL_SERVICE

_ids = itertools.count(1)


class MemoryEngine:
    """What an Engine is asked, answered from memory. `ops` records every change, in order."""

    def __init__(self, images: dict[str, dict[str, str]] | None = None):
        self.image_records: dict[str, ImageInfo] = {}  # by ID
        self.records: dict[str, ContainerInfo] = {}  # containers by ID
        self.network_records: dict[str, NetworkInfo] = {}  # by ID (two may share a name, as in the engine)
        self.attachments: dict[str, str] = {}  # container ID -> the network ID it was created on
        self.volume_records: dict[str, VolumeInfo] = {}  # by name
        self.build_networks: list[str] = []  # the network each build ran on ("" the default)
        self.ops: list[str] = []
        self.builds = 0
        self.fail_builds: list[Exception] = []  # raised by the next builds, in turn
        self.on_build = None  # called as each build starts (a user saving meanwhile, say)
        self.exec_results: dict[str, tuple[int, str]] = {}  # a command's first word -> (exit code, output)
        self.logs: dict[str, list[str]] = {}  # a container's log lines, by ID
        self.stop_timeouts: dict[str, int] = {}  # the timeout each container was last stopped with, by name
        self.fail_stops: dict[str, Exception] = {}  # raised when the container of that name is stopped
        for ref, labels in (images or {}).items():
            self.add_image(ref, labels)

    # -- images ---------------------------------------------------------------------

    def add_image(self, ref: str, labels: dict[str, str] | None = None) -> ImageInfo:
        found = ImageInfo(f"sha256:{next(_ids):012d}", (ref,), dict(labels or {}), None)
        for key, other in list(self.image_records.items()):  # the tag moves to the new image
            if ref in other.tags:
                self.image_records[key] = replace(other, tags=tuple(t for t in other.tags if t != ref))
        self.image_records[found.id] = found
        return found

    def image(self, ref: str) -> ImageInfo | None:
        return self.image_records.get(ref) or next((i for i in self.image_records.values() if ref in i.tags), None)

    def build(self, context, tag, build_args, labels, no_cache=False, on_event=None, network="") -> str:  # noqa: ANN001
        self.builds += 1
        self.build_networks.append(network)
        self.ops.append(f"build {tag}")
        if self.on_build is not None:
            self.on_build()
        if self.fail_builds:
            raise self.fail_builds.pop(0)
        return self.add_image(tag, _labels_from_dockerfile(context) | labels).id

    def image_lineage(self, image_id: str, limit: int = 200) -> list[str]:
        lineage = []
        while (found := self.image(image_id)) is not None and found.id not in lineage and len(lineage) < limit:
            lineage.append(found.id)
            image_id = found.parent
        return lineage

    def pull(self, ref: str) -> None:
        self.ops.append(f"pull {ref}")
        self.add_image(ref)

    def remove_image(self, ref: str) -> bool:
        found = self.image(ref)
        if found is None:
            return False
        if any(c.image_id == found.id for c in self.records.values()):
            raise ConflictError(f"image {ref} is in use")
        del self.image_records[found.id]
        self.ops.append(f"remove image {found.id}")
        return True

    # -- networks ------------------------------------------------------------------------

    def network(self, name: str) -> NetworkInfo | None:
        found = self.networks_named(name)
        return found[0] if found else None

    def networks_named(self, name: str) -> list[NetworkInfo]:
        attached = [self.attachments.get(c) for c in self.records]
        return sorted((replace(n, containers=attached.count(n.id)) for n in self.network_records.values()
                       if n.name == name), key=lambda n: n.created)

    def networks(self, project: str) -> list[NetworkInfo]:
        return [n for n in self.network_records.values() if n.labels.get(LABEL_PROJECT) == project]

    def create_network(self, name: str, labels: dict[str, str]) -> NetworkInfo:
        self.ops.append(f"create network {name}")
        number = next(_ids)
        created = NetworkInfo(f"net{number}", name, dict(labels), created=f"{number:012d}")
        self.network_records[created.id] = created
        return created

    def remove_network(self, network_id: str) -> None:
        self.ops.append(f"remove network {self.network_records[network_id].name}")
        del self.network_records[network_id]

    # -- volumes ---------------------------------------------------------------------------

    def volume(self, name: str) -> VolumeInfo | None:
        return self.volume_records.get(name)

    def volumes(self, project: str) -> list[VolumeInfo]:
        return [v for v in self.volume_records.values() if v.labels.get(LABEL_PROJECT) == project]

    def create_volume(self, name: str, labels: dict[str, str]) -> VolumeInfo:
        self.ops.append(f"create volume {name}")
        self.volume_records[name] = VolumeInfo(name, dict(labels), created=f"t{len(self.ops)}")
        return self.volume_records[name]

    def remove_volume(self, name: str) -> None:
        self.ops.append(f"remove volume {name}")
        del self.volume_records[name]

    # -- containers ------------------------------------------------------------------------

    def add_container(self, name: str, labels: dict[str, str], image_id: str = "sha256:foreign",
                      running: bool = True) -> ContainerInfo:
        container_id = f"c{next(_ids)}"
        self.records[container_id] = ContainerInfo(
            container_id, name, labels.get(LABEL_PROJECT, ""), labels.get(LABEL_SERVICE, ""),
            "running" if running else "exited", "running" if running else "exited (0)", image_id, dict(labels))
        return self.records[container_id]

    def containers(self, project: str | None = None, service: str | None = None) -> list[ContainerInfo]:
        return sorted((c for c in self.records.values() if LABEL_PROJECT in c.labels
                       and project in (None, c.project) and service in (None, c.service)),
                      key=lambda c: (c.project, c.service))

    def container(self, name_or_id: str) -> ContainerInfo | None:
        return self.records.get(name_or_id) or next(
            (c for c in self.records.values() if c.name == name_or_id), None)

    def create_container(self, service, network, labels) -> str:  # noqa: ANN001
        if self.container(service.container_name) is not None:
            raise ConflictError(f"container {service.container_name}: the name is in use")
        image = self.image(service.image)
        if image is None:
            raise EngineError(f"container {service.container_name}: image {service.image} not found")
        self.ops.append(f"create {service.container_name}")
        created = replace(self.add_container(service.container_name, {**dict(service.labels), **labels}, image.id,
                                             running=False), image_ref=service.image)
        ips = {} if network == "host" else {network: f"172.30.0.{len(self.ops)}"}
        if network != "host" and (attached := self.network(network)) is not None:
            self.attachments[created.id] = attached.id
        self.records[created.id] = replace(created, ips=ips)
        return created.id

    def start(self, container_id: str, name: str) -> None:
        self.ops.append(f"start {name}")
        self.records[container_id] = replace(self.records[container_id], state="running", status="running")

    def stop(self, container_id: str, name: str, timeout: int = 10) -> None:
        if name in self.fail_stops:
            raise self.fail_stops[name]
        self.stop_timeouts[name] = timeout
        self.ops.append(f"stop {name}")
        self.records[container_id] = replace(self.records[container_id], state="exited", status="exited (0)")

    def remove(self, container_id: str, name: str) -> None:
        if self.records.pop(container_id, None) is not None:
            self.ops.append(f"remove {name}")

    def run_once(self, image, entrypoint, command, mounts, labels, timeout=60) -> tuple[int, str]:  # noqa: ANN001
        self.ops.append(f"{'haproxy -c' if entrypoint[0] == 'haproxy' else 'nginx -t'} (throwaway)")
        return 0, ""

    def rename(self, container_id: str, name: str, new_name: str) -> None:
        if self.container(new_name) is not None:
            raise ConflictError(f"container {new_name}: the name is in use")
        self.ops.append(f"rename {name} {new_name}")
        self.records[container_id] = replace(self.records[container_id], name=new_name)

    def signal(self, container_id: str, name: str, signal: str) -> None:
        self.ops.append(f"signal {name} {signal}")

    def exec(self, container_id: str, cmd: list[str], user: str = "", workdir: str | None = None,
             environment: dict[str, str] | None = None) -> tuple[int, str]:
        self.ops.append(f"exec {' '.join(cmd)[:40]}")
        return self.exec_results.get(cmd[0], (0, ""))

    def open_shell(self, container_id: str, name: str):  # noqa: ANN201
        raise EngineError("no shells in memory: the loader falls back to exec")

    def log_lines(self, container_id: str, tail="all", follow=False, since=None):  # noqa: ANN001, ANN201
        return iter(self.logs.get(container_id, ()))

    def cancel_builds(self) -> int:
        self.ops.append("cancel builds")
        return 0

    def events(self, project: str, since=None):  # noqa: ANN001, ANN201
        return iter(())


def _labels_from_dockerfile(context) -> dict[str, str]:  # noqa: ANN001 - the context tarball
    """The LABEL line devstack appends to the Dockerfile it sends, as the builder would apply it."""
    import json
    import re
    import tarfile

    context.seek(0)
    with tarfile.open(fileobj=context) as tar:
        member = tar.extractfile("Dockerfile")
        text = member.read().decode() if member else ""
    labels = {}
    for line in text.splitlines():
        if line.startswith("LABEL "):
            labels.update({json.loads(k): json.loads(v) for k, v in re.findall(r'("[^"]*")=("[^"]*")', line)})
    return labels
