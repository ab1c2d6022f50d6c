"""nginx configuration read with a real parser (crossplane), for the lint and for layout decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import glob
import os

import crossplane

from ..settings import is_number

# Where EB's nginx (and the sidecar's) reads its configuration: an absolute include under it names a
# file of the rendered tree; a relative one is relative to it, as nginx resolves it against its prefix.
NGINX_PREFIX = "/etc/nginx/"


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


@dataclass(frozen=True)
class ParsedTree:
    """A rendered tree read from its main file, includes followed inside the tree only."""

    root: Path
    files: tuple[ParsedFile, ...]  # the main file first, then each included file the first time it is included
    not_in_tree: tuple[str, ...] = ()  # includes naming no file of the tree (the image's mime.types): never opened

    def walk(self) -> Iterator[Directive]:
        for file in self.files:
            yield from file.walk()

    def file(self, rel: str) -> ParsedFile | None:
        return next((f for f in self.files if f.path == self.root / rel), None)


def parse_tree(root: Path, main: str = "nginx.conf") -> ParsedTree:
    """The tree under `root` as nginx reads it from `main`, without ever reading a file outside `root`.

    crossplane's own include handling opens absolute paths on this machine (`include /etc/nginx/mime.types`
    reads the host's nginx, or fails without one), so each file is parsed on its own (`single`) and its
    includes are resolved against the tree, which the sidecar's nginx sees as NGINX_PREFIX."""
    base = root.resolve()
    files: list[ParsedFile] = []
    not_in_tree: list[str] = []

    def visit(path: Path) -> None:
        if any(f.path == path for f in files):
            return
        parsed = parse_file(path)
        files.append(parsed)
        for directive in parsed.walk():
            if directive.name == "include" and directive.args:
                targets = _resolve_include(directive.args[0], base)
                if targets is None:
                    not_in_tree.append(directive.args[0])
                for target in targets or ():
                    visit(target)

    visit(base / main)
    return ParsedTree(base, tuple(files), tuple(dict.fromkeys(not_in_tree)))


def _resolve_include(target: str, base: Path) -> list[Path] | None:
    """The tree's files an include names, in nginx's (sorted) order; None when it names a file that is
    not in the tree (a glob that matches nothing is fine for nginx, and is [])."""
    rel = target[len(NGINX_PREFIX):] if target.startswith(NGINX_PREFIX) else target
    if os.path.isabs(rel):
        return None  # outside the prefix: never part of the tree
    pattern = str(base / rel)
    magic = glob.has_magic(pattern)
    found = []
    for candidate in sorted(glob.glob(pattern)) if magic else [pattern]:
        resolved = Path(candidate).resolve()
        if resolved.is_file() and resolved.is_relative_to(base):  # a symlink out of the tree is not followed
            found.append(resolved)
        elif not magic:
            return None
    return found


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
    if is_number(port):
        return int(port)
    return 80 if not is_number(port) and ("." in address or address.startswith("[")) else None


def listen_ports(paths: tuple[Path, ...]) -> set[int]:
    ports: set[int] = set()
    for path in paths:
        for directive in parse_file(path).walk():
            if directive.name == "listen":
                port = listen_port(directive.args)
                if port is not None:
                    ports.add(port)
    return ports
