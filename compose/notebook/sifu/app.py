"""A development stand-in for Sifu, used when SIFU_REPO is not set.

It keeps Sifu's contract with the proxy and with Jupyter, nothing more:
- GET /health answers 200;
- GET /login?next=PATH sets the signed JUPYTER_AUTHORIZATION cookie (HttpOnly,
  SameSite=Lax) and redirects to Jupyter on its public port with Jupyter's
  token, which logs the browser into Jupyter as well;
- GET / sends the browser to /login.
It logs no query strings: they carry the token on the way out.
"""

import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import sifu_cookie

LISTEN_ADDRESS = os.environ.get("NOTEBOOK_LISTEN_ADDRESS", "0.0.0.0")
LISTEN_PORT = int(os.environ.get("SIFU_LISTEN_PORT", "3334"))
JUPYTER_PUBLIC_PORT = os.environ.get("JUPYTER_PUBLIC_PORT", "3335")
SUBJECT = os.environ.get("SIFU_STANDIN_USER", "developer")
TOKEN_IN_TEXT = re.compile(r"([?&]token=)[^&\s'\"]*")


def _read(path_variable):
    path = os.environ.get(path_variable, "")
    return sifu_cookie.read_secret(path) if path and os.path.exists(path) else ""


SECRET = _read("SIFU_SECRET_FILE")
JUPYTER_TOKEN = _read("JUPYTER_TOKEN_FILE")


def safe_next(value):
    """Only a path on the Jupyter side: an absolute URL keeps its path, so /login is no open redirect."""
    parts = urlsplit(value or "/tree")
    path = parts.path if parts.path.startswith("/") else "/tree"
    if path in ("/", ""):
        path = "/tree"  # "/" redirects again, and Jupyter logs redirects with their query
    return path, parse_qs(parts.query)


class Handler(BaseHTTPRequestHandler):
    server_version = "sifu-standin"

    def do_GET(self):  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(200, {"status": "ok", "service": "sifu-standin"})
        elif url.path == "/login":
            self._login(parse_qs(url.query).get("next", [""])[0])
        elif url.path == "/":
            self.send_response(302)
            self.send_header("Location", "/login")
            self.end_headers()
        else:
            self._send(404, {"error": "not found"})

    def _login(self, next_value):
        if not SECRET or not JUPYTER_TOKEN:
            self._send(503, {"error": "the project's secrets are not mounted"})
            return
        path, query = safe_next(next_value)
        query["token"] = [JUPYTER_TOKEN]
        host = self._public_host()
        cookie = sifu_cookie.sign(SECRET, SUBJECT)
        self.send_response(302)
        self.send_header("Set-Cookie", f"{sifu_cookie.COOKIE_NAME}={cookie}; Path=/; HttpOnly; SameSite=Lax")
        self.send_header("Location", f"http://{host}:{JUPYTER_PUBLIC_PORT}{path}?{urlencode(query, doseq=True)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _public_host(self):
        """The host the browser used, without Sifu's port: Jupyter is the same host on its own port."""
        host = self.headers.get("Host") or "127.0.0.1"
        if host.startswith("["):  # [::1]:3334
            return host.split("]", 1)[0] + "]"
        return host.rsplit(":", 1)[0]

    def log_request(self, code="-", size="-"):
        path = urlsplit(self.path).path  # never the query: it may carry a token
        if path == "/health" and code in (200, "200"):
            return  # probed every few seconds: only failures are news
        self.log_message("%s %s %s", self.command, path, code)

    def log_message(self, fmt, *args):
        line = TOKEN_IN_TEXT.sub(r"\1[redacted]", fmt % args)
        sys.stdout.write(f"sifu-standin {self.address_string()} {line}\n")
        sys.stdout.flush()


def main():
    print(f"sifu-standin: listening on {LISTEN_ADDRESS}:{LISTEN_PORT} (development stand-in for Sifu)", flush=True)
    ThreadingHTTPServer((LISTEN_ADDRESS, LISTEN_PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
