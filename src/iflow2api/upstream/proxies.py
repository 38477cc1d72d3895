"""Which proxy an outgoing request goes through: the one lookup every call of the gateway uses.

Chat and model listings (``upstream.client``) and the OAuth host (code exchange, refresh, the key
fetch in ``auth.oauth_client``) all ask a ``ProxyLookup``, so a proxy set for one is used by all.
The environment decides, as for curl and the standard library: ``HTTPS_PROXY`` for https URLs,
``HTTP_PROXY`` for http ones (either case, the lower one winning), and ``NO_PROXY`` listing hosts
and domain suffixes reached directly (``*`` for all). An https request through a proxy is a
``CONNECT`` tunnel; an http one is sent to the proxy whole (see ``upstream.http1``).
"""

from __future__ import annotations

import urllib.request

from iflow2api.upstream import wire


def environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme://host``, or None to connect directly."""
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(scheme)


class ProxyLookup:
    """``lookup(url)``: the proxy for that URL. Read once per origin: the standard library reads
    the environment on every call, which is too slow for every chat request."""

    __slots__ = ("_by_origin",)

    def __init__(self) -> None:
        self._by_origin: dict[str, str | None] = {}

    def __call__(self, url: str) -> str | None:
        target = wire.parse_url(url)
        if target.origin not in self._by_origin:
            self._by_origin[target.origin] = environment_proxy(target.scheme, target.host)
        return self._by_origin[target.origin]
