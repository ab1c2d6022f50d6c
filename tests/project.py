"""A devstack project folder driven through the installed CLI: what the tests and the benchmarks share.

No pytest here: the benchmarks are plain scripts.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

# Test images get their own tags: a developer's real proversity/* images are never replaced,
# and two checkouts testing different image definitions on one engine never retag each other's.
_CHECKOUT = hashlib.sha1(str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:8]
TEST_BASE_TAG = f"devstack-test/base-notebook:{_CHECKOUT}"
TEST_NOTEBOOK_TAG = f"devstack-test/notebook:{_CHECKOUT}"
NGINX_IMAGE = os.environ.get("NGINX_IMAGE", "nginx:stable")
OPENRESTY_IMAGE = os.environ.get("OPENRESTY_IMAGE", "openresty/openresty:1.27.1.2-bookworm")
RDS_IMAGE = os.environ.get("RDS_IMAGE", "mysql:8.0")
LB_IMAGE = os.environ.get("LB_IMAGE", "haproxy:2.8")
PROJECT_LABEL = "devstack.project"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Project:
    """A project folder with its own name, ports and `.env`, driven through the real CLI."""

    dir: Path
    name: str
    sifu_port: int
    jupyter_port: int
    settings: dict[str, str] = field(default_factory=dict)

    def write_env(self, **extra: str) -> None:
        self.settings.update(extra)
        lines = [f"{key}={value}" for key, value in self.settings.items()]
        (self.dir / ".env").write_text("\n".join(lines) + "\n")

    def cli_env(self, **extra: str) -> dict[str, str]:
        """The environment for the CLI: this shell's, less the project's settings (its `.env` decides them)."""
        env = {k: v for k, v in os.environ.items() if k not in self.settings}
        env.update(extra)
        env.update({"NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 900, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed devstack CLI in the project folder."""
        result = subprocess.run([sys.executable, "-m", "devstack", *args], cwd=self.dir,
                                env=self.cli_env(**(env or {})), capture_output=True, text=True, timeout=timeout,
                                input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"devstack {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def start(self, *args: str, preexec_fn=None):  # noqa: ANN001, ANN201 - helpers.Background
        """Start the installed devstack CLI in the background (stdout is a pipe: plain lines);
        `preexec_fn` runs in the child before devstack does (say, to ignore SIGINT as a script's `&` does)."""
        from helpers import Background

        process = subprocess.Popen([sys.executable, "-m", "devstack", *args], cwd=self.dir, env=self.cli_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=preexec_fn)
        return Background(process)

    @property
    def public_host(self) -> str:
        """The host the stack is served under, as devstack shows it: EDX_HOSTNAME's loopback name
        (localhost by default). Sifu sends a browser that comes under another name there first."""
        edx_host = self.settings.get("EDX_HOSTNAME", "localhost:8000").rpartition(":")[0]
        return edx_host if edx_host in ("localhost", "127.0.0.1") else "127.0.0.1"

    @property
    def sifu_url(self) -> str:
        return f"http://{self.public_host}:{self.sifu_port}"

    @property
    def jupyter_url(self) -> str:
        return f"http://{self.public_host}:{self.jupyter_port}"

    @property
    def notebooks(self) -> Path:
        return self.dir / "notebooks"

    def secret(self, name: str) -> str:
        return (self.dir / ".devstack" / "secrets" / name).read_text()


P = TypeVar("P", bound=Project)


def new_project(base_dir: Path, name: str, kind: type[P] = Project, **settings: str) -> P:
    """A folder named `name` under `base_dir`, with free ports and the test images in its `.env`."""
    folder = base_dir / name
    folder.mkdir(parents=True)
    project = kind(folder, name, free_port(), free_port())
    project.settings = {
        "DEVSTACK_PROJECT": name,
        "SIFU_PORT": str(project.sifu_port),
        "JUPYTER_PORT": str(project.jupyter_port),
        "BASE_IMAGE_TAG": TEST_BASE_TAG,
        "NOTEBOOK_IMAGE_TAG": TEST_NOTEBOOK_TAG,
        "NGINX_IMAGE": NGINX_IMAGE,
        "OPENRESTY_IMAGE": OPENRESTY_IMAGE,
        "LB_IMAGE": LB_IMAGE,
        **settings,
    }
    project.write_env()
    return project
