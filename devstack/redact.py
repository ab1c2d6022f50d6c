"""Keep secrets out of everything devstack prints or logs."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "********"

# Credentials inside a URL (https://user:token@host, https://token@host).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(?::[^/@\s]*)?@")
# A Jupyter token in a query string (?token=..., &token=...).
_TOKEN_PARAM = re.compile(r"([?&]token=)[^&\s\"']+")
# An Authorization header value that someone echoed (Authorization: token X / Bearer X / Basic X).
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*(?:token|bearer|basic)\s+)\S+")


class Redactor:
    """Replaces known secret values, URL credentials and token parameters with a mask."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, *secrets: str) -> None:
        self._secrets = sorted(set(self._secrets) | {s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
        text = _TOKEN_PARAM.sub(lambda m: f"{m.group(1)}{MASK}", text)
        return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)
