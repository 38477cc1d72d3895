"""The ``x-iflow2api-thinking`` header goes out with the answer's head, however that head is sent:
by the answer itself, or by the first keep-alive ping of a stream still waiting for content."""

from __future__ import annotations

import asyncio
from typing import Any

from iflow2api.asgi import SSE_HEADERS
from iflow2api.calls import THINKING_HEADER, Call


def _heads(sent: list[dict[str, Any]]) -> list[dict[bytes, bytes]]:
    return [dict(m["headers"]) for m in sent if m["type"] == "http.response.start"]


def test_the_head_of_an_answer_carries_what_was_sent_for_thinking() -> None:
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        async def send(message: Any) -> None:
            sent.append(message)

        call = Call(send)
        call.thinking = "enabled; reasoning_effort=high"
        await call.send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})

    asyncio.run(scenario())
    assert _heads(sent)[0][THINKING_HEADER] == b"enabled; reasoning_effort=high"


def test_a_head_sent_by_a_keep_alive_ping_carries_it_too_and_none_when_nothing_was_sent() -> None:
    sent: list[dict[str, Any]] = []

    async def scenario(thinking: str | None) -> None:
        async def send(message: Any) -> None:
            sent.append(message)

        call = Call(send)
        call.thinking = thinking
        call.keep_alive(0.01, lambda error: b"")
        await asyncio.sleep(0.05)
        await call.close()

    asyncio.run(scenario("disabled"))
    assert _heads(sent)[0][THINKING_HEADER] == b"disabled"
    sent.clear()
    asyncio.run(scenario(None))
    assert THINKING_HEADER not in _heads(sent)[0]
