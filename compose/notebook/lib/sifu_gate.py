"""Jupyter refuses a request whose JUPYTER_AUTHORIZATION cookie is missing or
not signed with the project's secret, as production's Jupyter does behind Sifu.
The proxy's gate only checks that the cookie is present; this checks the signature.
"""

import os

from notebook.auth.login import LoginHandler

import sifu_cookie

_SECRET = None


def _secret():
    global _SECRET
    if _SECRET is None:
        path = os.environ.get("SIFU_SECRET_FILE", "")
        _SECRET = sifu_cookie.read_secret(path) if path and os.path.exists(path) else ""
    return _SECRET


class SifuGateLoginHandler(LoginHandler):
    @classmethod
    def get_user(cls, handler):
        if sifu_cookie.verify(_secret(), handler.get_cookie(sifu_cookie.COOKIE_NAME)) is None:
            return None
        return super().get_user(handler)
