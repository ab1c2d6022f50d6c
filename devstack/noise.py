"""What is never a change to apply nor a file to load: one rule, for the watcher, the proxy
renderer and the reader of a project's EB files."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# Never part of what devstack builds or serves: version control, caches, devstack's own output.
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
                          ".mypy_cache", ".devstack"})
# vim (.swp .swo ..., backups `file~`, and `4913`, the file it writes to test a folder),
# emacs (`#file#`, `.#file`), JetBrains' safe write, `sed -i`'s temporary file, and other leftovers.
_EDITOR_FILE = re.compile(
    r"(\.sw[a-p]x?$|~$|^4913$|^#.*#$|^\.#|___jb_(tmp|old)___$|^sed[A-Za-z0-9]{6}$|\.bak$|\.orig$|\.tmp$"
    r"|\.pyc$|^\.DS_Store$)")


def is_noise(rel: str) -> bool:
    """Version control, caches and editors' temporary files, anywhere in `rel` (a relative path)."""
    parts = PurePosixPath(rel).parts
    return any(part in IGNORED_DIRS for part in parts) or bool(parts) and bool(_EDITOR_FILE.search(parts[-1]))


def is_config_noise(rel: str) -> bool:
    """The same in a folder of configuration files (proxy templates, EB nginx files), where hidden
    files are skipped too: nginx's `include *.conf` globs never meant them. (A build context keeps its
    hidden files: Docker sends them, `.dockerignore` decides.)"""
    return is_noise(rel) or any(part.startswith(".") for part in PurePosixPath(rel).parts)
