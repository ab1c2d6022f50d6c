"""The JUPYTER_AUTHORIZATION cookie: `v1.<subject>.<issued-at>.<hmac-sha256 hex>`.

Sifu (or its stand-in) signs it with the project's secret; the Jupyter gate
verifies it. devstack's own prober signs the same format (devstack/cookie.py).
"""

import hashlib
import hmac
import re
import time

COOKIE_NAME = "JUPYTER_AUTHORIZATION"
# How long a signed cookie is good for (Sifu's session is a working day; the stand-in sets the same
# Max-Age), and how far ahead of this clock an issuing clock may run.
MAX_AGE_SECONDS = 12 * 3600
CLOCK_SKEW_SECONDS = 300
_SUBJECT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def read_secret(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def sign(secret, subject, issued_at=None):
    if not _SUBJECT.match(subject):
        raise ValueError("subject must be 1-64 letters, digits, '-' or '_'")
    payload = "v1.%s.%d" % (subject, int(time.time() if issued_at is None else issued_at))
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return payload + "." + mac


def verify(secret, value, now=None):
    """The subject of a valid cookie that has not expired, or None."""
    if not value or not secret:
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not _SUBJECT.match(parts[1]) or not parts[2].isdigit():
        return None
    expected = hmac.new(secret.encode(), ".".join(parts[:3]).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts[3]):
        return None
    age = (time.time() if now is None else now) - int(parts[2])
    return parts[1] if -CLOCK_SKEW_SECONDS <= age <= MAX_AGE_SECONDS else None
