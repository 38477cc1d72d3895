"""One connection to an upstream, as an ``asyncio.Protocol``: it writes a prebuilt request and
parses the answer with httptools, holding the body's pieces until the reader takes them.

What it holds is bounded: an answer's decoded body stops at ``max_body`` bytes (``BodyTooLarge``,
and the connection is closed), reading pauses above ``HIGH_WATER`` buffered bytes, and a compressed
body is inflated ``INFLATE_STEP`` bytes at a time, each step a turn of the event loop (the reader
calls ``inflate_step``), so a small download that inflates to gigabytes neither fills memory nor
holds up other requests.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from typing import Any

import httptools

from iflow2api.upstream.wire import BodyTooLarge, BrokenResponse, StaleConnection, TransportError

#: Buffered body bytes above which the socket stops being read until the reader catches up.
HIGH_WATER = 1 << 20
#: Decoded body bytes one answer may have, unless the pool is told otherwise (max_upstream_body).
MAX_BODY = 64 * 1024 * 1024
#: The most a compressed body is inflated by at once: a fraction of a millisecond of work.
INFLATE_STEP = 256 * 1024


class Connection(asyncio.Protocol):
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
                self._fail(StaleConnection("the upstream closed the connection before answering"))
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

    # -- used by ConnectionPool and Response ------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: TransportError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def send(self, *pieces: bytes) -> None:
        self._reset()
        assert self.transport is not None
        for piece in pieces:
            self.transport.write(piece)

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
