"""A stream relayed to another dialect (Messages, Responses) that fails after content still counts.

Whatever ends it (an error inside the stream, a broken connection, an upstream gone silent), what
the model wrote and the prompt are estimated and recorded before the error is raised; before any
content nothing is recorded, as the attempt is handed to another account.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from iflow2api.calls import Call
from iflow2api.errors import GatewayError
from iflow2api.providers.iflow import Iflow
from iflow2api.reasoning import ReasoningStore
from iflow2api.services.streams import parsed_chunks
from iflow2api.upstream import wire

REQUEST = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi " * 100}], "stream": True}


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


TEXT = event({"id": "c", "choices": [{"index": 0, "delta": {"content": "word " * 20}}]})
ERROR = event({"error": {"message": "boom", "code": "server_error"}})


class Upstream:
    """A response whose body is ``pieces``, then ``failure`` raised (if any)."""

    def __init__(self, pieces: list[bytes], failure: Exception | None = None) -> None:
        self.pieces, self.failure = pieces, failure

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.failure is not None:
            raise self.failure


async def consume(upstream: Upstream) -> Call:
    async def send(message: object) -> None:
        pass

    call = Call(send)
    speaker = Iflow(thinking_default=False)
    chunks = parsed_chunks(speaker, upstream, REQUEST, ReasoningStore(save=lambda item: None), call)  # type: ignore[arg-type]
    with pytest.raises(GatewayError):
        async for _ in chunks:
            pass
    return call


FAILURES = {
    "error-in-stream": ([ERROR], None),
    "connection-broke": ([], wire.TransportError("reset")),
    "went-silent": ([], wire.ReadTimeout("idle")),
}


@pytest.mark.parametrize(("after", "failure"), FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_after_content_records_an_estimate(after: list[bytes], failure: Exception | None) -> None:
    call = asyncio.run(consume(Upstream([TEXT, *after], failure)))
    assert call.estimated
    assert call.prompt_tokens > 100 and call.completion_tokens >= 20


@pytest.mark.parametrize(("after", "failure"), FAILURES.values(), ids=FAILURES.keys())
def test_a_failure_before_content_records_nothing(after: list[bytes], failure: Exception | None) -> None:
    call = asyncio.run(consume(Upstream(after, failure)))
    assert not call.estimated and call.prompt_tokens == call.completion_tokens == 0
