"""uvicorn's HTTP protocol (httptools), with a deadline and a size limit for a request's headers.

uvicorn times out only an idle kept-alive connection between requests. A connection that sends
nothing, or a request line and some headers and then nothing, is kept open for good; enough of
them and the gateway runs out of file descriptors. Here each request's headers must be in within
``request_read_timeout`` seconds of the connection opening or of the request's first byte.
The body has its own deadline, in the ASGI layer (``asgi.ReadDeadline``), where it can be answered
in the route's error shape.

Nor does uvicorn bound the headers' size with httptools (only with h11): megabytes of headers
would be collected and handed to the gateway. Here they end at ``MAX_HEAD_BYTES`` with a 431.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The most a request line and its headers may take (nginx allows 32 KiB, Node.js 16 KiB).
MAX_HEAD_BYTES = 64 * 1024

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 35\r\nconnection: close\r\n\r\nThe request headers are too large.\n"
)
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 35\r\nconnection: close\r\n\r\nThe request headers took too long.\n"
)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    #: Seconds a request's headers may take (set on a subclass by ``with_header_deadline``).
    header_timeout: float = 60.0
    _header_timer: asyncio.TimerHandle | None = None
    #: Whether some of a request has come, not yet all its headers (a 408 then, not a silent close).
    _begun = False
    #: Bytes received since the request began, while its headers are not all in.
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            # Between requests (uvicorn has just stopped its keep-alive timer): whatever comes
            # must become a request in time, even bytes that start none, such as blank lines.
            self._arm()
        super().data_received(data)
        if self._begun:
            # Counted after parsing: a read that completed the headers (and may carry body) is not.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._head_bytes = 0
        self._arm()  # on a kept-alive connection: the next request's headers start now

    def on_headers_complete(self) -> None:
        self._begun = False
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request waits behind one still being answered; its clock starts later.
            self._arm()
            return
        if self._begun:
            self.transport.write(_TIMED_OUT)
        self.transport.close()


def with_header_deadline(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
