"""What devstack keeps per project in `.devstack/`: generated secrets and their mount."""

from __future__ import annotations

import hashlib
import json
import os
import secrets as random
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings


@dataclass(frozen=True)
class ProjectSecrets:
    jupyter_token: str
    sifu_secret: str

    def fingerprint(self) -> str:
        """Changes when a secret changes (so the container is recreated), reveals nothing."""
        return hashlib.sha256(f"{self.jupyter_token}\0{self.sifu_secret}".encode()).hexdigest()[:16]

    def values(self) -> list[str]:
        return [self.jupyter_token, self.sifu_secret]


def ensure_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    ignore = state_dir / ".gitignore"
    if not ignore.exists():
        # Generated files and secrets: never committed, whatever the project's own .gitignore says.
        ignore.write_text("*\n")


def load_secrets(settings: Settings) -> ProjectSecrets | None:
    """The project's secrets if they were generated already (no writes)."""
    generated = _read_generated(settings.state_dir)
    if not generated:
        return None
    token = settings.jupyter_token.get_secret_value() or generated["jupyter_token"]
    return ProjectSecrets(token, generated["sifu_secret"])


def ensure_secrets(settings: Settings) -> ProjectSecrets:
    """Generate what is missing (once per project) and write the folder mounted into the container."""
    state_dir = settings.state_dir
    ensure_state_dir(state_dir)
    generated = _read_generated(state_dir)
    if not generated:
        generated = {"jupyter_token": random.token_hex(24), "sifu_secret": random.token_hex(32)}
    if "jupyter_cookie_secret" not in generated:  # added later: projects made before get theirs now
        generated["jupyter_cookie_secret"] = random.token_hex(32)
    write_private(state_dir / "generated-secrets.json", json.dumps(generated))
    project_secrets = ProjectSecrets(
        settings.jupyter_token.get_secret_value() or generated["jupyter_token"], generated["sifu_secret"])
    mount = state_dir / "secrets"
    mount.mkdir(mode=0o700, exist_ok=True)
    write_private(mount / "jupyter_token", project_secrets.jupyter_token)
    write_private(mount / "sifu_secret", project_secrets.sifu_secret)
    # Jupyter's login cookie key, one for every instance (not in the fingerprint: it recreates nothing).
    write_private(mount / "jupyter_cookie_secret", generated["jupyter_cookie_secret"])
    return project_secrets


def ensure_rds_passwords(state_dir: Path) -> tuple[str, str, str]:
    """The coupled database's generated passwords: its user's (used when RDS_PASSWORD is not given),
    root's, and the one builds get (which the database takes only while a build runs): made once per
    project and kept, since the database's volume keeps the ones it started with."""
    path = state_dir / "generated-rds.json"
    keys = ("password", "root", "build")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    missing = [k for k in keys if not (isinstance(data.get(k), str) and data[k])]
    if missing:
        data.update({k: random.token_urlsafe(18) for k in missing})
        ensure_state_dir(state_dir)
        write_private(path, json.dumps(data))
    return data["password"], data["root"], data["build"]


def _read_generated(state_dir: Path) -> dict[str, str]:
    path = state_dir / "generated-secrets.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("jupyter_token", "sifu_secret")):
        return {}
    return data


def write_private(path: Path, content: str, in_place: bool = False) -> bool:
    """Write a file readable by its owner only, and only if it changed; returns whether it was written.
    It is replaced atomically, unless `in_place`: a file a container has bind-mounted must keep its
    inode (a replacement would leave the container seeing the old one)."""
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    if in_place:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
        path.chmod(0o600)
        return True
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.replace(tmp, path)
    return True
