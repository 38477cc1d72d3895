"""The upstream HTTP/1.1 client against raw loopback servers that write exactly the bytes a test needs.

Every server here is a plain ``asyncio.start_server`` on 127.0.0.1:0; each test runs its own event
loop through ``run``. A server handler's exception fails the test (it is re-raised on exit).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import shutil
import socket
import ssl
import subprocess
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from iflow2api.upstream import http1, wire
from iflow2api.upstream.client import UpstreamClient
from iflow2api.upstream.connection import HIGH_WATER
from iflow2api.upstream.http1 import ConnectionPool, Response
from iflow2api.upstream.wire import (
    BrokenResponse,
    ConnectFailed,
    ConnectTimeout,
    ReadTimeout,
    StaleConnection,
)

T = TypeVar("T")

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test's coroutine on a fresh loop; no test may take more than a few seconds."""
    return asyncio.run(asyncio.wait_for(coro, 10))


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


class Conn:
    """The server's side of one accepted connection."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.index = server.connections + 1  # 1 for the first connection
        self.eof = asyncio.Event()

    async def request(self) -> bytes:
        """One whole request, head and (content-length) body, exactly as received."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + (await self.reader.readexactly(length) if length else b"")
        self.server.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes, step: int, pause: float = 0.002) -> None:
        """Send ``data`` in ``step``-byte writes with a pause between them: many small TCP reads."""
        for i in range(0, len(data), step):
            await self.send(data[i : i + step])
            await asyncio.sleep(pause)

    async def until_eof(self) -> None:
        """Read (and drop) until the client closes; then ``eof`` is set."""
        while await self.reader.read(65536):
            pass
        self.eof.set()


Handler = Callable[[Conn], Awaitable[None]]


class Server:
    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.conns: list[Conn] = []
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.port = 0

    @property
    def connections(self) -> int:
        return len(self.conns)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        conn = Conn(self, reader, writer)
        self.conns.append(conn)
        try:
            await self.handler(conn)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            writer.close()

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in self.conns:
            conn.writer.close()
        await self._server.wait_closed()
        await asyncio.sleep(0.01)  # let the transports' close callbacks run
        if self.errors and exc_info[0] is None:
            raise self.errors[0]


def keep_answering(response: bytes = b"") -> Handler:
    """Answer every request on the connection with ``response`` (default: 200 "ok")."""

    async def handler(conn: Conn) -> None:
        while True:
            try:
                await conn.request()
            except asyncio.IncompleteReadError:
                return
            await conn.send(response or ok())

    return handler


async def fetch(
    pool: ConnectionPool,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    proxy: str | None = None,
    head_timeout: float = 2.0,
    read_timeout: float = 2.0,
) -> Response:
    return await pool.request(
        method,
        url,
        headers or {},
        body,
        proxy=proxy,
        head_timeout=head_timeout,
        read_timeout=read_timeout,
    )


async def read_all(response: Response) -> bytes:
    try:
        return await response.read()
    finally:
        response.release()


def idle_count(pool: ConnectionPool) -> int:
    return sum(len(idle) for idle in pool._idle.values())


async def get_once(handler: Handler, path: str = "/") -> tuple[Response, bytes]:
    """One GET against a fresh server running ``handler``; the response and its whole body."""
    async with Server(handler) as server:
        pool = ConnectionPool(connect_timeout=1)
        try:
            response = await fetch(pool, server.url(path))
            return response, await read_all(response)
        finally:
            await pool.close()


def answer_once(*parts: bytes, close: bool = False) -> Handler:
    async def handler(conn: Conn) -> None:
        await conn.request()
        for part in parts:
            await conn.send(part)
        if not close:
            await conn.until_eof()

    return handler


# -- 1. bodies -------------------------------------------------------------------------------------


def test_content_length_body() -> None:
    response, body = run(get_once(answer_once(ok(b"hello world"))))
    assert (response.status, body) == (200, b"hello world")
    assert response.headers["content-length"] == "11"


def test_chunked_body_in_many_small_writes() -> None:
    payload = b"The quick brown fox jumps over the lazy dog, twice over."  # 0x38 bytes
    wire = CHUNKED_HEAD + b"1a\r\n" + payload[:26] + b"\r\n" + b"1e\r\n" + payload[26:] + b"\r\n0\r\n\r\n"
    pieces: list[bytes] = []

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(CHUNKED_HEAD)
        await asyncio.sleep(0.02)
        # "1" then "a\r\n": the chunk-size line arrives in two reads; the rest 3 bytes at a time.
        await conn.send(b"1")
        await asyncio.sleep(0.02)
        await conn.trickle(wire[len(CHUNKED_HEAD) + 1 :], 3)
        await conn.until_eof()

    async def main() -> None:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url())
            pieces.extend([piece async for piece in response.iter_chunks()])
            response.release()
            await pool.close()

    run(main())
    assert b"".join(pieces) == payload
    assert len(pieces) > 5  # it really came in many pieces, each passed on as it arrived


def test_body_without_length_ends_at_close() -> None:
    for head in (b"HTTP/1.0 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"):
        response, body = run(get_once(answer_once(head, b"until ", b"the end", close=True)))
        assert (response.status, body) == (200, b"until the end")


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZip", gzip.compress)],
)
def test_content_encoding_is_decoded(encoding: str, compress: Callable[[bytes], bytes]) -> None:
    text = b'{"choices": [' + b'{"delta": "token"}, ' * 2000 + b"]}"
    packed = compress(text)
    assert len(packed) < len(text) // 10
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: %s\r\ncontent-length: %d\r\n\r\n" % (
        encoding.encode(),
        len(packed),
    )
    _, body = run(get_once(answer_once(head + packed)))
    assert body == text


def test_chunked_gzip_body_is_decoded() -> None:
    text = b"data: hello\n\n" * 500
    packed = gzip.compress(text)
    third = len(packed) // 3
    parts = (packed[:third], packed[third : 2 * third], packed[2 * third :])
    wire = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
    _, body = run(get_once(answer_once(head, wire, b"0\r\n\r\n")))
    assert body == text


def test_corrupt_gzip_is_a_broken_response() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 20\r\n\r\n"
    with pytest.raises(BrokenResponse):
        run(get_once(answer_once(head + b"this is not gzip!!!!")))


# -- 2. headers ------------------------------------------------------------------------------------


def test_response_headers_lower_cased_and_repeats_joined() -> None:
    head = (
        b"HTTP/1.1 429 Too Many Requests\r\nSet-Cookie: a=1\r\nX-Trace-ID: abc\r\n"
        b"set-cookie: b=2\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n"
    )
    response, body = run(get_once(answer_once(head)))
    assert response.status == 429
    assert body == b""
    assert response.headers == {
        "set-cookie": "a=1, b=2",
        "x-trace-id": "abc",
        "retry-after": "3",
        "content-length": "0",
    }


def test_informational_answers_are_skipped() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await asyncio.sleep(0.02)
        await conn.send(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n")
        await asyncio.sleep(0.02)
        await conn.send(ok(b"final"))
        await conn.until_eof()

    response, body = run(get_once(handler))
    assert (response.status, body) == (200, b"final")
    assert "link" not in response.headers


def test_request_bytes_on_the_wire() -> None:
    async def main() -> Server:
        async with Server(answer_once(ok())) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(
                pool,
                server.url("/v1/chat/completions?x=1&y=2"),
                method="POST",
                headers={"authorization": "Bearer sk-1", "x-Custom": "v"},
                body=b'{"model":"m"}',
            )
            assert await read_all(response) == b"ok"
            await pool.close()
        return server

    server = run(main())
    assert server.requests == [
        b"POST /v1/chat/completions?x=1&y=2 HTTP/1.1\r\n"
        b"host: 127.0.0.1:%d\r\n"
        b"authorization: Bearer sk-1\r\n"
        b"x-Custom: v\r\n"
        b"content-length: 13\r\n"
        b"\r\n"
        b'{"model":"m"}' % server.port
    ]


def test_default_port_is_left_out_of_host() -> None:
    assert wire.build_request("GET", wire.parse_url("https://api.example.com/x"), {}, None, False) == (
        b"GET /x HTTP/1.1\r\nhost: api.example.com\r\n\r\n",
    )
    assert wire.parse_url("http://[::1]:8080").host_header == "[::1]:8080"


@pytest.mark.parametrize(
    "headers",
    [{"authorization": "Bearer k\r\nx-evil: 1"}, {"authorization": "Bearer k\n"}, {"x-a\r\nb": "v"}],
)
def test_line_break_in_a_header_is_refused_before_sending(headers: dict[str, str]) -> None:
    async def main() -> int:
        async with Server(keep_answering()) as server:
            pool = ConnectionPool(connect_timeout=1)
            with pytest.raises(ValueError, match="line break"):
                await fetch(pool, server.url(), headers=headers)
            await asyncio.sleep(0.05)
            await pool.close()
            return server.connections

    assert run(main()) == 0


# -- 3. keep-alive ---------------------------------------------------------------------------------


def test_sequential_requests_share_one_connection() -> None:
    async def main() -> Server:
        async with Server(keep_answering()) as server:
            pool = ConnectionPool(connect_timeout=1)
            for _ in range(3):
                assert await read_all(await fetch(pool, server.url())) == b"ok"
            assert idle_count(pool) == 1
            await pool.close()
        return server

    server = run(main())
    assert server.connections == 1
    assert len(server.requests) == 3


def test_connection_close_answer_is_not_reused() -> None:
    async def handler(conn: Conn) -> None:
        # The server says "close" but leaves the socket open: the client must close it itself.
        await conn.request()
        await conn.send(ok(extra=b"connection: close\r\n"))
        await conn.until_eof()

    async def main() -> Server:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            assert await read_all(await fetch(pool, server.url())) == b"ok"
            await asyncio.wait_for(server.conns[0].eof.wait(), 1)
            assert await read_all(await fetch(pool, server.url())) == b"ok"
            await pool.close()
        return server

    assert run(main()).connections == 2


def test_response_released_unread_closes_the_connection() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await conn.until_eof()

    async def main() -> Server:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url())
            assert response.status == 200
            response.release()
            response.release()  # twice is harmless
            await asyncio.wait_for(server.conns[0].eof.wait(), 1)
            assert idle_count(pool) == 0
            second = await fetch(pool, server.url())
            assert second.status == 200
            second.release()
            await pool.close()
        return server

    assert run(main()).connections == 2


# -- 4. stale keep-alive connections ---------------------------------------------------------------


def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(ok(b"first" if conn.index == 1 else b"again"))
        if conn.index == 1:
            return  # closes the idle connection right after answering
        await conn.until_eof()

    async def main() -> Server:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            assert await read_all(await fetch(pool, server.url())) == b"first"
            await asyncio.sleep(0.05)
            assert await read_all(await fetch(pool, server.url())) == b"again"
            await pool.close()
        return server

    assert run(main()).connections == 2


def test_connection_dropped_as_the_request_arrives_is_retried_once() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(ok(b"conn %d" % conn.index))
        if conn.index == 1:
            await conn.request()  # the keep-alive race: the server drops it just as it is reused
            return
        await conn.until_eof()

    async def main() -> Server:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            assert await read_all(await fetch(pool, server.url())) == b"conn 1"
            assert await read_all(await fetch(pool, server.url(), body=b"x")) == b"conn 2"
            await pool.close()
        return server

    server = run(main())
    assert server.connections == 2
    assert len(server.requests) == 3  # the second request was sent twice


def test_the_retry_uses_a_fresh_connection_not_another_idle_one() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(ok(b"conn %d" % conn.index))
        if conn.index <= 2:
            await conn.request()  # both idle connections are dropped when next used
            return
        await conn.until_eof()

    async def main() -> Server:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            first, second = await asyncio.gather(fetch(pool, server.url()), fetch(pool, server.url()))
            assert {await read_all(first), await read_all(second)} == {b"conn 1", b"conn 2"}
            assert idle_count(pool) == 2
            assert await read_all(await fetch(pool, server.url())) == b"conn 3"
            await pool.close()
        return server

    assert run(main()).connections == 3


def test_fresh_connection_closed_before_answering_is_not_retried() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()

    async def main() -> int:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            with pytest.raises(BrokenResponse, match="before answering"):
                await fetch(pool, server.url())
            await asyncio.sleep(0.05)
            await pool.close()
            return server.connections

    assert run(main()) == 1


# -- 5. timeouts -----------------------------------------------------------------------------------


def test_head_timeout() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.until_eof()  # never answers

    async def main() -> float:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            start = time.monotonic()
            with pytest.raises(ReadTimeout, match=r"did not answer within 0\.2 s"):
                await fetch(pool, server.url(), head_timeout=0.2)
            elapsed = time.monotonic() - start
            await asyncio.wait_for(server.conns[0].eof.wait(), 1)  # and the request was abandoned
            await pool.close()
            return elapsed

    assert 0.15 <= run(main()) < 1.0


def test_idle_timeout_while_streaming() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(CHUNKED_HEAD + b"5\r\nfirst\r\n")
        await conn.until_eof()  # then silence

    async def main() -> float:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url(), read_timeout=0.2)
            chunks = response.iter_chunks()
            assert await anext(chunks) == b"first"
            start = time.monotonic()
            with pytest.raises(ReadTimeout, match=r"silent for 0\.2 s"):
                await anext(chunks)
            elapsed = time.monotonic() - start
            response.release()
            await asyncio.wait_for(server.conns[0].eof.wait(), 1)
            await pool.close()
            return elapsed

    assert 0.15 <= run(main()) < 1.0


def test_connect_failure_to_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here once the socket is closed

    async def main() -> None:
        pool = ConnectionPool(connect_timeout=1)
        with pytest.raises(ConnectFailed, match=f"cannot connect to http://127.0.0.1:{port}") as caught:
            await fetch(pool, f"http://127.0.0.1:{port}/")
        assert not isinstance(caught.value, ConnectTimeout)
        await pool.close()

    run(main())


# -- 6, 7. streaming and a body cut short ----------------------------------------------------------


def test_chunks_are_passed_on_before_the_rest_exists() -> None:
    async def main() -> list[bytes]:
        go = asyncio.Event()

        async def handler(conn: Conn) -> None:
            await conn.request()
            await conn.send(CHUNKED_HEAD + b"5\r\nfirst\r\n")
            await go.wait()
            await conn.send(b"6\r\nsecond\r\n0\r\n\r\n")
            await conn.until_eof()

        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url())
            got: list[bytes] = []
            async for chunk in response.iter_chunks():
                got.append(chunk)
                if len(got) == 1:
                    assert not go.is_set()
                    go.set()
            response.release()
            assert idle_count(pool) == 1  # read to the end: kept for the next request
            await pool.close()
            return got

    assert run(main()) == [b"first", b"second"]


@pytest.mark.parametrize(
    "wire",
    [
        CHUNKED_HEAD + b"5\r\nhello\r\n8\r\nwor",
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhellowor",
    ],
)
def test_body_cut_short_is_broken_after_the_partial_data(wire: bytes) -> None:
    async def main() -> bytes:
        async with Server(answer_once(wire, close=True)) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url())
            got = b""
            with pytest.raises(BrokenResponse, match="before the response was complete") as caught:
                async for chunk in response.iter_chunks():
                    got += chunk
            assert not isinstance(caught.value, StaleConnection)  # not "safe to send again"
            response.release()
            assert idle_count(pool) == 0
            await pool.close()
            return got

    assert run(main()) == b"hellowor"


def test_malformed_answer_is_broken() -> None:
    with pytest.raises(BrokenResponse, match="malformed"):
        run(get_once(answer_once(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n")))


# -- 8. cancellation -------------------------------------------------------------------------------


def test_cancelled_stream_closes_the_connection() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(CHUNKED_HEAD + b"5\r\nfirst\r\n")
        await conn.until_eof()

    async def main() -> None:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url(), read_timeout=5)
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in response.iter_chunks():
                    first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            await asyncio.sleep(0.02)  # now it waits for more
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not server.conns[0].eof.is_set()
            response.release()
            await asyncio.wait_for(server.conns[0].eof.wait(), 0.5)
            assert idle_count(pool) == 0
            await pool.close()

    run(main())


# -- 9. backpressure -------------------------------------------------------------------------------


def test_unread_body_pauses_reading() -> None:
    size = 24 * HIGH_WATER
    payload = bytes(range(256)) * (size // 256)

    async def main() -> None:
        all_sent = asyncio.Event()

        async def handler(conn: Conn) -> None:
            await conn.request()
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + payload)
            all_sent.set()
            await conn.until_eof()

        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(pool, server.url())
            await asyncio.sleep(0.3)  # not reading: the client must stop taking bytes off the socket
            buffered = response._connection.buffered
            assert HIGH_WATER < buffered < HIGH_WATER + (1 << 19)
            assert not all_sent.is_set()
            body = await read_all(response)
            assert all_sent.is_set()
            assert len(body) == size
            assert body == payload
            await pool.close()

    run(main())


# -- 10. proxies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("userinfo", "authorization"),
    [("", None), ("us%40er:p%3Ass@", "Basic " + base64.b64encode(b"us@er:p:ss").decode())],
)
def test_plain_http_through_a_proxy(userinfo: str, authorization: str | None) -> None:
    async def main() -> Server:
        async with Server(keep_answering()) as proxy:
            pool = ConnectionPool(connect_timeout=1)
            response = await fetch(
                pool,
                "http://upstream.invalid:8080/v1/models?all=1",
                headers={"authorization": "Bearer k"},
                proxy=f"http://{userinfo}127.0.0.1:{proxy.port}",
            )
            assert await read_all(response) == b"ok"
            await pool.close()
        return proxy

    proxy = run(main())
    expected = b"GET http://upstream.invalid:8080/v1/models?all=1 HTTP/1.1\r\nhost: upstream.invalid:8080\r\n"
    expected += b"authorization: Bearer k\r\n"
    if authorization:
        expected += b"proxy-authorization: %s\r\n" % authorization.encode()
    assert proxy.requests == [expected + b"\r\n"]


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("https://api.example.com/v1", b"api.example.com:443"),
        ("https://api.example.com:8443/v1", b"api.example.com:8443"),
        ("https://[2001:db8::1]/v1", b"[2001:db8::1]:443"),
        ("https://[2001:db8::1]:8443/v1", b"[2001:db8::1]:8443"),
    ],
)
def test_https_through_a_proxy_opens_a_tunnel(url: str, authority: bytes) -> None:
    async def main() -> Server:
        answer = b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n"
        async with Server(keep_answering(answer)) as proxy:
            pool = ConnectionPool(connect_timeout=1)
            with pytest.raises(ConnectFailed, match=r"refused .*\(HTTP 407\)") as caught:
                await fetch(pool, url, proxy=f"http://me:secret@127.0.0.1:{proxy.port}")
            assert "secret" not in str(caught.value)
            await pool.close()
        return proxy

    proxy = run(main())
    credentials = base64.b64encode(b"me:secret")
    assert proxy.requests == [
        b"CONNECT %s HTTP/1.1\r\nhost: %s\r\nproxy-authorization: Basic %s\r\n\r\n"
        % (authority, authority, credentials)
    ]


@pytest.mark.parametrize(
    ("proxy", "origin", "port"),
    [
        ("proxy.example:3128", "http://proxy.example:3128", 3128),
        ("http://u:p@proxy.example", "http://proxy.example", 80),
        ("https://proxy.example", "https://proxy.example", 443),
        ("http://[2001:db8::2]:3128", "http://[2001:db8::2]:3128", 3128),
    ],
)
def test_proxy_address(proxy: str, origin: str, port: int) -> None:
    route = http1._route("https://api.example.com/", proxy)
    assert route.proxy is not None
    assert (route.proxy.origin, route.proxy.port) == (origin, port)
    assert route.proxy_authorization == ("Basic dTpw" if "u:p@" in proxy else None)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


def test_https_tunnel_through_a_proxy(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def main() -> tuple[Server, Server]:
        async with Server(keep_answering(ok(b"secret hello")), server_context) as origin:

            async def tunnel(conn: Conn) -> None:
                await conn.request()
                reader, writer = await asyncio.open_connection("127.0.0.1", origin.port)
                await conn.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(pipe(conn.reader, writer), pipe(reader, conn.writer))

            async with Server(tunnel) as proxy:
                pool = ConnectionPool(connect_timeout=2, ssl_context=client_context)
                url = f"https://localhost:{origin.port}/secure"
                for _ in range(2):
                    response = await fetch(pool, url, proxy=f"http://127.0.0.1:{proxy.port}")
                    assert await read_all(response) == b"secret hello"
                await pool.close()
                await asyncio.sleep(0.1)  # the TLS goodbye through the tunnel
        return origin, proxy

    origin, proxy = run(main())
    assert proxy.requests == [
        b"CONNECT localhost:%d HTTP/1.1\r\nhost: localhost:%d\r\n\r\n" % (origin.port, origin.port)
    ]
    assert origin.connections == 1
    assert origin.requests == [b"GET /secure HTTP/1.1\r\nhost: localhost:%d\r\n\r\n" % origin.port] * 2


# -- 11. which proxy the environment names ---------------------------------------------------------


def test_proxy_for_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = UpstreamClient(connect_timeout=1, first_byte_timeout=1, idle_timeout=1)
    assert client.proxy_for("http://127.0.0.1:8080/v1") is None
    assert client.proxy_for("http://localhost/v1") is None
    assert client.proxy_for("http://api.example.com/v1") == "http://proxy.example:3128"
    assert client.proxy_for("https://api.example.com/v1") is None  # no HTTPS_PROXY set

    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy.example:8080")
    fresh = UpstreamClient(connect_timeout=1, first_byte_timeout=1, idle_timeout=1)
    assert fresh.proxy_for("https://api.example.com/v1") == "http://secure-proxy.example:8080"
    assert fresh.proxy_for("https://127.0.0.1:8443/v1") is None


def test_no_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    client = UpstreamClient(connect_timeout=1, first_byte_timeout=1, idle_timeout=1)
    assert client.proxy_for("http://api.example.com/v1") is None


def test_finish_waits_for_a_trailing_end_so_the_connection_is_kept() -> None:
    """[DONE] arrives, the chunked terminator 50 ms later: the connection still goes back to the pool."""

    async def handler(conn: Conn) -> None:
        while True:
            try:
                await conn.request()
            except asyncio.IncompleteReadError:
                return
            await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await conn.send(b"e\r\ndata: [DONE]\n\n\r\n")
            await asyncio.sleep(0.05)
            await conn.send(b"0\r\n\r\n")

    async def main() -> Server:
        async with Server(handler) as server:
            pool = ConnectionPool(connect_timeout=1)
            for _ in range(2):
                response = await fetch(pool, server.url())
                async for chunk in response.iter_chunks():
                    assert b"[DONE]" in chunk
                    break
                await response.finish(1.0)
                response.release()
            assert idle_count(pool) == 1
            await pool.close()
        return server

    assert run(main()).connections == 1


def test_idle_connections_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> Server:
        async with Server(keep_answering()) as server:
            pool = ConnectionPool(connect_timeout=1)
            assert await read_all(await fetch(pool, server.url())) == b"ok"
            monkeypatch.setattr(http1, "MAX_IDLE_SECONDS", -1.0)  # everything idle is now too old
            assert await read_all(await fetch(pool, server.url())) == b"ok"
            await pool.close()
        return server

    assert run(main()).connections == 2
