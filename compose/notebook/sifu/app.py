"""A development stand-in for Sifu, used when SIFU_REPO is not set.

It keeps Sifu's contract with the proxy and with Jupyter, nothing more:
- GET /health answers 200;
- GET /login?next=PATH sets the signed JUPYTER_AUTHORIZATION cookie (HttpOnly,
  SameSite=Lax, expiring) and redirects to Jupyter at its public URL with
  Jupyter's token, which logs the browser into Jupyter as well;
- GET / sends the browser to /login.
Every URL it writes comes from the stack's public URLs (SIFU_PUBLIC_URL,
JUPYTER_PUBLIC_URL), never from the Host header: a request under another name
(a page that re-pointed its DNS name at this machine) is sent to the public
/login, and gets neither cookie nor token.
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
SIFU_PUBLIC_URL = os.environ.get("SIFU_PUBLIC_URL", "http://localhost:3334").rstrip("/")
JUPYTER_PUBLIC_URL = os.environ.get("JUPYTER_PUBLIC_URL", "http://localhost:3335").rstrip("/")
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
            self._redirect(f"{SIFU_PUBLIC_URL}/login")
        else:
            self._send(404, {"error": "not found"})

    def _login(self, next_value):
        if not SECRET or not JUPYTER_TOKEN:
            self._send(503, {"error": "the project's secrets are not mounted"})
            return
        path, query = safe_next(next_value)
        if not self._under_public_name():
            # The cookie would be set for, and the token sent to, whatever site named itself in Host.
            wanted = f"{path}?{urlencode(query, doseq=True)}" if query else path
            self._redirect(f"{SIFU_PUBLIC_URL}/login?{urlencode({'next': wanted})}")
            return
        query["token"] = [JUPYTER_TOKEN]
        cookie = sifu_cookie.sign(SECRET, SUBJECT)
        self._redirect(f"{JUPYTER_PUBLIC_URL}{path}?{urlencode(query, doseq=True)}", set_cookie=(
            f"{sifu_cookie.COOKIE_NAME}={cookie}; Path=/; Max-Age={sifu_cookie.MAX_AGE_SECONDS}; "
            "HttpOnly; SameSite=Lax"))

    def _under_public_name(self):
        """Whether the browser asked for this stand-in under its public URL's host name. The port is
        not compared: a proxy that sends `Host $host` drops it, and a name is what rebinding forges."""
        asked = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        return asked == (urlsplit(SIFU_PUBLIC_URL).hostname or "")

    def _redirect(self, location, set_cookie=None):
        self.send_response(302)
        if set_cookie:
            self.send_header("Set-Cookie", set_cookie)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

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
