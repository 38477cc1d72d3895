"""A small HTTP/1.1 client for the one thing the gateway does: a request upstream, streamed back.

Why not aiohttp or httpx: measured here, the general clients' per-request machinery (header
objects, payload registries, per-request timer objects) cost most of the gateway's CPU time per
request, and with them the gateway could not reach ten times a naive proxy's throughput. This
client writes one prebuilt request, parses the answer with httptools (the parser uvicorn uses),
and keeps connections alive per origin. It does what the upstream leg needs and nothing else:
HTTP and HTTPS, proxies from the environment (CONNECT for HTTPS), gzip/deflate bodies, chunked
or sized bodies, connect/first-byte/idle timeouts, and closing the connection to cancel.

What it reads is bounded: an answer's decoded body stops at ``max_body`` bytes (``BodyTooLarge``,
and the connection is closed), and a compressed body is inflated ``INFLATE_STEP`` bytes at a time,
each step a turn of the event loop, so a small download that inflates to gigabytes neither fills
memory nor holds up other requests.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httptools

#: Buffered body bytes above which the socket stops being read until the reader catches up.
HIGH_WATER = 1 << 20
#: Idle keep-alive connections kept per origin.
MAX_IDLE = 256
#: Seconds an idle connection is trusted to still be open.
MAX_IDLE_SECONDS = 60.0
#: Decoded body bytes one answer may have, unless the pool is told otherwise (max_upstream_body).
MAX_BODY = 64 * 1024 * 1024
#: The most a compressed body is inflated by at once: a fraction of a millisecond of work.
INFLATE_STEP = 256 * 1024


class TransportError(Exception):
    """The upstream connection failed; the message says how, without any secret."""


class ConnectFailed(TransportError):
    pass


class ConnectTimeout(ConnectFailed):
    pass


class ReadTimeout(TransportError):
    pass


class BrokenResponse(TransportError):
    """The connection ended, or the bytes made no sense, before the response was complete."""


class _StaleConnection(BrokenResponse):
    """A kept-alive connection closed before any of the response arrived: safe to try afresh."""


class BodyTooLarge(BrokenResponse):
    """The decoded body grew beyond the pool's ``max_body``; reading stopped, the connection closed."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@functools.lru_cache(maxsize=256)
def parse_url(url: str) -> Target:
    """What a URL names; cached, because the same few upstream URLs come back on every request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConnectFailed(f"the port in {url!r} is not a number") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path)


class InvalidHeader(ValueError):
    """A header name or value that cannot be written as-is (nothing was sent)."""


def _check_header(name: str, value: str) -> None:
    # A newline in a value would split the request: refuse it (the CLI calls this an apiKey error).
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
        raise InvalidHeader(f"header {name!r} holds a line break")


def build_request(
    method: str, target: Target, headers: dict[str, str], body: bytes | None, absolute: bool
) -> bytes:
    request_target = f"{target.scheme}://{target.host_header}{target.path}" if absolute else target.path
    lines = [f"{method} {request_target} HTTP/1.1", f"host: {target.host_header}"]
    for name, value in headers.items():
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"content-length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response currently arriving on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int = MAX_BODY) -> None:
        self.loop = loop
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self._header_name = ""
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.body_size = 0
        #: Compressed input not inflated yet (reading is paused while there is any).
        self.backlog: deque[bytes] = deque()
        self._flush_owed = False
        self.error: TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.received_any = False
        self._interim = False
        self._decoder: Any = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.on_headers_complete()  # a CONNECT answer: the tunnel is open
        except httptools.HttpParserError as exc:
            self._fail(BrokenResponse(f"the upstream sent a malformed response ({exc})"))
            self.close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # Only an orderly close ends such a body; a reset means it was cut short.
        if self.head_done and not self.complete and exc is None and self._ends_at_close():
            self.on_message_complete()
            self.keep_alive = False
        if not self.complete:
            if not self.received_any:
                self._fail(_StaleConnection("the upstream closed the connection before answering"))
            else:
                self._fail(
                    BrokenResponse("the upstream closed the connection before the response was complete")
                )

    def _ends_at_close(self) -> bool:
        """A body with neither a length nor chunks ends when the server closes (HTTP/1.0 style)."""
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): skip it, the real one follows.
            self.headers = {}
            self._interim = True
            return
        self.status = status
        self.head_done = True
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "deflate"):
            # wbits 47 accepts gzip and zlib framing alike.
            self._decoder = zlib.decompressobj(47)
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.error is not None:
            return  # refused already (too large): the rest of this read is dropped
        if self._decoder is not None:
            if self.backlog:
                self.backlog.append(body)  # inflated later, in order, by inflate_step
                return
            body = self._inflate(body)
        if body:
            self._take_in(body)

    def _inflate(self, data: bytes) -> bytes:
        """At most ``INFLATE_STEP`` bytes out of ``data``; what is left waits at the backlog's head."""
        decoder = self._decoder
        out: bytes = decoder.decompress(data, INFLATE_STEP)
        # A full step may leave output inside zlib even with all input taken: ask again then.
        if decoder.unconsumed_tail or len(out) >= INFLATE_STEP:
            self.backlog.appendleft(decoder.unconsumed_tail)
            if self.transport is not None:
                self.transport.pause_reading()
        return out

    def inflate_step(self) -> None:
        """Inflate the next step of the backlog (the reader calls this, one turn of the loop each)."""
        try:
            out = self._inflate(self.backlog.popleft())
            if not self.backlog and self._flush_owed:
                out += self._decoder.flush()
                self._flush_owed = False
        except zlib.error as exc:
            corrupt = BrokenResponse(f"the upstream's compressed body is corrupt ({exc})")
            self._refuse(corrupt)
            raise corrupt from None
        if out:
            self._take_in(out)
            if self.error is not None:
                raise self.error
        transport = self.transport
        if not self.backlog and self.buffered <= HIGH_WATER and transport is not None and not self.closed:
            transport.resume_reading()

    def _take_in(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.max_body:
            self._refuse(BodyTooLarge(f"the answer is longer than {self.max_body} bytes, the most read"))
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def discard(self) -> None:
        """Drop the rest of the body unread (not inflated either): only its end is still wanted."""
        self._decoder = None
        self._flush_owed = False
        if self.backlog:
            self.backlog.clear()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _refuse(self, error: TransportError) -> None:
        """Stop reading this answer: drop what is buffered, fail the reader, close the connection."""
        self.chunks.clear()
        self.backlog.clear()
        self.buffered = 0
        self._fail(error)
        self.close()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.error is not None:
            return  # refused: never complete, never reused
        if self._decoder is not None:
            if self.backlog:
                self._flush_owed = True  # the last steps are still to be inflated
            else:
                rest = self._decoder.flush()
                if rest:
                    self._take_in(rest)
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- used by Pool and Response ---------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: TransportError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def send(self, request: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(request)

    async def wait(self, seconds: float, timeout_error: TransportError) -> None:
        """Wait for the next thing to happen on this connection, at most ``seconds``.

        One timer handle, not an ``asyncio.timeout`` context: this runs for every chunk.
        """
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(seconds, self._fail, timeout_error)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        chunks = self.chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.transport is not None and not self.closed and not self.backlog:
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """The status and headers of an upstream answer; the body is read or streamed on demand."""

    __slots__ = ("_connection", "_pool", "_read_timeout", "_released", "headers", "status")

    def __init__(self, pool: Pool, connection: _Connection, read_timeout: float) -> None:
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


class Pool:
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
        self._idle: dict[tuple[str, str, int, str | None], list[_Connection]] = {}
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
            connection.send(request)
            try:
                while not connection.head_done:
                    await connection.wait(head_timeout, timeout)
            except _StaleConnection:
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

    def _idle_connection(self, key: tuple[str, str, int, str | None]) -> _Connection | None:
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

    def put_back(self, connection: _Connection) -> None:
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

    async def _connect(self, route: _Route) -> _Connection:
        loop = asyncio.get_running_loop()
        hop = route.proxy or route.target
        connection = _Connection(loop, self._max_body)
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

    async def _tunnel(self, connection: _Connection, route: _Route, loop: asyncio.AbstractEventLoop) -> None:
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
