#!/usr/bin/env python3
"""Docker's HEALTHCHECK: Sifu's /health and Jupyter's /api answer inside the container."""
import os
import sys
import urllib.request

checks = [
    "http://127.0.0.1:%s/health" % os.environ.get("SIFU_LISTEN_PORT", "3334"),
    "http://127.0.0.1:%s/api" % os.environ.get("JUPYTER_LISTEN_PORT", "3335"),
]
for url in checks:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status != 200:
                sys.exit("%s answered %s" % (url, response.status))
    except Exception as exc:  # noqa: BLE001 - any failure is unhealthy
        sys.exit("%s: %s" % (url, exc))
