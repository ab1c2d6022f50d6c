"""Readiness, checked the way a user reaches the stack: through the proxy.

Each probe is one hop with a URL and the status it expects. `wait_until_ready`
polls them in order until all pass or the deadline comes; the timeout names the
hop that failed and the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .cookie import COOKIE_NAME, sign_cookie
from .errors import NotReady
from .spec import StackSpec


# How often, while waiting, to check that the containers are still worth waiting for.
ALIVE_CHECK_SECONDS = 2.0
# The proxy logs every request with its user agent: this one lets the live view leave
# devstack's own probes out of the latest log lines.
PROBE_USER_AGENT = "devstack-probe"
PROBE_HEADERS = {"User-Agent": PROBE_USER_AGENT}


# The project's own processes answer as they please (production's Sifu: 404 at /); up is below this.
ANSWERS_BELOW = 500


@dataclass(frozen=True)
class Probe:
    hop: str  # what is being reached, in words
    url: str
    expect: int  # the status; 0: any status below ANSWERS_BELOW
    cookies: dict[str, str] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def passes(self, status: int) -> bool:
        return status < ANSWERS_BELOW if self.expect == 0 else status == self.expect

    @property
    def expected(self) -> str:
        return f"below {ANSWERS_BELOW}" if self.expect == 0 else str(self.expect)


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    ok: bool
    status: int | None  # None: no HTTP answer at all
    detail: str
    elapsed_ms: float


def stack_probes(spec: StackSpec, sifu_secret: str, jupyter_token: str) -> list[Probe]:
    """Sifu's health on the Sifu port; Jupyter's status on the Jupyter port, gated and with the cookie.
    The project's own processes have none of devstack's health path, token or login handler: Sifu is up
    when it answers below 500 at SIFU_HEALTH_PATH, Jupyter when the gate refuses it without the cookie
    and it answers below 500 with one."""
    urls = spec.urls(spec.probe_host)
    cookie = {COOKIE_NAME: sign_cookie(sifu_secret)}
    health = urls["sifu"] + spec.app.sifu_health_path.lstrip("/")
    if spec.app.own:
        return [
            Probe("Sifu through the proxy", health, 0),
            Probe("Jupyter through the proxy, without the cookie (the gate)", urls["jupyter"] + "api/status", 403),
            Probe("Jupyter through the proxy, with the cookie", urls["jupyter"] + "api/status", 0, cookies=cookie),
        ]
    return [
        Probe("Sifu through the proxy", health, 200),
        Probe("Jupyter through the proxy, without the cookie (the gate)", urls["jupyter"] + "api/status", 403),
        Probe("Jupyter through the proxy, with the cookie", urls["jupyter"] + "api/status", 200,
              cookies=cookie, headers={"Authorization": f"token {jupyter_token}"}),
    ]


def list_kernels(url: str, sifu_secret: str, jupyter_token: str, host: str = "", timeout: float = 3.0) -> list[dict]:
    """Jupyter's running kernels (id, execution_state, ...) from its API at `url` (…/api/kernels), with
    the cookie and token a user's browser holds; `host`: the Host header to send (Jupyter answers only
    the stack's names). Any failure to get the list is a NotReady naming the URL."""
    headers = {"Authorization": f"token {jupyter_token}", **({"Host": host} if host else {})}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, headers=PROBE_HEADERS,
                          cookies={COOKIE_NAME: sign_cookie(sifu_secret)}) as client:
            response = client.get(url, headers=headers)
            kernels = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        raise NotReady(f"Jupyter's kernel list at {url}: {type(exc).__name__}: {exc}") from None
    if kernels is None:
        raise NotReady(f"Jupyter's kernel list at {url} answered {response.status_code}")
    return kernels if isinstance(kernels, list) else []


def run_probe(client: httpx.Client, probe: Probe) -> ProbeResult:
    started = time.perf_counter()
    try:
        response = client.get(probe.url, cookies=probe.cookies, headers=probe.headers)
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return ProbeResult(probe, False, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                           elapsed)
    elapsed = (time.perf_counter() - started) * 1000
    ok = probe.passes(response.status_code)
    detail = f"answered {response.status_code}" + ("" if ok else f", expected {probe.expected}")
    return ProbeResult(probe, ok, response.status_code, detail, elapsed)


def check_once(probes: list[Probe], timeout: float = 3.0) -> list[ProbeResult]:
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, headers=PROBE_HEADERS) as client:
        return [run_probe(client, probe) for probe in probes]


def wait_until_ready(
    probes: list[Probe],
    timeout: float,
    interval: float = 0.25,
    still_alive: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stopped: Callable[[], bool] = lambda: False,
) -> list[ProbeResult]:
    """Poll until every probe passes. `still_alive` raises if a container died (no point waiting);
    `stopped` true (devstack is ending) ends the wait with NotReady."""
    deadline = clock() + timeout
    next_alive_check = clock() + ALIVE_CHECK_SECONDS
    with httpx.Client(timeout=3.0, follow_redirects=False, trust_env=False, headers=PROBE_HEADERS) as client:
        while True:
            results = [run_probe(client, probe) for probe in probes]
            failing = next((r for r in results if not r.ok), None)
            if failing is None:
                return results
            if clock() >= next_alive_check:
                still_alive()
                next_alive_check = clock() + ALIVE_CHECK_SECONDS
            if stopped():
                raise NotReady(f"stopped waiting for {failing.probe.hop}: devstack is ending")
            if clock() >= deadline:
                raise NotReady(f"not ready after {timeout:.0f}s: {failing.probe.hop} at {failing.probe.url} "
                               f"{failing.detail}")
            sleep(interval)
