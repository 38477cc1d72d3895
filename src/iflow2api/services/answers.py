"""Reading a whole upstream answer, and counting what an answer cost.

The I/O half of the answers that are not streams: the body read to its end (its transport
failures mapped by ``upstream.client.transport_failure``), parsed and judged once; and the usage
recorded on the request's ``Call``, estimated when the upstream reported none.

Every usage the gateway notes, streamed or not, is the host's brought into OpenAI's shape by the
account's profile first (``normalized_usage``): cached prompt tokens in
``prompt_tokens_details.cached_tokens``, reasoning tokens in
``completion_tokens_details.reasoning_tokens``, whatever the host called them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from iflow2api.calls import Call
from iflow2api.dialects import token_count
from iflow2api.dialects.openai_chat import answer as chat_answer
from iflow2api.errors import UpstreamError
from iflow2api.providers.base import Profile
from iflow2api.reasoning import ReasoningStore
from iflow2api.upstream import wire
from iflow2api.upstream.client import Response, transport_failure


def is_sse(response: Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


async def read(response: Response) -> bytes:
    try:
        return await response.read()
    except wire.TransportError as exc:
        raise transport_failure(exc, "reading") from None


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        snippet = raw[:200].decode("utf-8", "replace")
        raise UpstreamError(f"The upstream answered with something that is not JSON: {snippet!r}") from None


def completion_of(profile: Profile, payload: object) -> dict[str, Any]:
    """The ``chat.completion`` in ``payload``, or the error it is instead."""
    error = profile.business_error(payload)
    if error is not None:
        raise error
    if not isinstance(payload, dict) or not payload.get("choices"):
        # The CLI refuses these too ("missing or empty choices array", protocol §7.1).
        raise UpstreamError("The upstream's answer has no choices.")
    problem = chat_answer.malformed(payload)
    if problem is not None:
        raise UpstreamError(f"The upstream's answer is malformed: {problem}.")
    return payload


async def whole_completion(
    profile: Profile, response: Response, request: dict[str, Any], call: Call, reasoning: ReasoningStore
) -> tuple[bytes, dict[str, Any], bool]:
    """The answer read, judged, brought into the gateway's shape (the profile's
    ``normalize_completion``), remembered and counted: its bytes, the completion, and whether the
    completion changed (reshaped, or usage estimated and filled in), so the bytes no longer match it."""
    raw = await read(response)
    completion = completion_of(profile, parse_json(raw))
    reshaped = profile.normalize_completion(completion)
    choice = completion["choices"][0]
    if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
        reasoning.remember(choice["message"])
    estimated = await note_usage(profile, call, request, completion)
    return raw, completion, reshaped or estimated


async def estimate(call: Call, request: dict[str, Any], output: str) -> dict[str, int]:
    """Count the tokens ourselves, for an answer the upstream reported no usage for."""
    usage = await asyncio.to_thread(token_count.estimate_usage, request, output)
    call.note_estimate(usage)
    return usage


def estimate_now(call: Call, request: dict[str, Any], output: str) -> None:
    """A quick estimate where there is no time to wait for a tokenizer (the request is cancelled).

    The character heuristic, prompt and output alike: it counts in C, so even a prompt of tens of
    megabytes holds the event loop for milliseconds, not the second a tokenizer would take.
    """
    call.note_estimate(token_count.estimate_usage(request, output, token_count.estimate_text_tokens))


async def note_usage(
    profile: Profile, call: Call, request: dict[str, Any], completion: dict[str, Any]
) -> bool:
    """Record a whole completion's usage (in OpenAI's shape, see ``normalized_usage``), estimating
    (and filling it in) when there is none; True if the completion changed."""
    if isinstance(completion.get("usage"), dict):
        reshaped = normalized_usage(profile, completion["usage"])
        call.note_usage(completion["usage"])
        return reshaped
    completion["usage"] = await estimate(call, request, token_count.completion_output(completion))
    return True


def normalized_usage(profile: Profile, usage: dict[str, Any]) -> bool:
    """Bring the host's ``usage`` into OpenAI's shape (``Profile.normalize_usage``), in place; True
    if it changed.

    In place, because the usage is the host's parsed answer (ours to change) and more than one
    place holds it: a stream's chunk that carries it, the upstream stream's ``usage``. Every
    client then sees the same counts the usage record keeps. Compared as bytes, as a profile may
    change it in place or return a new one; a usage object is a few dozen bytes.
    """
    before = orjson.dumps(usage)
    shaped = profile.normalize_usage(usage)
    if shaped is not usage:
        usage.clear()
        usage.update(shaped)
    return orjson.dumps(usage) != before
