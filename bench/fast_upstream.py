"""A fake OpenAI-compatible upstream built to never be the bottleneck.

A raw ``asyncio.Protocol`` with the httptools parser and pre-encoded answers: no framework, no JSON
encoding per request, no checks on what it receives (the iFlow headers and signature are ignored).

- ``POST /v1/chat/completions``: a fixed ``chat.completion`` with usage; with ``"stream": true`` an
  SSE stream (chunked transfer encoding) of ``--chunks`` content chunks ``--interval-ms`` apart,
  then a finish chunk, a usage chunk and ``data: [DONE]``. The first chunk goes out at once, so the
  time to first chunk measures only what sits in between.
- ``POST /v1/messages``: a fixed Anthropic ``message``, so that large Messages bodies can be sent
  to it directly and through the naive proxy too (bench/bodies.py).
- ``GET /v1/models`` a short list; ``GET /health`` 200.

Each streamed chunk's ``content`` is the ``CLOCK_MONOTONIC`` nanosecond at which it was written.
That clock is shared by every process on the machine, so the client can tell how long each chunk
took to reach it, through a proxy or not::

    python bench/fast_upstream.py --port 8001 --chunks 10 --interval-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, cast

import httptools

MODEL = "qwen3-coder-plus"
_CREATED = 1_700_000_000


@dataclass(frozen=True, slots=True)
class StreamShape:
    chunks: int
    interval: float


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


_USAGE = {"prompt_tokens": 25, "completion_tokens": 10, "total_tokens": 35}

COMPLETION = _response(
    "200 OK",
    "application/json",
    _compact(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": _CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
        }
    ),
)
MODELS = _response(
    "200 OK",
    "application/json",
    _compact(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": _CREATED, "owned_by": "iflow"}
                for name in (MODEL, "kimi-k2", "deepseek-v3.2", "glm-4.6")
            ],
        }
    ),
)
MESSAGE = _response(
    "200 OK",
    "application/json",
    _compact(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 10},
        }
    ),
)
HEALTH = _response("200 OK", "text/plain", b"ok")
NOT_FOUND = _response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _event(payload: bytes) -> bytes:
    """One SSE event as one HTTP chunk: ``<hex length>\\r\\n<data>\\r\\n``."""
    event = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def _chunk_template(delta: dict[str, str]) -> tuple[bytes, bytes]:
    """The chunk's JSON split around the content, so a chunk costs two concatenations."""
    marker = "\x00"
    text = _compact(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {**delta, "content": marker}, "finish_reason": None}],
        }
    )
    before, after = text.split(b"\\u0000")
    return before, after


FIRST_CHUNK = _chunk_template({"role": "assistant"})
NEXT_CHUNK = _chunk_template({})
STREAM_TAIL = (
    _event(
        _compact(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": MODEL,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
        )
    )
    + _event(
        _compact(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": MODEL,
                "choices": [],
                "usage": _USAGE,
            }
        )
    )
    + _event(b"[DONE]")
    + b"0\r\n\r\n"
)


def wants_stream(body: bytes) -> bool:
    """Whether a request body asks for a stream, without decoding it.

    >>> wants_stream(b'{"model":"m","stream": true}'), wants_stream(b'{"stream":false}')
    (True, False)
    """
    return b'"stream":true' in body or b'"stream": true' in body


class Connection(asyncio.Protocol):
    """One client connection: answers requests in order, keep-alive, streams on a timer."""

    def __init__(self, shape: StreamShape) -> None:
        self._shape = shape
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        # Requests that arrive while a stream is still running wait here (pipelining is legal).
        self._pending: deque[tuple[bytes, bytes, bytes, bool]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._streaming = False
        self._close_after_stream = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = (
            self._parser.get_method(),
            self._url,
            b"".join(self._body),
            self._parser.should_keep_alive(),
        )
        self._pending.append(request)
        if not self._streaming:
            self._answer_pending()

    def _answer_pending(self) -> None:
        while self._pending and not self._streaming and self._transport is not None:
            method, url, body, keep_alive = self._pending.popleft()
            self._answer(method, url.partition(b"?")[0], body)
            if self._streaming:
                self._close_after_stream = not keep_alive
            elif not keep_alive:
                self._transport.close()

    def _answer(self, method: bytes, path: bytes, body: bytes) -> None:
        assert self._transport is not None
        if method == b"POST" and path == b"/v1/chat/completions":
            if wants_stream(body):
                self._streaming = True
                self._transport.write(STREAM_HEAD + self._content_chunk(FIRST_CHUNK))
                self._schedule(1)
            else:
                self._transport.write(COMPLETION)
        elif method == b"POST" and path == b"/v1/messages":
            self._transport.write(MESSAGE)
        elif method == b"GET" and path == b"/v1/models":
            self._transport.write(MODELS)
        elif method == b"GET" and path == b"/health":
            self._transport.write(HEALTH)
        else:
            self._transport.write(NOT_FOUND)

    @staticmethod
    def _content_chunk(template: tuple[bytes, bytes]) -> bytes:
        return _event(template[0] + b"%d" % time.monotonic_ns() + template[1])

    def _schedule(self, sent: int) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._shape.interval, self._send_next, sent)

    def _send_next(self, sent: int) -> None:
        if self._transport is None:
            return
        if sent < self._shape.chunks:
            self._transport.write(self._content_chunk(NEXT_CHUNK))
            self._schedule(sent + 1)
            return
        self._transport.write(STREAM_TAIL)
        self._timer = None
        self._streaming = False
        if self._close_after_stream:
            self._transport.close()
        else:
            self._answer_pending()


async def serve(host: str, port: int, shape: StreamShape) -> None:
    loop = asyncio.get_running_loop()
    # backlog: the benchmark opens 64+ connections at once; the default 100 is close to that.
    server = await loop.create_server(lambda: Connection(shape), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed: the fake must be cheaper than anything it is compared with."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=10, help="content chunks per stream")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="gap between content chunks")
    args = parser.parse_args()
    shape = StreamShape(chunks=max(1, args.chunks), interval=args.interval_ms / 1000)
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.host, args.port, shape))


if __name__ == "__main__":
    main()
