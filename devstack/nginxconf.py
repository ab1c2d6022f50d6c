"""nginx configuration read with a real parser (crossplane), for the lint and for layout decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crossplane


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    line: int
    file: Path
    parents: tuple[Directive, ...] = ()  # enclosing blocks, outermost first
    block: tuple[Directive, ...] | None = None

    def enclosing(self, name: str) -> Directive | None:
        for parent in reversed(self.parents):
            if parent.name == name:
                return parent
        return None


@dataclass(frozen=True)
class ParsedFile:
    path: Path
    directives: tuple[Directive, ...]
    errors: tuple[tuple[int | None, str], ...] = ()  # (line, message) nginx's parser would also refuse

    def walk(self) -> Iterator[Directive]:
        yield from _walk(self.directives)


def parse_file(path: Path) -> ParsedFile:
    """One file on its own (includes not followed), in whatever context it is included."""
    payload = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False, comments=False)
    config = payload["config"][0] if payload["config"] else {"parsed": [], "errors": []}
    errors = tuple((e.get("line"), str(e.get("error", ""))) for e in payload.get("errors", []))
    return ParsedFile(path, _convert(config.get("parsed", []), path, ()), errors)


def _convert(items: list[dict[str, Any]], path: Path, parents: tuple[Directive, ...]) -> tuple[Directive, ...]:
    out = []
    for item in items:
        block = item.get("block")
        directive = Directive(item["directive"], tuple(item.get("args", [])), int(item.get("line", 0)), path, parents)
        if block is not None:
            directive = Directive(directive.name, directive.args, directive.line, path, parents,
                                  _convert(block, path, (*parents, directive)))
        out.append(directive)
    return tuple(out)


def _walk(directives: tuple[Directive, ...]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        if directive.block:
            yield from _walk(directive.block)


def listen_port(args: tuple[str, ...]) -> int | None:
    """The port of a `listen` directive: `3334`, `127.0.0.1:3334`, `[::]:3334`, `*:80`; None for unix sockets."""
    if not args or args[0].startswith("unix:"):
        return None
    address = args[0]
    port = address.rsplit(":", 1)[-1] if (":" in address and not address.endswith("]")) else address
    if port.isdigit():
        return int(port)
    return 80 if not port.isdigit() and ("." in address or address.startswith("[")) else None


def listen_ports(paths: tuple[Path, ...]) -> set[int]:
    ports: set[int] = set()
    for path in paths:
        for directive in parse_file(path).walk():
            if directive.name == "listen":
                port = listen_port(directive.args)
                if port is not None:
                    ports.add(port)
    return ports
