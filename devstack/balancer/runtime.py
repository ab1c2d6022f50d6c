"""haproxy's runtime API, as a deployment uses it: take an instance out of the rotation (ELB's
deregistration: no new requests, those in flight finish) and put it back."""

from __future__ import annotations

import socket

from ..errors import EngineError
from ..spec import LB_ADMIN_PORT, BalancerSpec
from .render import listener_name


def admin_address(ports: tuple[str, ...]) -> tuple[str, int] | None:
    """Where the engine published the runtime API port, from `ContainerInfo.ports`."""
    for port in ports:
        address, _, inside = port.partition("->")
        if inside.split("/")[0] == str(LB_ADMIN_PORT):
            host, _, number = address.rpartition(":")
            return host, int(number)
    return None


def command(address: tuple[str, int], line: str, timeout: float = 3.0) -> str:
    """One command of the runtime API: its answer (haproxy closes the connection after it)."""
    try:
        with socket.create_connection(address, timeout=timeout) as conn:
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise EngineError(f"the load balancer's runtime API at {address[0]}:{address[1]} did not answer "
                          f"`{line}` ({exc}): see `devstack logs lb`") from None
    answer = b"".join(chunks).decode("utf-8", "replace").strip()
    return answer


def set_server_state(address: tuple[str, int], backend: str, server: str, state: str) -> None:
    line = f"set server {backend}/{server} state {state}"
    answer = command(address, line)
    if answer:  # haproxy answers this command with nothing, unless it refuses it ("No such server.")
        raise EngineError(f"the load balancer refused `{line}`: {answer}")


def set_state(address: tuple[str, int], balancer: BalancerSpec, backend: str, state: str) -> None:
    """`maint` (out of the rotation) or `ready` (back, once its health checks pass), in every listener."""
    for listener in balancer.listeners:
        set_server_state(address, listener_name(listener), backend, state)
