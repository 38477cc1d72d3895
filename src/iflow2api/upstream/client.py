"""The one HTTP client every upstream call goes through.

It wraps ``upstream.http1`` (why a client of our own: see that module) with the gateway's settings
and turns transport failures into ``iflow2api.errors``, here and nowhere else.
"""

from __future__ import annotations

import email.utils
import math
import time

from iflow2api.errors import UpstreamAuthError, UpstreamTimeout, UpstreamUnavailable
from iflow2api.upstream import http1, wire
from iflow2api.upstream.connection import MAX_BODY
from iflow2api.upstream.http1 import Response
from iflow2api.upstream.proxies import ProxyLookup

__all__ = ["Response", "UpstreamClient", "retry_after_seconds"]


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
        except wire.ConnectTimeout as exc:
            raise UpstreamTimeout(f"Upstream: {exc} (setting connect_timeout).") from None
        except wire.ReadTimeout:
            raise UpstreamTimeout(
                f"The upstream did not answer within {self.first_byte_timeout:g} s "
                "(setting first_byte_timeout)."
            ) from None
        except wire.TransportError as exc:
            raise UpstreamUnavailable(f"Upstream: {exc}.") from None
        except wire.InvalidHeader:
            raise UpstreamAuthError(
                "The API key in the iFlow settings holds characters no HTTP header can carry; check it."
            ) from None
