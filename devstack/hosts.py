"""Host names and addresses: one rule each for loopback, IP literals, URL formatting and sites.

Pure and dependency-free, so that settings, the stack description, the proxy lint and the
Sifu fetcher all ask the same question the same way.
"""

from __future__ import annotations

import ipaddress
import re

# The names by which this machine reaches itself. 0.0.0.0 is no name a browser is served under,
# but a URL written with it reaches this machine too.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::")


def unbracket(host: str) -> str:
    """`[::1]` as an address: `::1`."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def url_host(host: str) -> str:
    """A host as a URL or a Host header writes it: IPv6 addresses in brackets (RFC 3986)."""
    host = unbracket(host)
    return f"[{host}]" if ":" in host else host


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(unbracket(host))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """A loopback name or address: what reaches only this machine."""
    host = unbracket(host).lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(address: str) -> bool:
    return unbracket(address) in WILDCARD_ADDRESSES


def split_names(value: str) -> tuple[str, ...]:
    """A comma-separated list of names, lowercased, blanks dropped."""
    return tuple(name.strip().lower() for name in value.split(",") if name.strip())


def same_site(host_a: str, host_b: str) -> bool:
    """Whether a browser treats two hosts as one site (what SameSite=Lax cookies in a frame need).
    Ports never matter; names and addresses are compared as written (localhost is not 127.0.0.1)."""
    a, b = unbracket(host_a.lower()), unbracket(host_b.lower())
    if a == b:
        return True
    if is_ip(a) or is_ip(b):
        return False
    # Same registrable domain, approximated by the last two labels (no public-suffix list here).
    return a.split(".")[-2:] == b.split(".")[-2:] and "." in a and "." in b


def host_pattern(names: tuple[str, ...]) -> str:
    """An anchored, case-insensitive-ready regular expression matching exactly these Host names
    (as nginx's `$host` holds them: lowercased, port removed, IPv6 in brackets)."""
    return "^(" + "|".join(re.escape(url_host(name)) for name in names) + ")$"
