"""Talking to the iFlow OAuth host: exchanging a code, refreshing, fetching the API key.

The protocol (URLs, bodies, parsing) is ``auth.oauth``; this module only sends and retries.
``getUserInfo`` is retried as the CLI does (protocol §4.5): three attempts, 1 s then 2 s apart,
on a 5xx, 408, 429 or a network error.
"""

from __future__ import annotations

import asyncio
import logging
import time

from iflow2api.auth import oauth
from iflow2api.errors import LoginUnavailable
from iflow2api.upstream import http1, wire
from iflow2api.upstream.client import transport_failure
from iflow2api.upstream.proxies import ProxyLookup

log = logging.getLogger("iflow2api.oauth")

#: Seconds to wait for the OAuth host; it answers small JSON documents.
TIMEOUT = 30.0
RETRY_DELAYS = (1.0, 2.0)
_RETRY_STATUSES = frozenset({408, 429})


class OAuthClient:
    def __init__(self, base_url: str, *, pool: http1.ConnectionPool | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._pool = pool or http1.ConnectionPool(connect_timeout=TIMEOUT)
        self._owns_pool = pool is None
        #: HTTPS_PROXY, NO_PROXY, ...: looked up as for every other outgoing request.
        self.proxy_for = ProxyLookup()

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()

    async def _call(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        try:
            response = await self._pool.request(
                method,
                url,
                headers,
                body,
                proxy=self.proxy_for(url),
                head_timeout=TIMEOUT,
                read_timeout=TIMEOUT,
            )
            try:
                return response.status, await response.read()
            finally:
                response.release()
        except wire.TransportError as exc:
            raise transport_failure(exc, "login") from None

    async def exchange_code(self, code: str, redirect_uri: str) -> oauth.Tokens:
        status, body = await self._call(
            "POST",
            oauth.token_url(self.base_url),
            oauth.token_headers(),
            oauth.code_exchange_body(code, redirect_uri),
        )
        return oauth.parse_tokens(status, body, now=time.time())

    async def refresh(self, refresh_token: str) -> oauth.Tokens:
        status, body = await self._call(
            "POST", oauth.token_url(self.base_url), oauth.token_headers(), oauth.refresh_body(refresh_token)
        )
        return oauth.parse_tokens(status, body, now=time.time())

    async def user_info(self, access_token: str) -> oauth.UserInfo:
        url = oauth.user_info_url(self.base_url, access_token)
        for delay in (*RETRY_DELAYS, None):
            try:
                status, body = await self._call("GET", url, {"accept": "application/json"}, None)
            except LoginUnavailable:
                if delay is None:
                    raise
            else:
                if delay is None or not (status >= 500 or status in _RETRY_STATUSES):
                    return oauth.parse_user_info(status, body)
            log.info("getUserInfo failed; trying again in %g s", delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def login(self, code: str, redirect_uri: str) -> tuple[oauth.Tokens, oauth.UserInfo]:
        """A code from the consent page, all the way to the ``sk-`` key (§4.3 steps 6-8)."""
        tokens = await self.exchange_code(code, redirect_uri)
        return tokens, await self.user_info(tokens.access_token)
