"""Telling loopback addresses apart, for listening and for the page's Host check."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1.

    >>> is_loopback("127.0.0.2"), is_loopback("0.0.0.0"), is_loopback("::1")
    (True, False, True)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_host(host_header: str) -> bool:
    """Whether an HTTP ``Host`` value (with or without a port) names loopback.

    >>> is_loopback_host("localhost:8000"), is_loopback_host("[::1]:80"), is_loopback_host("evil.test")
    (True, True, False)
    """
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return is_loopback(host)
