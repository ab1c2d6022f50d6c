"""The one seam around Docker: the only module that imports the Docker SDK.

It connects lazily (so `--help` and `config` work without a daemon), speaks
in devstack's terms (services, labels, build steps) and turns every Docker
error into a `DevstackError` that names the container, image or port and says
what to do.
"""

from __future__ import annotations

import os
import re
import select
import signal as signals
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from ..errors import BuildCancelled, BuildError, ConflictError, EngineError, EngineUnavailable
from ..events import EngineEvent
from ..spec import LABEL_PROJECT, LABEL_SERVICE, MountSpec, ServiceSpec, VolumeMount

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_PORT_IN_USE = re.compile(r"(?:Bind for |listen tcp[46]? )\[?([0-9a-fA-F.:]*?)\]?:(\d+)(?: failed|: bind)")


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    project: str
    service: str
    state: str  # created, running, exited, ...
    status: str  # Docker's one-line status
    image_id: str
    labels: dict[str, str]
    started_at: datetime | None = None
    restart_count: int = 0
    exit_code: int = 0
    health: str = ""
    ips: dict[str, str] = field(default_factory=dict)  # network name -> IP
    ports: tuple[str, ...] = ()
    image_ref: str = ""  # the reference it was created from (a tag, as the spec named it)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    created: datetime | None
    parent: str = ""  # the image it was built FROM (classic builder), "" when unknown


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    name: str
    labels: dict[str, str]
    created: str = ""  # the engine's timestamp, sortable as text
    containers: int = 0  # containers attached (known when inspected: `networks_named`)


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    labels: dict[str, str]
    created: str = ""  # the engine's CreatedAt: a volume removed and made again under its name is another one


@dataclass(frozen=True)
class BuildEvent:
    """One line of build output; `step`/`total` follow the classic builder's `Step N/M`."""

    step: int
    total: int
    instruction: str
    line: str


class ContainerShell:
    """`/bin/sh` reading commands from an exec's stdin. One `docker exec` costs about 0.1 s (a new
    process set up by runc); a command written to a shell already running costs milliseconds, which
    is what lets a saved proxy configuration be checked and loaded within the quiet period's budget."""

    def __init__(self, sock: Any, name: str, timeout: float = 30.0):
        self._sock = sock
        self._sock.settimeout(timeout)
        self.name = name
        self._buffer = b""

    def run(self, argv: list[str]) -> tuple[int, str]:
        """Run a command to completion: (exit code, stdout and stderr). OSError when the shell is gone."""
        import secrets
        import shlex

        marker = f"__devstack_done_{secrets.token_hex(6)}"
        line = " ".join(shlex.quote(arg) for arg in argv)
        self._sock.sendall(f"{line} 2>&1; echo {marker} $?\n".encode())
        output = b""
        while True:
            stream, payload = self._frame()
            output += payload
            end = output.find(marker.encode())
            if end >= 0 and b"\n" in output[end:]:
                code = output[end + len(marker):].split(b"\n", 1)[0].strip()
                return int(code or -1), output[:end].decode("utf-8", "replace")

    def _frame(self) -> tuple[int, bytes]:
        # Without a TTY the engine frames output: 1 byte stream, 3 zero bytes, 4 bytes big-endian size.
        header = self._read(8)
        size = int.from_bytes(header[4:8], "big")
        return header[0], self._read(size)

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(f"the shell in container {self.name} ended")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def where_docker_is() -> str:
    """The address the SDK will try, as the user would write it."""
    host = os.environ.get("DOCKER_HOST")
    return f"{host} (from DOCKER_HOST)" if host else f"{DEFAULT_SOCKET} (DOCKER_HOST is not set)"


def dockerignore_included(root: str, patterns: list[str], dockerfile: str = "Dockerfile") -> set[str]:
    """The paths of a build context that `.dockerignore` keeps, matched exactly as the SDK matches them."""
    from docker.utils.build import PatternMatcher

    matcher = PatternMatcher([*patterns, f"!{dockerfile}"])
    return set(matcher.walk(root))


def dockerignore_excludes(patterns: list[str], relpath: str) -> bool:
    from docker.utils.build import PatternMatcher

    return PatternMatcher(patterns).matches(relpath)


class Engine:
    """A connected Docker Engine."""

    def __init__(self, client: Any):
        self._client = client
        self._api = client.api
        self._builds: set[socket.socket] = set()  # the sockets of the builds in flight
        self._builds_lock = threading.Lock()
        self._cancelled = False

    @classmethod
    def connect(cls, timeout: int = 120) -> Engine:
        import docker
        from docker.errors import DockerException

        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except DockerException as exc:
            raise EngineUnavailable(
                f"No Docker Engine answers at {where_docker_is()}: start dockerd or Docker Desktop, "
                f"or point DOCKER_HOST at a running engine ({_short(exc)})") from None
        return cls(client)

    def close(self) -> None:
        self._client.close()

    # -- the engine ------------------------------------------------------

    def version(self) -> dict[str, str]:
        info = _guard(self._client.version, what="the engine")
        return {"version": info.get("Version", "?"), "api": info.get("ApiVersion", "?")}

    # -- images ----------------------------------------------------------

    def image(self, ref: str) -> ImageInfo | None:
        attrs = _inspect(self._api.inspect_image, ref, what=f"image {ref}")
        if attrs is None:
            return None
        config = attrs.get("Config") or {}
        return ImageInfo(
            id=attrs["Id"],
            tags=tuple(attrs.get("RepoTags") or ()),
            labels=dict(config.get("Labels") or {}),
            created=_parse_time(attrs.get("Created")),
            parent=attrs.get("Parent") or "",
        )

    def image_lineage(self, image_id: str, limit: int = 200) -> list[str]:
        """The image and those it was built from, as far as the engine knows (locally built ones)."""
        lineage: list[str] = []
        while image_id and len(lineage) < limit and image_id not in lineage:
            found = self.image(image_id)
            if found is None:
                break
            lineage.append(found.id)
            image_id = found.parent
        return lineage

    def build(
        self,
        context: IO[bytes],
        tag: str,
        build_args: dict[str, str],
        labels: dict[str, str],
        no_cache: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
        network: str = "",
    ) -> str:
        """Build with the engine's own builder from a context tarball; returns the image ID.

        The classic builder is spoken through the Engine API directly, so no CLI
        plugin (buildx) is needed. On failure, BuildError carries the failing
        step and the last lines of its output. `network`: the network its RUN
        steps join (their names resolve there), "" for the engine's default.
        """
        sock = None
        try:
            stream = self._api.build(
                fileobj=context, custom_context=True, tag=tag, buildargs=build_args, labels=labels,
                nocache=no_cache, rm=True, forcerm=True, pull=False, decode=True, network_mode=network or None,
            )
            sock = self._track_build(stream)
            image_id, instruction, tail = _follow_build(stream, tag, on_event)
        except BuildError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated below
            if self._cancelled:
                raise BuildCancelled(f"building {tag} was cancelled") from None
            raise translate(exc, f"image {tag}") from None
        finally:
            if sock is not None:
                with self._builds_lock:
                    self._builds.discard(sock)
        if not image_id:
            found = self.image(tag)
            if found is None:
                raise BuildError(f"building {tag} produced no image", step=instruction, tail=tail[-20:])
            image_id = found.id
        return image_id

    def _track_build(self, stream: Any) -> socket.socket | None:
        sock = _stream_socket(stream)
        if sock is not None:
            with self._builds_lock:
                if self._cancelled:
                    sock.shutdown(socket.SHUT_RDWR)
                self._builds.add(sock)
        return sock

    def cancel_builds(self) -> int:
        """End the builds in flight, from any thread: their connection is shut down, and the engine
        cancels a build whose client went away (the classic builder kills the step's container).
        Builds started afterwards on this engine are cancelled at once. Returns how many were running."""
        with self._builds_lock:
            self._cancelled = True
            builds = list(self._builds)
        for sock in builds:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading the build's output
            except OSError:
                pass
        return len(builds)

    def pull(self, ref: str) -> None:
        _guard(self._client.images.pull, ref, what=f"image {ref}")

    def remove_image(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self._api.remove_image(ref)
        except ImageNotFound:
            return False
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"image {ref}") from None
        return True

    # -- networks --------------------------------------------------------

    def network(self, name: str) -> NetworkInfo | None:
        found = self.networks_named(name)
        return found[0] if found else None

    def networks_named(self, name: str) -> list[NetworkInfo]:
        """Every network of exactly this name, oldest first: the engine lets two `create`s made at the
        same moment both succeed. With more than one, each is inspected for its containers."""
        found = [n for n in _guard(self._api.networks, names=[name], what=f"network {name}") if n["Name"] == name]
        if len(found) > 1:
            found = [_guard(self._api.inspect_network, n["Id"], what=f"network {name}") for n in found]
        infos = [NetworkInfo(n["Id"], n["Name"], dict(n.get("Labels") or {}), str(n.get("Created", "")),
                             len(n.get("Containers") or {})) for n in found]
        return sorted(infos, key=lambda n: n.created)

    def networks(self, project: str) -> list[NetworkInfo]:
        found = _guard(self._api.networks, filters={"label": f"{LABEL_PROJECT}={project}"}, what="networks")
        return [NetworkInfo(n["Id"], n["Name"], dict(n.get("Labels") or {})) for n in found]

    def create_network(self, name: str, labels: dict[str, str]) -> NetworkInfo:
        created = _guard(self._api.create_network, name, driver="bridge", labels=labels,
                              check_duplicate=True, what=f"network {name}")
        return NetworkInfo(created["Id"], name, labels)

    def remove_network(self, network_id: str) -> None:
        _guard(self._api.remove_network, network_id, what=f"network {network_id[:12]}")

    # -- volumes ---------------------------------------------------------

    def volume(self, name: str) -> VolumeInfo | None:
        attrs = _inspect(self._api.inspect_volume, name, what=f"volume {name}")
        if attrs is None:
            return None
        return VolumeInfo(attrs["Name"], dict(attrs.get("Labels") or {}), str(attrs.get("CreatedAt") or ""))

    def volumes(self, project: str) -> list[VolumeInfo]:
        found = _guard(self._api.volumes, filters={"label": f"{LABEL_PROJECT}={project}"}, what="volumes")
        return [VolumeInfo(v["Name"], dict(v.get("Labels") or {}), str(v.get("CreatedAt") or ""))
                for v in (found or {}).get("Volumes") or ()]

    def create_volume(self, name: str, labels: dict[str, str]) -> VolumeInfo:
        created = _guard(self._api.create_volume, name, labels=labels, what=f"volume {name}") or {}
        return VolumeInfo(name, labels, str(created.get("CreatedAt") or ""))

    def remove_volume(self, name: str) -> None:
        _guard(self._api.remove_volume, name, what=f"volume {name}")

    # -- containers ------------------------------------------------------

    def containers(self, project: str | None = None, service: str | None = None) -> list[ContainerInfo]:
        """Containers carrying devstack's labels (of one project, one service), stopped ones included."""
        labels = [LABEL_PROJECT if project is None else f"{LABEL_PROJECT}={project}"]
        if service:
            labels.append(f"{LABEL_SERVICE}={service}")
        found = _guard(self._api.containers, all=True, filters={"label": labels}, what="containers")
        infos = []
        for summary in found:
            info = self.container(summary["Id"])
            if info is not None:
                infos.append(info)
        return sorted(infos, key=lambda c: (c.project, c.service))

    def container(self, name_or_id: str) -> ContainerInfo | None:
        attrs = _inspect(self._api.inspect_container, name_or_id, what=f"container {name_or_id}")
        return None if attrs is None else _container_info(attrs)

    def create_container(self, service: ServiceSpec, network: str | None, labels: dict[str, str]) -> str:
        """Create (not start) the container for a service, attached to `network`."""
        created = _guard(self._api.create_container, **_container_config(self._api, service, network, labels),
                         what=f"container {service.container_name}")
        return created["Id"]

    def run_once(self, image: str, entrypoint: list[str], command: list[str], mounts: tuple[MountSpec, ...],
                 labels: dict[str, str], timeout: int = 60) -> tuple[int, str]:
        """Run a throwaway container without network to completion: (exit code, its output). Always removed."""
        api = self._api
        host_config = api.create_host_config(binds=_binds(mounts), network_mode="none")
        created = _guard(api.create_container, image=image, entrypoint=entrypoint, command=command,
                              labels=labels, host_config=host_config, what=f"a check container from {image}")
        container_id = created["Id"]
        try:
            _guard(api.start, container_id, what=f"a check container from {image}")
            result = _guard(api.wait, container_id, timeout=timeout, what=f"a check container from {image}")
            output = _guard(api.logs, container_id, stdout=True, stderr=True, what="a check container")
        finally:
            self.remove(container_id, "a check container")
        return int(result.get("StatusCode", -1)), output.decode("utf-8", "replace")

    def start(self, container_id: str, name: str) -> None:
        _guard(self._api.start, container_id, what=f"container {name}")

    def stop(self, container_id: str, name: str, timeout: int = 10) -> None:
        _guard(self._api.stop, container_id, timeout=timeout, what=f"container {name}")

    def remove(self, container_id: str, name: str) -> None:
        from docker.errors import NotFound

        try:
            self._api.remove_container(container_id, force=True, v=False)
        except NotFound:
            return
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"container {name}") from None

    def rename(self, container_id: str, name: str, new_name: str) -> None:
        _guard(self._api.rename, container_id, new_name, what=f"container {name}")

    def signal(self, container_id: str, name: str, signal: str) -> None:
        _guard(self._api.kill, container_id, signal=signal, what=f"container {name}")

    def exec(self, container_id: str, cmd: list[str], user: str = "", workdir: str | None = None,
             environment: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a command to completion in a running container: (exit code, combined output)."""
        created = _guard(self._api.exec_create, container_id, cmd, user=user, workdir=workdir,
                              environment=environment, what=f"container {container_id[:12]}")
        output = _guard(self._api.exec_start, created["Id"], what=f"container {container_id[:12]}")
        return self._exec_exit_code(created["Id"]), output.decode("utf-8", "replace")

    def open_shell(self, container_id: str, name: str) -> ContainerShell:
        """A shell kept running in the container: each later command costs a pipe write, not a new exec."""
        created = _guard(self._api.exec_create, container_id, ["/bin/sh"], stdin=True, tty=False,
                              what=f"container {name}")
        sock = _guard(self._api.exec_start, created["Id"], socket=True, what=f"container {name}")
        return ContainerShell(getattr(sock, "_sock", sock), name)

    def exec_stream(self, container_id: str, cmd: list[str], user: str = "", workdir: str | None = None,
                    environment: dict[str, str] | None = None) -> tuple[Iterator[tuple[bytes | None, bytes | None]], Callable[[], int]]:
        """Run a command and stream its (stdout, stderr) chunks; the callable gives its exit code after."""
        created = _guard(self._api.exec_create, container_id, cmd, user=user, workdir=workdir,
                              environment=environment, what=f"container {container_id[:12]}")
        chunks = _guard(self._api.exec_start, created["Id"], stream=True, demux=True,
                             what=f"container {container_id[:12]}")

        return chunks, lambda: self._exec_exit_code(created["Id"])

    def exec_interactive(self, container_id: str, cmd: list[str], user: str = "") -> int:
        """An interactive session, as `docker exec -it` gives, spoken over the Engine API."""
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        created = _guard(self._api.exec_create, container_id, cmd, stdin=True, tty=tty, user=user,
                              what=f"container {container_id[:12]}")
        exec_id = created["Id"]
        sock = _guard(self._api.exec_start, exec_id, tty=tty, socket=True, what=f"container {container_id[:12]}")
        raw = getattr(sock, "_sock", sock)
        _pump_terminal(raw, tty, resize=lambda h, w: self._api.exec_resize(exec_id, height=h, width=w))
        return self._exec_exit_code(exec_id)

    def _exec_exit_code(self, exec_id: str) -> int:
        return _exec_exit_code(self._api, exec_id)

    def log_lines(self, container_id: str, tail: int | str = "all", follow: bool = False,
                  since: datetime | None = None) -> Iterator[str]:
        """A container's log as text lines: the engine's chunks may hold several lines, or part of one.
        `since`: only lines logged from then on."""
        chunks = _guard(self._api.logs, container_id, stream=True, follow=follow, tail=tail,
                        since=since.timestamp() if since is not None else None,  # the SDK rounds a datetime to seconds
                        what=f"container {container_id[:12]}")
        buffer = b""
        try:
            for chunk in chunks:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    yield raw.decode("utf-8", "replace").rstrip("\r")
        except Exception as exc:  # noqa: BLE001 - the stream broke (container removed, engine gone)
            raise translate(exc, f"container {container_id[:12]}") from None
        if buffer:
            yield buffer.decode("utf-8", "replace")

    def events(self, project: str, since: datetime | None = None) -> Iterator[EngineEvent]:
        """The engine's event stream for this project's containers and networks (a blocking iterator).
        Docker's healthcheck execs (exec_create, exec_start, exec_die) are left out: they are not news."""
        filters = {"label": [f"{LABEL_PROJECT}={project}"], "type": ["container", "network"]}
        stream = _guard(self._api.events, since=since, filters=filters, decode=True, what="events")
        try:
            for raw in stream:
                event = _engine_event(raw)
                if event is not None:
                    yield event
        except Exception as exc:  # noqa: BLE001 - the stream broke (engine gone)
            raise translate(exc, "the engine's event stream") from None


# -- error translation -----------------------------------------------------------


def _guard(call: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every Docker error becomes ours
        raise translate(exc, what) from None


def _inspect(call: Callable[..., Any], ref: str, what: str) -> Any:
    """What the engine says of `ref`, or None when it has no such object; other errors become ours."""
    from docker.errors import NotFound  # ImageNotFound is one

    try:
        return call(ref)
    except NotFound:
        return None
    except Exception as exc:  # noqa: BLE001 - every Docker error becomes ours
        raise translate(exc, what) from None


def translate(exc: Exception, what: str) -> Exception:
    """A Docker SDK error as devstack's own, naming `what` it was working on and what to do."""
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound
    from requests.exceptions import ConnectionError as RequestsConnectionError

    if isinstance(exc, RequestsConnectionError):
        return EngineUnavailable(f"lost the Docker Engine at {where_docker_is()} while working on {what}: "
                                 "is dockerd still running?")
    if isinstance(exc, ImageNotFound):
        return EngineError(f"{what}: image not found locally and it cannot be pulled: "
                           "build it (`devstack build`) or load it with `docker load`")
    if isinstance(exc, NotFound):
        return EngineError(f"{what} not found: {_short(exc)}")
    if isinstance(exc, APIError):
        message = _short(exc)
        port = _PORT_IN_USE.search(message)
        if port:
            return ConflictError(f"{what}: host port {port[1] or '0.0.0.0'}:{port[2]} is already in use: "
                                 "stop what holds it or choose another port in .env")
        if exc.status_code == 409:
            return ConflictError(f"{what}: {message}")
        return EngineError(f"{what}: {message}")
    if isinstance(exc, DockerException):
        return EngineError(f"{what}: {_short(exc)}")
    return exc


def _binds(mounts: tuple[MountSpec, ...], volumes: tuple[VolumeMount, ...] = ()) -> dict[str, dict[str, str]]:
    binds = {str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts}
    binds.update({v.volume: {"bind": v.target, "mode": "rw"} for v in volumes})  # a name, not a path: a volume
    return binds


def _container_config(api: Any, service: ServiceSpec, network: str | None, labels: dict[str, str]) -> dict[str, Any]:
    """The Engine API's create-container arguments for a service."""
    # One container port may be published on several host ports (`-p 8888:80 -p 9999:80`).
    port_bindings: dict[int, list[tuple[str, int]]] = {}
    for port in service.ports:
        port_bindings.setdefault(port.container_port, []).append((port.host_ip, port.host_port))
    host_config = api.create_host_config(binds=_binds(service.mounts, service.volumes), port_bindings=port_bindings,
                                         extra_hosts=dict(service.extra_hosts) or None, network_mode=network,
                                         init=False)
    networking = api.create_networking_config({network: api.create_endpoint_config(aliases=[service.name])}) \
        if network and network not in ("host", "bridge", "none") else None
    return dict(
        image=service.image,
        name=service.container_name,
        entrypoint=list(service.entrypoint) if service.entrypoint else None,
        command=list(service.command) if service.command else None,
        environment=dict(service.environment),
        labels={**dict(service.labels), **labels},
        ports=sorted(port_bindings) or None,
        host_config=host_config,
        networking_config=networking,
        stop_signal=service.stop_signal,
    )


def _exec_exit_code(api: Any, exec_id: str, wait: float = 5.0) -> int:
    """The exit code of a finished exec. The engine may record it a moment after the output
    stream closes, so wait briefly while it still reports the process running."""
    deadline = time.monotonic() + wait
    while True:
        info = _guard(api.exec_inspect, exec_id, what=f"exec {exec_id[:12]}")
        if info.get("ExitCode") is not None and not info.get("Running"):
            return int(info["ExitCode"])
        if time.monotonic() >= deadline:
            return -1
        time.sleep(0.05)


def _follow_build(stream: Iterator[dict[str, Any]], tag: str, on_event: Callable[[BuildEvent], None] | None
                  ) -> tuple[str, str, list[str]]:
    """Read the classic builder's output: (the image ID, the last instruction, the last lines).
    An error chunk becomes a BuildError with the failing step and the end of the output."""
    step, total, instruction = 0, 0, ""
    tail: list[str] = []
    image_id = ""
    for chunk in stream:
        if "error" in chunk:
            raise BuildError(f"building {tag} failed at step {step}/{total} ({instruction}): {chunk['error'].strip()}",
                             step=instruction, tail=tail[-20:])
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        for line in chunk.get("stream", "").splitlines():
            if not line.strip():
                continue
            match = _STEP.match(line)
            if match:
                step, total, instruction = int(match[1]), int(match[2]), match[3]
            tail.append(line)
            del tail[:-40]
            if on_event:
                on_event(BuildEvent(step, total, instruction, line))
    return image_id, instruction, tail


def _stream_socket(stream: Any) -> socket.socket | None:
    """The socket under a streamed response. docker-py hands back only a generator; the response it
    reads from is that generator's argument (docker.api.client.APIClient._stream_helper), and on a
    unix or tcp connection the socket is the one `_get_raw_response_socket` reads. None when the SDK
    is shaped otherwise: the build then runs to its end, not cancelled."""
    try:
        response = stream.gi_frame.f_locals["response"]
        raw = response.raw._fp.fp.raw
        sock = getattr(raw, "_sock", raw)
    except (AttributeError, KeyError, TypeError):
        return None
    return sock if isinstance(sock, socket.socket) else None


def _short(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation if isinstance(explanation, str) and explanation else str(exc)
    return " ".join(text.split())


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    # Docker gives nanoseconds; Python takes microseconds.
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(trimmed)
    except ValueError:
        return None


def _engine_event(raw: dict[str, Any]) -> EngineEvent | None:
    action = str(raw.get("Action") or raw.get("status") or "")
    kind = str(raw.get("Type") or "container")
    if not action or action.startswith(("exec_create", "exec_start", "exec_die")):
        return None
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    return EngineEvent(kind, action, str(attrs.get("name", "")), str(attrs.get(LABEL_SERVICE, "")),
                       str(actor.get("ID") or raw.get("id") or ""))


def _container_info(attrs: dict[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    ports = []
    for container_port, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        for binding in bindings or ():
            ports.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}->{container_port}")
    return ContainerInfo(
        id=attrs["Id"],
        name=attrs["Name"].lstrip("/"),
        project=labels.get(LABEL_PROJECT, ""),
        service=labels.get(LABEL_SERVICE, ""),
        state=state.get("Status", "unknown"),
        status=_describe_state(state),
        image_id=attrs.get("Image", ""),
        labels=labels,
        started_at=_parse_time(state.get("StartedAt")) if state.get("Running") else None,
        restart_count=int(attrs.get("RestartCount") or 0),
        exit_code=int(state.get("ExitCode") or 0),
        health=((state.get("Health") or {}).get("Status") or ""),
        ips={name: net.get("IPAddress", "") for name, net in networks.items()},
        ports=tuple(sorted(ports)),
        image_ref=str(config.get("Image") or ""),
    )


def _describe_state(state: dict[str, Any]) -> str:
    status = state.get("Status", "unknown")
    if status == "exited":
        return f"exited ({state.get('ExitCode', '?')})"
    return status


def now() -> datetime:
    return datetime.now(timezone.utc)


def _pump_terminal(sock: Any, tty: bool, resize: Callable[[int, int], None]) -> None:
    """Copy stdin to the exec socket and the socket to stdout until either side closes."""
    import termios
    import tty as ttymod

    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin_fd) if tty else None

    def on_resize(*_: Any) -> None:
        size = os.get_terminal_size(stdout_fd)
        resize(size.lines, size.columns)

    previous_handler = None
    try:
        if tty:
            ttymod.setraw(stdin_fd)
            previous_handler = signals.signal(signals.SIGWINCH, on_resize)
            on_resize()
        stdin_open = True
        demux = FrameDemuxer()
        while True:
            readable, _, _ = select.select([sock, stdin_fd] if stdin_open else [sock], [], [])
            if sock in readable:
                data = sock.recv(65536)
                if not data:
                    break
                if tty:
                    _write_all(stdout_fd, data)
                else:
                    for stream, payload in demux.feed(data):
                        _write_all(sys.stderr.fileno() if stream == STDERR else stdout_fd, payload)
            if stdin_open and stdin_fd in readable:
                data = os.read(stdin_fd, 65536)
                if data:
                    sock.sendall(data)
                else:
                    stdin_open = False
                    try:
                        sock.shutdown(1)  # half-close: the command sees end of input
                    except OSError:
                        pass
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if previous_handler is not None:
            signals.signal(signals.SIGWINCH, previous_handler)


STDOUT, STDERR = 1, 2


class FrameDemuxer:
    """Docker's multiplexed stream, used when there is no TTY: each frame is an 8-byte header
    (stream: 0 stdin, 1 stdout, 2 stderr; three zero bytes; payload size, big-endian) and the payload.
    A read from the socket may end anywhere, even inside a header: the rest waits for the next read."""

    HEADER = 8

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames that `data` completes, as (stream, payload)."""
        self._pending += data
        frames = []
        while len(self._pending) >= self.HEADER:
            size = int.from_bytes(self._pending[4:8], "big")
            end = self.HEADER + size
            if len(self._pending) < end:
                break
            frames.append((self._pending[0], bytes(self._pending[self.HEADER:end])))
            del self._pending[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of a frame not complete yet."""
        return len(self._pending)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
