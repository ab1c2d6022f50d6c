"""A private git server on loopback, for tests: git's smart-HTTP backend behind HTTP Basic auth.

`git http-backend` (the CGI program git ships) serves the repositories under a
folder; the server in front of it refuses every request whose password is not
the token, as GitHub refuses a clone of a private repository. It never logs a
request's headers, so the token it checks appears nowhere but in the test.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _http_backend() -> str:
    found = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    backend = Path(found) / "git-http-backend"
    if not backend.is_file():
        raise RuntimeError(f"git-http-backend is not in {found}: install git's full package")
    return str(backend)


class GitServer:
    """Serves the bare repositories under `root` at http://127.0.0.1:<port>/<name>.git."""

    def __init__(self, root: Path, token: str, delay: float = 0.0):
        self.root = root
        self.token = token
        # Slows every answer down, so that a test polling /proc sees git's processes alive.
        self.delay = delay
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status): no headers, no secrets
        self.authorized_requests = 0
        backend = _http_backend()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                self._serve()

            def do_POST(self):  # noqa: N802
                self._serve()

            def _serve(self):
                if server.delay:
                    time.sleep(server.delay)
                if not server.authorized(self.headers.get("Authorization", "")):
                    self._refuse()
                    return
                server.authorized_requests += 1
                path, _, query = self.path.partition("?")
                body = self._body()
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": "test",
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                result = subprocess.run([backend], input=body, env=env, capture_output=True, timeout=60)
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = result.stdout.partition(b"\n\n")
                status, headers = 200, []
                for line in head.decode("latin-1").splitlines():
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                server.requests.append((self.command, path, status))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _refuse(self):
                server.requests.append((self.command, self.path.partition("?")[0], 401))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private sifu"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt, *args):  # quiet: and never a header
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return password == self.token

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def start(self) -> GitServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@devstack.local",
                             "-c", "init.defaultBranch=main", *args],
                            cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


class SifuRepository:
    """A repository holding a Sifu stand-in of the test's own, published as a bare repository."""

    def __init__(self, workdir: Path, bare: Path):
        self.workdir = workdir
        self.bare = bare

    @classmethod
    def create(cls, root: Path, name: str, version: str = "1") -> SifuRepository:
        workdir = root / f"{name}-work"
        bare = root / "served" / f"{name}.git"
        workdir.mkdir(parents=True)
        git("init", "-q", str(workdir))
        repo = cls(workdir, bare)
        repo.commit_version(version, push=False)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--bare", str(workdir), str(bare))
        return repo

    def commit_version(self, version: str, push: bool = True) -> str:
        (self.workdir / "app.py").write_text(TEST_SIFU.replace("@VERSION@", version))
        (self.workdir / "README.md").write_text(f"test Sifu, version {version}\n")
        git("add", "-A", cwd=self.workdir)
        git("commit", "-q", "-m", f"version {version}", cwd=self.workdir)
        if push:
            git("push", "-q", str(self.bare), "HEAD:refs/heads/main", cwd=self.workdir)
        return git("rev-parse", "HEAD", cwd=self.workdir)

    def tag(self, name: str) -> None:
        git("tag", "-a", name, "-m", name, cwd=self.workdir)
        git("push", "-q", str(self.bare), f"refs/tags/{name}", cwd=self.workdir)

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.bare, ignore_errors=True)


# A Sifu of the test's own: /health says who it is and which version, so the test
# knows the image runs the repository's code and not the bundled stand-in.
TEST_SIFU = '''\
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] == "/health":
            body = json.dumps({"status": "ok", "service": "test-sifu", "version": "@VERSION@"}).encode()
            self.send_response(200)
        else:
            body = b"{}"
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("SIFU_LISTEN_PORT", "3334"))), Handler).serve_forever()
'''
