"""Talking to the stack the way a browser does: Sifu's login, Jupyter's API and kernel websocket."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
import threading
import time
import uuid
from pathlib import Path

import httpx
import websocket


def login(sifu_url: str) -> httpx.Client:
    """A client holding the cookies a browser gets from Sifu's /login (and Jupyter's own)."""
    client = httpx.Client(follow_redirects=True, timeout=10, trust_env=False)
    response = client.get(f"{sifu_url}/login")
    assert response.status_code == 200, f"/login ended at {response.url} with {response.status_code}"
    assert "JUPYTER_AUTHORIZATION" in client.cookies
    return client


def xsrf_headers(client: httpx.Client) -> dict[str, str]:
    return {"X-XSRFToken": client.cookies.get("_xsrf") or ""}


def start_kernel(client: httpx.Client, jupyter_url: str) -> str:
    started = client.post(f"{jupyter_url}/api/kernels", json={"name": "python3"}, headers=xsrf_headers(client))
    assert started.status_code == 201, started.text
    return started.json()["id"]


def execute(client: httpx.Client, jupyter_url: str, kernel_id: str, code: str, timeout: float = 60) -> str:
    """Execute `code` in a running kernel over its websocket, as the notebook page does; the text result."""
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    ws_url = jupyter_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Cookie: {cookie}"], origin=jupyter_url, timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False},
        }))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return message["content"]["data"]["text/plain"]
            if message["msg_type"] == "error":
                raise AssertionError(f"cell failed: {message['content']['ename']}: {message['content']['evalue']}")
        raise AssertionError(f"no result for {code!r} within {timeout}s")
    finally:
        ws.close()


def run_cell(client: httpx.Client, jupyter_url: str, code: str, timeout: float = 60) -> str:
    """Start a kernel, execute `code` over the kernel's websocket, return the text result."""
    kernel_id = start_kernel(client, jupyter_url)
    try:
        return execute(client, jupyter_url, kernel_id, code, timeout)
    finally:
        client.delete(f"{jupyter_url}/api/kernels/{kernel_id}", headers=xsrf_headers(client))


def save_notebook(client: httpx.Client, jupyter_url: str, name: str) -> None:
    body = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    response = client.put(f"{jupyter_url}/api/contents/{name}", json=body, headers=xsrf_headers(client))
    assert response.status_code in (200, 201), response.text


def answers(url: str, status: int = 200) -> bool:
    """Whether `url` answers with `status` now; a connection refused or reset (a container restarting) is no."""
    try:
        return httpx.get(url, trust_env=False, timeout=5).status_code == status
    except httpx.HTTPError:
        return False


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Background:
    """A devstack command running in the background (no TTY: one plain line per event), its lines collected."""

    def __init__(self, process):  # noqa: ANN001 - subprocess.Popen
        import threading

        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the output is now: `wait_for_line(..., after=mark)` only looks at what comes next."""
        with self._changed:
            return len(self.lines)

    def wait_for_line(self, text: str, timeout: float = 60, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line with {text!r} within {timeout}s; output so far:\n"
                                         + "\n".join(self.lines))
                self._changed.wait(min(left, 0.5))

    def count(self, text: str, after: int = 0) -> int:
        with self._changed:
            return sum(text in line for line in self.lines[after:])

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (what Ctrl-C does in the foreground), then wait for the exit code."""
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode


class OnTerminal:
    """A process whose stdout is a pseudo-terminal (160x50), its output drained and kept."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], preexec_fn=None):  # noqa: ANN001
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.process = subprocess.Popen(argv, cwd=cwd, env={**env, "TERM": "xterm-256color"},
                                        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                        preexec_fn=preexec_fn)
        os.close(slave)
        self.master = master
        self.output = bytearray()  # everything drawn, escape codes included
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def text(self) -> str:
        return bytes(self.output).decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 300, after: int = 0) -> None:
        """Until `text` is on the terminal (in what came after byte `after`: see `mark`)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output[after:]:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no {text!r} on the terminal:\n{self.text()[-3000:]}")
            time.sleep(0.2)

    def mark(self) -> int:
        """Where the output is now: `wait_for(..., after=mark)` only looks at what comes next."""
        return len(self.output)
class RequestLoop:
    """Requests sent in a loop from a background thread, to each URL in turn with a logged-in browser's
    client (and, for Sifu's /health, a fresh client each time as well): every answer that is not 200, or
    no answer at all, is a failure; and the longest time one URL went without a good answer is the gap a
    user saw."""

    def __init__(self, client: httpx.Client, urls: list[str], interval: float = 0.02):
        import threading

        self.client, self.urls, self.interval = client, urls, interval
        self.sent = 0
        self.failures: list[str] = []
        self.longest_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last_ok = {url: time.monotonic() for url in self.urls}
        while not self._stop.is_set():
            for url in self.urls:
                self.sent += 1
                try:
                    code = self.client.get(url, timeout=10).status_code
                    fresh = httpx.get(url, timeout=10, trust_env=False).status_code if url.endswith("/health") \
                        else None
                    ok = code == 200 and fresh in (None, 200)
                    detail = f"{url}: {code}" + (f", fresh client {fresh}" if fresh is not None else "")
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{url}: {type(exc).__name__}"
                now = time.monotonic()
                if ok:
                    self.longest_gap = max(self.longest_gap, now - last_ok[url])
                    last_ok[url] = now
                else:
                    self.failures.append(detail)
            time.sleep(self.interval)
        now = time.monotonic()  # a URL still failing when the loop ends: its gap so far
        if self.failures:
            self.longest_gap = max([self.longest_gap, *(now - at for at in last_ok.values())])
