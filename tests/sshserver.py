"""A real OpenSSH server on loopback, serving git over SSH to one key of the test's own.

The machine's sshd configuration, host keys and authorized_keys are never read or
changed: everything lives in the test's folder, and the server runs as the user
who runs the tests (who is the only user it can log in).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path

from helpers import wait_for
from project import free_port

SSHD = "/usr/sbin/sshd"  # sshd refuses to run unless started by its absolute path


def _keypair(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "devstack-test", "-f", str(path)],
                   check=True, capture_output=True)
    return (path.with_suffix(".pub")).read_text()


class SshServer:
    def __init__(self, folder: Path):
        if not os.path.exists(SSHD):
            raise RuntimeError(f"{SSHD} is missing: install openssh-server (scripts/setup --test does)")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.host_key = folder / "host_ed25519"
        host_public = _keypair(self.host_key)
        self.client_key = folder / "client_ed25519"
        (folder / "authorized_keys").write_text(_keypair(self.client_key))
        self.stranger_key = folder / "stranger_ed25519"  # a key the server was never told about
        _keypair(self.stranger_key)
        self.port = free_port()
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public}")
        (folder / "sshd_config").write_text("\n".join([
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            f"PidFile {folder / 'sshd.pid'}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "LogLevel ERROR",
            "",
        ]))
        self.process: subprocess.Popen | None = None

    def start(self) -> SshServer:
        # sshd's privilege separation folder; Debian's package creates it at boot only.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, timeout=20, interval=0.1, what="sshd to listen")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"

    def ssh_command(self, key: Path | None = None, known_hosts: Path | None = None) -> str:
        """What a user's GIT_SSH_COMMAND (or ~/.ssh/config) says: which key, which known hosts."""
        return " ".join([
            shutil.which("ssh") or "ssh", "-F", "/dev/null", "-o", "IdentitiesOnly=yes",
            "-i", str(key or self.client_key),
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-p", str(self.port),
        ])
