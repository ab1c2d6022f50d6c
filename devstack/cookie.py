"""Signing Sifu's JUPYTER_AUTHORIZATION cookie on the host, for readiness probes.

The format is the one the image's `sifu_cookie.py` verifies
(compose/notebook/lib/sifu_cookie.py); a unit test holds the two together.
"""

from __future__ import annotations

import hashlib
import hmac
import time

COOKIE_NAME = "JUPYTER_AUTHORIZATION"


def sign_cookie(secret: str, subject: str = "devstack-probe", issued_at: float | None = None) -> str:
    payload = f"v1.{subject}.{int(time.time() if issued_at is None else issued_at)}"
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"
