"""Seed the local image store with the public images the stack starts FROM.

On a machine that reaches Docker Hub the tags are pulled. Where no registry is
reachable (CI here), `debian:bookworm-slim` is made with debootstrap and
`docker import`, and the nginx, OpenResty and haproxy images are built from it
with Debian's nginx (and, for OpenResty, the modules it bundles) and Debian's
haproxy, laid out like the official images, and the MySQL image (RDS_IMAGE's
default) from Debian's MariaDB with an entrypoint that follows the official
image's contract. An existing tag is never replaced.

    python tests/seed.py            # seed what is missing
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

DEBIAN_TAG = os.environ.get("BASE_FROM_IMAGE", "debian:bookworm-slim")
NGINX_TAG = os.environ.get("NGINX_IMAGE", "nginx:stable")
OPENRESTY_TAG = os.environ.get("OPENRESTY_IMAGE", "openresty/openresty:1.27.1.2-bookworm")
RDS_TAG = os.environ.get("RDS_IMAGE", "mysql:8.0")
LB_TAG = os.environ.get("LB_IMAGE", "haproxy:2.8")
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
HERE = Path(__file__).resolve().parent


def _has(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def _try_pull(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.pull(tag)
        return True
    except (APIError, DockerException):
        return False


def seed_debian(client: docker.DockerClient, tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="devstack-seed-") as tmp:
        root = Path(tmp) / "rootfs"
        try:
            subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), MIRROR],
                           check=True, stdout=subprocess.DEVNULL)
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(["docker", "import",
                            "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                            "--change", 'CMD ["bash"]', "-", tag],
                           stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
            tar.wait()
        finally:
            # A failed debootstrap leaves proc (and sometimes sys) mounted in its target.
            for mount in ("proc", "sys", "dev/pts", "dev"):
                target = root / mount
                if target.is_dir() and os.path.ismount(target):
                    subprocess.run(["umount", "-l", str(target)], check=False)


def seed_from_debian(client: docker.DockerClient, image: str, tag: str, base: str) -> None:
    """Build tests/images/<image> FROM the Debian image."""
    client.images.build(path=str(HERE / "images" / image), tag=tag, buildargs={"BASE_FROM_IMAGE": base},
                        pull=False, rm=True, forcerm=True)


def ensure_seed_images(debian_tag: str = DEBIAN_TAG, nginx_tag: str = NGINX_TAG,
                       openresty_tag: str = OPENRESTY_TAG, lb_tag: str = LB_TAG) -> None:
    client = docker.from_env(timeout=600)
    try:
        if not _has(client, debian_tag) and not _try_pull(client, debian_tag):
            print(f"seeding {debian_tag} with debootstrap (no registry answered)", file=sys.stderr)
            seed_debian(client, debian_tag)
        if not _has(client, nginx_tag) and not _try_pull(client, nginx_tag):
            print(f"seeding {nginx_tag} from {debian_tag} with Debian's nginx", file=sys.stderr)
            seed_from_debian(client, "nginx", nginx_tag, debian_tag)
        if not _has(client, openresty_tag) and not _try_pull(client, openresty_tag):
            print(f"seeding {openresty_tag} from {debian_tag} with Debian's nginx and OpenResty's modules",
                  file=sys.stderr)
            seed_from_debian(client, "openresty", openresty_tag, debian_tag)
        if not _has(client, lb_tag) and not _try_pull(client, lb_tag):
            print(f"seeding {lb_tag} from {debian_tag} with Debian's haproxy", file=sys.stderr)
            seed_from_debian(client, "haproxy", lb_tag, debian_tag)
    finally:
        client.close()


def ensure_rds_image(rds_tag: str = RDS_TAG, debian_tag: str = DEBIAN_TAG) -> None:
    """The coupled database's image (only the tests that run one need it, so it is seeded apart)."""
    client = docker.from_env(timeout=600)
    try:
        if not _has(client, rds_tag) and not _try_pull(client, rds_tag):
            print(f"seeding {rds_tag} from {debian_tag} with Debian's MariaDB (the official image's contract)",
                  file=sys.stderr)
            seed_from_debian(client, "mysql", rds_tag, debian_tag)
    finally:
        client.close()


if __name__ == "__main__":
    ensure_seed_images()
    ensure_rds_image()
