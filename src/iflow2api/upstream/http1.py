"""A small HTTP/1.1 client for the one thing the gateway does: a request upstream, streamed back.

Why not aiohttp or httpx: measured here, the general clients' per-request machinery (header
objects, payload registries, per-request timer objects) cost most of the gateway's CPU time per
request, and with them the gateway could not reach ten times a naive proxy's throughput. This
client writes one prebuilt request, parses the answer with httptools (the parser uvicorn uses),
and keeps connections alive per origin. It does what the upstream leg needs and nothing else:
HTTP and HTTPS, proxies from the environment (CONNECT for HTTPS), gzip/deflate bodies, chunked
or sized bodies, connect/first-byte/idle timeouts, and closing the connection to cancel.

Here: the pool of kept-alive connections and the answer a request gets. One connection is
``upstream.connection`` (with the bounds on what it reads); the request's bytes, the address and
the errors are ``upstream.wire``.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from iflow2api.upstream.connection import MAX_BODY, Connection
from iflow2api.upstream.wire import (
    ConnectFailed,
    ConnectTimeout,
    ReadTimeout,
    StaleConnection,
    Target,
    TransportError,
    build_request,
    parse_url,
)

#: Idle keep-alive connections kept per origin.
MAX_IDLE = 256
#: Seconds an idle connection is trusted to still be open.
MAX_IDLE_SECONDS = 60.0


class Response:
    """The status and headers of an upstream answer; the body is read or streamed on demand."""

    __slots__ = ("_connection", "_pool", "_read_timeout", "_released", "headers", "status")

    def __init__(self, pool: ConnectionPool, connection: Connection, read_timeout: float) -> None:
        self._pool = pool
        self._connection = connection
        self._read_timeout = read_timeout
        self._released = False
        self.status = connection.status
        self.headers = connection.headers

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (several network reads may come as one piece)."""
        connection = self._connection
        timeout = ReadTimeout(f"the upstream went silent for {self._read_timeout:g} s")
        while True:
            if connection.chunks:
                yield connection.take()
                continue
            if connection.backlog:
                # Whatever the reader does with the pieces, other requests get a turn between steps.
                await asyncio.sleep(0)
                connection.inflate_step()
                continue
            if connection.complete:
                return
            await connection.wait(self._read_timeout, timeout)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def finish(self, seconds: float) -> None:
        """Read what is left for at most ``seconds``, ignoring it, so the connection can be reused."""
        connection = self._connection
        give_up = ReadTimeout("gave up waiting for the end of the response")
        connection.discard()
        try:
            while not connection.complete:
                connection.chunks.clear()
                await connection.wait(seconds, give_up)
        except TransportError:
            pass

    def release(self) -> None:
        """Give the connection back if the response was read to the end; otherwise close it.

        Closing is how an unfinished upstream request gets cancelled.
        """
        if self._released:
            return
        self._released = True
        self._pool.put_back(self._connection)


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a connection for a target goes: straight there, or through a proxy."""

    target: Target
    proxy: Target | None
    proxy_authorization: str | None

    @property
    def key(self) -> tuple[str, str, int, str | None]:
        return (
            self.target.scheme,
            self.target.host,
            self.target.port,
            self.proxy.origin if self.proxy else None,
        )


class ConnectionPool:
    """Kept-alive connections per origin (and proxy); ``request`` sends on one and returns its answer."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.connect_timeout = connect_timeout
        self._max_body = max_body
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int, str | None], list[Connection]] = {}
        self._keys: dict[int, tuple[str, str, int, str | None]] = {}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        proxy: str | None,
        head_timeout: float,
        read_timeout: float,
    ) -> Response:
        route = _route(url, proxy)
        absolute = route.proxy is not None and route.target.scheme == "http"
        extra = dict(headers)
        if absolute and route.proxy_authorization:
            extra["proxy-authorization"] = route.proxy_authorization
        request = build_request(method, route.target, extra, body, absolute)
        timeout = ReadTimeout(f"the upstream did not answer within {head_timeout:g} s")
        for attempt in (1, 2):
            # The retry after a stale connection is always on a fresh one, never another idle one.
            connection = self._idle_connection(route.key) if attempt == 1 else None
            reused = connection is not None
            if connection is None:
                connection = await self._connect(route)
            connection.send(*request)
            try:
                while not connection.head_done:
                    await connection.wait(head_timeout, timeout)
            except StaleConnection:
                connection.close()
                if reused and attempt == 1:
                    continue  # the server had dropped the idle connection: one fresh try
                raise
            except BaseException:
                connection.close()
                raise
            self._keys[id(connection)] = route.key
            return Response(self, connection, read_timeout)
        raise AssertionError("unreachable")

    def _idle_connection(self, key: tuple[str, str, int, str | None]) -> Connection | None:
        idle = self._idle.get(key)
        stale_before = time.monotonic() - MAX_IDLE_SECONDS
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if connection.closed or transport is None or transport.is_closing():
                continue
            if connection.idle_since < stale_before:
                # A NAT or firewall may have dropped it without a word; a request on it would hang.
                connection.close()
                continue
            return connection
        return None

    def put_back(self, connection: Connection) -> None:
        key = self._keys.pop(id(connection), None)
        if key is None or not connection.complete or not connection.keep_alive or connection.closed:
            connection.close()
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE:
            connection.close()
        else:
            connection.idle_since = time.monotonic()
            idle.append(connection)

    async def _connect(self, route: _Route) -> Connection:
        loop = asyncio.get_running_loop()
        hop = route.proxy or route.target
        connection = Connection(loop, self._max_body)
        try:
            async with asyncio.timeout(self.connect_timeout):
                tls = hop.scheme == "https"
                await loop.create_connection(
                    lambda: connection,
                    hop.host,
                    hop.port,
                    ssl=self._ssl_context() if tls else None,
                    server_hostname=hop.host if tls else None,
                )
                if route.proxy is not None and route.target.scheme == "https":
                    await self._tunnel(connection, route, loop)
        except TimeoutError:
            connection.close()
            raise ConnectTimeout(
                f"could not connect to {hop.origin} within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            connection.close()
            raise ConnectFailed(f"cannot connect to {hop.origin}: {exc.strerror or exc}") from None
        except BaseException:  # our own errors, and a cancellation mid-handshake
            connection.close()
            raise
        return connection

    async def _tunnel(self, connection: Connection, route: _Route, loop: asyncio.AbstractEventLoop) -> None:
        """Open an HTTPS tunnel through the proxy (CONNECT), then speak TLS inside it."""
        target = route.target
        host = f"[{target.host}]" if ":" in target.host else target.host
        authority = f"{host}:{target.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"host: {authority}"]
        if route.proxy_authorization:
            lines.append(f"proxy-authorization: {route.proxy_authorization}")
        connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while not connection.head_done:
            await connection.wait(self.connect_timeout, ConnectTimeout("the proxy did not answer CONNECT"))
        if connection.status != 200:
            raise ConnectFailed(f"the proxy refused to connect to {target.origin} (HTTP {connection.status})")
        assert connection.transport is not None
        transport = await loop.start_tls(
            connection.transport, connection, self._ssl_context(), server_hostname=target.host
        )
        connection.transport = transport

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _route(url: str, proxy: str | None) -> _Route:
    target = parse_url(url)
    if not proxy:
        return _Route(target, None, None)
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    # The address without user:pass; parse_url keeps IPv6 brackets and the scheme's default port.
    proxy_target = parse_url(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/")
    authorization = None
    if parts.username:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode()
    return _Route(target, proxy_target, authorization)
