"""Build contexts: which files go in, their hash, and the tarball sent to the engine.

One list of files serves all three, so the hash recorded on an image (a label)
changes exactly when what the engine would see changes, including edits made
while devstack was not running.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .engine import dockerignore_included
from ..errors import ConfigError
from ..spec import ImageSpec


@dataclass(frozen=True)
class ContextFile:
    arcname: str  # path inside the context
    path: Path  # where it is on disk


def read_dockerignore(root: Path) -> list[str]:
    ignore = root / ".dockerignore"
    if not ignore.is_file():
        return []
    lines = ignore.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def check_context(image: ImageSpec, setting: str) -> None:
    """A missing folder or Dockerfile is the user's to fix: say which and where."""
    if not image.context.is_dir():
        raise ConfigError(f"{setting}={image.context}: the build context folder of the {image.name} image "
                          "does not exist; create it or point the setting at an existing folder")
    if not (image.context / image.dockerfile).is_file():
        raise ConfigError(f"{setting}={image.context}: no {image.dockerfile} in the build context of the "
                          f"{image.name} image; add one or point the setting at a folder that has it")
    for prefix, folder in image.overlays:
        if not folder.exists():
            raise ConfigError(f"{folder}: what devstack sends into the {image.name} build as {prefix} is missing")


def context_files(image: ImageSpec) -> list[ContextFile]:
    """Every file of the context, `.dockerignore` applied, overlays in place of what they replace."""
    root = image.context
    patterns = read_dockerignore(root) + [f"{folder}{tail}" for folder in image.ignored for tail in ("", "/**")]
    overlay_prefixes = [prefix.strip("/") for prefix, _ in image.overlays]
    files: list[ContextFile] = []
    for rel in sorted(dockerignore_included(str(root), patterns, image.dockerfile)):
        if any(rel == p or rel.startswith(p + "/") for p in overlay_prefixes):
            continue
        path = root / rel
        if path.is_file() or path.is_symlink():
            files.append(ContextFile(rel, path))
    for prefix, folder in image.overlays:
        if folder.is_file():  # one file in place of the context's own (docker_envs)
            files.append(ContextFile(prefix.strip("/"), folder))
            continue
        for path in sorted(_walk_files(folder)):
            files.append(ContextFile(f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}", path))
    return sorted(files, key=lambda f: f.arcname)


def context_digest(image: ImageSpec) -> str:
    """A digest of what the build would see from this machine: the files (content and exec bit) and the
    build arguments. The image's own hash adds its parent's ID to it (reconcile.plan.image_hash)."""
    digest = hashlib.sha256()
    digest.update(f"dockerfile={image.dockerfile}\n".encode())
    for key, value in image.build_args:
        digest.update(f"arg {key}={value}\n".encode())
    for item in context_files(image):
        if not image.reads(item.arcname):
            continue
        mode = item.path.lstat().st_mode
        digest.update(f"file {item.arcname} {'x' if mode & stat.S_IXUSR else '-'}\n".encode())
        if item.arcname in image.blanked:
            digest.update(b"blanked\n")  # sent empty: its content (a secret) is not hashed either
        elif stat.S_ISLNK(mode):
            digest.update(f"link {os.readlink(item.path)}\n".encode())
        else:
            digest.update(_file_digest(item.path))
    return digest.hexdigest()


def file_holding_secret(image: ImageSpec, secrets: dict[str, str]) -> tuple[ContextFile, str] | None:
    """The first file of the context that contains one of `secrets` (name -> value), and that secret's name."""
    return next(files_holding_secrets(image, secrets), None)


def files_holding_secrets(image: ImageSpec, secrets: dict[str, str]) -> Iterator[tuple[ContextFile, str]]:
    """Each file of the context that contains one of `secrets`, with that secret's name."""
    needles = {name: value.encode() for name, value in secrets.items() if value and len(value) >= 8}
    if not needles:
        return
    overlap = max(len(n) for n in needles.values()) - 1
    for item in context_files(image):
        if item.path.is_symlink() or not item.path.is_file():
            continue
        with open(item.path, "rb") as handle:
            tail = b""
            for block in iter(lambda: handle.read(1 << 20), b""):
                window = tail + block
                found = next((name for name, needle in needles.items() if needle in window), None)
                if found is not None:
                    yield item, found
                    break
                tail = window[-overlap:] if overlap else b""


def context_tar(image: ImageSpec, labels: dict[str, str] | None = None) -> IO[bytes]:
    """The context as an uncompressed tar in a temporary file, owned by root inside.

    `labels` are appended to the Dockerfile that is sent (the user's file is not touched) as one
    LABEL instruction: labels passed through the API cost the classic builder one step, a
    container and a commit, each (about 0.15 s apiece here).
    """
    fileobj = tempfile.TemporaryFile()
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        for item in context_files(image):
            info = tar.gettarinfo(str(item.path), arcname=item.arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isfile() and item.arcname in image.blanked:
                info.size = 0
                tar.addfile(info, io.BytesIO(b""))
            elif info.isfile() and labels and item.arcname == image.dockerfile:
                data = with_label_instruction(item.path.read_bytes(), labels)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif info.isfile():
                with open(item.path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    fileobj.seek(0)
    return fileobj


def label_instruction(labels: dict[str, str]) -> str:
    return "LABEL " + " ".join(f"{json.dumps(key)}={json.dumps(value)}" for key, value in sorted(labels.items()))


def with_label_instruction(dockerfile: bytes, labels: dict[str, str]) -> bytes:
    """The Dockerfile with one LABEL line at its end, which applies to the image its last stage makes."""
    body = dockerfile.rstrip()
    return body + b"\n" + label_instruction(labels).encode() + b"\n"


def labels_fit_in_dockerfile(path: Path) -> bool:
    """A last line continued with a backslash would swallow an appended line: the API must label it."""
    try:
        return not path.read_bytes().rstrip().endswith(b"\\")
    except OSError:
        return False


def _walk_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            yield Path(dirpath) / name


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.digest()
