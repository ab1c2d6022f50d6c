"""Where the bundled image definitions (`compose/`) and proxy configuration (`nginx/`) are.

An installed wheel carries them as `devstack/_assets/`; a source checkout has
them at the top of the repository. Both layouts resolve to real folders so that
Docker can read a build context from them.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """The folder `name` ("compose" or "nginx"), from the wheel or from the source tree."""
    for candidate in (_PACKAGE_DIR / "_assets" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"devstack's bundled '{name}' folder is missing from {_PACKAGE_DIR}; reinstall devstack")


def compose_dir() -> Path:
    return asset_dir("compose")


def nginx_dir() -> Path:
    return asset_dir("nginx")
