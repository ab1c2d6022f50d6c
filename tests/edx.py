"""A stand-in for the developer's Open edX: a real HTTP server on this machine, and a headless
Chromium (Debian's, driven through its chromedriver) to load its pages."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


class EdxServer:
    """Serves `pages` (path -> HTML) on host:port; every other path answers a marker line."""

    def __init__(self, host: str, port: int, marker: str):
        self.marker = marker
        self.pages: dict[str, str] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests.append(self.path)
                body = outer.pages.get(self.path, f"{outer.marker}\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if self.path in outer.pages else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EdxServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def chromium(user_data_dir):
    """A fresh headless Chromium. Missing browser or driver is a failure: scripts/setup --test installs them."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("these tests need Debian's chromium and chromium-driver: run scripts/setup --test", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
