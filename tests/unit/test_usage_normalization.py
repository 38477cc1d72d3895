"""Every usage the gateway notes goes through the account's profile first (``normalize_usage``).

A stub profile plays a host that counts cache hits its own way (as DeepSeek's
``prompt_cache_hit_tokens``): whole answers, the chat fast path and the parsed streams of the
other dialects all record the cached tokens from OpenAI's ``prompt_tokens_details``, and what the
client is sent carries the same shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from iflow2api.calls import Call
from iflow2api.providers.base import Outgoing, Profile
from iflow2api.reasoning import ReasoningStore
from iflow2api.services.answers import normalized_usage, whole_completion
from iflow2api.services.chat_stream import chat_relay
from iflow2api.services.streams import parsed_chunks

HOST_USAGE = {"prompt_tokens": 1000, "completion_tokens": 30, "total_tokens": 1030, "hits": 896}
REQUEST: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


class CacheHits(Profile):
    """A host that reports cache hits as ``usage.hits``."""

    name: ClassVar[str] = "cache-hits"

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        hits = usage.get("hits")
        if not isinstance(hits, int):
            return usage
        rest = {name: value for name, value in usage.items() if name != "hits"}
        return {**rest, "prompt_tokens_details": {"cached_tokens": hits}}


class InPlace(Profile):
    """A host whose profile rewrites usage in place and returns it."""

    name: ClassVar[str] = "in-place"

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        if "hits" in usage:
            usage["prompt_tokens_details"] = {"cached_tokens": usage.pop("hits")}
        return usage


class Upstream:
    def __init__(self, pieces: list[bytes], content_type: str = "text/event-stream") -> None:
        self.pieces = pieces
        self.headers = {"content-type": content_type}
        self.status = 200

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def read(self) -> bytes:
        return b"".join(self.pieces)

    async def finish(self, seconds: float) -> None:
        pass


def event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


STREAM = [
    event({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]}),
    event({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    event({"id": "c1", "choices": [], "usage": HOST_USAGE}),
    b"data: [DONE]\n\n",
]
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
    "usage": HOST_USAGE,
}


def memory() -> ReasoningStore:
    return ReasoningStore(save=lambda item: None)


def test_normalized_usage_says_whether_anything_changed() -> None:
    generic = {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2}}
    assert not normalized_usage(Profile(), generic)
    assert generic == {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2}}
    for profile in (CacheHits(), InPlace()):
        usage: dict[str, Any] = dict(HOST_USAGE)
        assert normalized_usage(profile, usage)
        assert usage["prompt_tokens_details"] == {"cached_tokens": 896} and "hits" not in usage
        assert not normalized_usage(profile, usage)  # already in OpenAI's shape


def test_a_whole_answer_is_recorded_and_returned_in_openai_shape() -> None:
    call = Call(None)  # type: ignore[arg-type]

    async def scenario() -> tuple[bytes, dict[str, Any], bool]:
        upstream = Upstream([orjson.dumps(COMPLETION)], "application/json")
        return await whole_completion(CacheHits(), upstream, REQUEST, call, memory())  # type: ignore[arg-type]

    _, completion, changed = asyncio.run(scenario())
    assert changed  # the raw bytes no longer match: the client is sent the completion
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 896}
    assert (call.prompt_tokens, call.cached_tokens, call.estimated) == (1000, 896, False)
    assert call.usage_row().cached_tokens == 896


def test_the_chat_fast_path_records_and_sends_the_usage_in_openai_shape() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    call = Call(send)  # type: ignore[arg-type]
    request = {**REQUEST, "stream_options": {"include_usage": True}}
    outgoing = Outgoing("http://host/chat/completions", {}, b"{}", stream=True)

    async def scenario() -> None:
        relay = chat_relay(call, memory())
        await relay(CacheHits(), Upstream(STREAM), request, outgoing)  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert (call.prompt_tokens, call.cached_tokens) == (1000, 896)
    body = b"".join(message.get("body", b"") for message in sent)
    usage_chunks = [
        orjson.loads(line[6:])
        for line in body.split(b"\n")
        if line.startswith(b"data: {") and b'"usage":{' in line
    ]
    assert [chunk["usage"]["prompt_tokens_details"] for chunk in usage_chunks] == [{"cached_tokens": 896}]
    assert "hits" not in usage_chunks[0]["usage"]


def test_a_parsed_stream_hands_the_translator_the_usage_in_openai_shape() -> None:
    call = Call(None)  # type: ignore[arg-type]

    async def scenario() -> list[dict[str, Any]]:
        chunks = parsed_chunks(InPlace(), Upstream(STREAM), REQUEST, memory(), call)  # type: ignore[arg-type]
        return [chunk async for chunk in chunks]

    chunks = asyncio.run(scenario())
    usages = [chunk["usage"] for chunk in chunks if isinstance(chunk.get("usage"), dict)]
    assert usages == [
        {
            "prompt_tokens": 1000,
            "completion_tokens": 30,
            "total_tokens": 1030,
            "prompt_tokens_details": {"cached_tokens": 896},
        }
    ]
    assert (call.prompt_tokens, call.completion_tokens, call.cached_tokens) == (1000, 30, 896)
