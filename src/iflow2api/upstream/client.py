"""The one HTTP client every upstream call goes through.

It wraps ``upstream.http1`` (why a client of our own: see that module) with the gateway's settings
and turns transport failures into ``iflow2api.errors`` (``transport_failure``), here and nowhere
else: the dispatch service and the OAuth client use the same mapping.
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Literal

from iflow2api.errors import (
    GatewayError,
    LoginUnavailable,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from iflow2api.upstream import http1, wire
from iflow2api.upstream.connection import MAX_BODY
from iflow2api.upstream.http1 import Response
from iflow2api.upstream.proxies import ProxyLookup

__all__ = ["Response", "UpstreamClient", "retry_after_seconds", "transport_failure"]

#: Where a connection failed: ``asking`` (connecting, sending, waiting for the head) or
#: ``reading`` (the body, after a status was in hand); or ``login``, anywhere in a call to the
#: iFlow login service (``auth.oauth_client``).
Stage = Literal["asking", "reading", "login"]


def transport_failure(
    exc: wire.TransportError, stage: Stage, *, first_byte_timeout: float = 0.0
) -> GatewayError:
    """What a connection that failed at ``stage`` means for the client: the one place that says so.

    >>> transport_failure(wire.ReadTimeout("idle"), "reading").code
    'upstream_timeout'
    """
    if stage == "login":
        # Every way a call to the login service fails is a temporary one: retried, and refreshes
        # keep the login (a timeout there is its own fixed one, not a setting of the gateway's).
        return LoginUnavailable(f"The iFlow login service could not be reached: {exc}.")
    if stage == "asking":
        if isinstance(exc, wire.ConnectTimeout):
            return UpstreamTimeout(f"Upstream: {exc} (setting connect_timeout).")
        if isinstance(exc, wire.ReadTimeout):
            return UpstreamTimeout(
                f"The upstream did not answer within {first_byte_timeout:g} s (setting first_byte_timeout)."
            )
        return UpstreamUnavailable(f"Upstream: {exc}.")
    if isinstance(exc, wire.BodyTooLarge):
        return UpstreamTooLarge(
            f"The upstream's answer was not read to its end: {exc} (setting max_upstream_body)."
        )
    if isinstance(exc, wire.ReadTimeout):
        return UpstreamTimeout("The upstream went silent for too long (setting stream_idle_timeout).")
    # Cut off mid-answer, or bytes that are not HTTP.
    return UpstreamError(f"The upstream's answer broke off before it was complete: {exc}.")


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds, whether given as a number or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # A day at most: "inf" or a year is no advice a client can act on.
        return min(max(0.0, seconds), 86_400.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class UpstreamClient:
    def __init__(
        self,
        *,
        connect_timeout: float,
        first_byte_timeout: float,
        idle_timeout: float,
        max_body: int = MAX_BODY,
    ) -> None:
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout
        self._pool = http1.ConnectionPool(connect_timeout=connect_timeout, max_body=max_body)
        #: The proxy for a URL (HTTPS_PROXY, NO_PROXY, ...), the same lookup the OAuth calls use.
        self.proxy_for = ProxyLookup()

    async def start(self) -> None:
        """Nothing to open in advance: connections are made on first use and then kept."""

    async def close(self) -> None:
        await self._pool.close()

    async def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        """Send and wait for the response head; the caller reads the body and must release it."""
        try:
            return await self._pool.request(
                method,
                url,
                headers,
                body,
                proxy=self.proxy_for(url),
                head_timeout=self.first_byte_timeout,
                read_timeout=self.idle_timeout,
            )
        except wire.TransportError as exc:
            raise transport_failure(exc, "asking", first_byte_timeout=self.first_byte_timeout) from None
        except wire.InvalidHeader:
            raise UpstreamAuthError(
                "The API key in the iFlow settings holds characters no HTTP header can carry; check it."
            ) from None
