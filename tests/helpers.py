"""Talking to the stack the way a browser does: Sifu's login, Jupyter's API and kernel websocket."""

from __future__ import annotations

import json
import time
import uuid

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


def run_cell(client: httpx.Client, jupyter_url: str, code: str, timeout: float = 60) -> str:
    """Start a kernel, execute `code` over the kernel's websocket, return the text result."""
    started = client.post(f"{jupyter_url}/api/kernels", json={"name": "python3"}, headers=xsrf_headers(client))
    assert started.status_code == 201, started.text
    kernel_id = started.json()["id"]
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
        client.delete(f"{jupyter_url}/api/kernels/{kernel_id}", headers=xsrf_headers(client))


def save_notebook(client: httpx.Client, jupyter_url: str, name: str) -> None:
    body = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    response = client.put(f"{jupyter_url}/api/contents/{name}", json=body, headers=xsrf_headers(client))
    assert response.status_code in (200, 201), response.text


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
