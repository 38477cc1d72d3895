"""The little ASGI we need, written out: reading a bounded body in time, sending JSON, sending errors.

The gateway runs as a raw ASGI app rather than on a framework's request/response objects: measured
here, that framework layer alone cost about a fifth of the non-streaming throughput.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from iflow2api.disconnects import ClientGone
from iflow2api.errors import PayloadTooLarge, RequestTimeout

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"retry-after"),
]


SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Reverse proxies such as nginx buffer responses unless told not to; a stream must flow.
    (b"x-accel-buffering", b"no"),
    *CORS_HEADERS,
]


async def send_frames(send: Send, frames: list[bytes], *, more: bool) -> None:
    """Part of a stream's body; nothing is sent for no frames unless it is the end."""
    if frames or not more:
        await send({"type": "http.response.body", "body": b"".join(frames), "more_body": more})


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = header(scope, b"content-length")
    if limit and declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if limit and size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ReadDeadline:
    """``receive`` with a deadline on each wait for more of the request body.

    uvicorn waits for a body as long as the client likes; a client that stops sending (a
    Content-Length it never reaches, a chunked body that never ends) would hold its connection
    and its task forever. Once the body is complete, calls pass straight through: waiting for
    the client to leave, while an answer streams, has no deadline.
    """

    __slots__ = ("_done", "_receive", "_seconds")

    def __init__(self, receive: Receive, seconds: float) -> None:
        self._receive = receive
        self._seconds = seconds
        self._done = False

    async def __call__(self) -> Message:
        if self._done:
            return await self._receive()
        try:
            async with asyncio.timeout(self._seconds):
                message = await self._receive()
        except TimeoutError:
            self._done = True
            raise RequestTimeout(
                f"The request body stalled: nothing more came for {self._seconds:g} seconds "
                "(setting request_read_timeout).",
                # The rest of the body may still come; the connection cannot serve another request.
                headers=[(b"connection", b"close")],
            ) from None
        if message["type"] != "http.request" or not message.get("more_body"):
            self._done = True
        return message


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {limit} bytes (setting max_body_bytes).")


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *CORS_HEADERS]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, payload: object, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_bytes(send, status, orjson.dumps(payload), extra=extra)
