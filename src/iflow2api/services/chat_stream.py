"""Chat Completions answers for ``/v1/chat/completions``: the fast path, bytes passed through.

Nothing needs translating here, so a stream is relayed through
``dialects.openai_chat.stream.StreamRelay``, which forwards most chunks byte for byte and parses only
those that decide something; a whole answer is sent as it came unless usage had to be filled in or
the answer normalised, or gathered from the stream a host that thinks only on streams was asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from iflow2api.asgi import JSON, SSE_HEADERS, send_bytes
from iflow2api.calls import Call
from iflow2api.dialects.openai_chat import answer as chat_answer
from iflow2api.dialects.openai_chat import request as chat_request
from iflow2api.dialects.openai_chat import stream as chat_chunks
from iflow2api.errors import UpstreamError, UpstreamTooLarge
from iflow2api.providers.base import EventRewriter, Outgoing, Profile
from iflow2api.reasoning import ReasoningStore, StreamedTurn
from iflow2api.services.answers import estimate, estimate_now, is_sse, normalized_usage, whole_completion
from iflow2api.services.dispatch import Relay
from iflow2api.services.streams import as_chunks, gathered_completion, run_stream
from iflow2api.sse import SSEDecoder
from iflow2api.upstream import wire
from iflow2api.upstream.client import Response, transport_failure


def chat_relay(call: Call, reasoning: ReasoningStore) -> Relay:
    """The relay of ``/v1/chat/completions`` (see ``services.dispatch.Relay``)."""

    async def relay(
        profile: Profile, response: Response, request: dict[str, Any], outgoing: Outgoing
    ) -> None:
        if outgoing.stream and request.get("stream") is not True:
            # A host that thinks only on streams, for a client that does not stream: one answer.
            completion = await gathered_completion(profile, response, request, reasoning, call)
            chat_answer.normalize_completion(completion)
            await send_bytes(call.send, 200, orjson.dumps(completion), JSON)
            return
        if outgoing.stream and is_sse(response):
            await _relay_stream(profile, response, request, call, reasoning)
            return
        raw, completion, estimated = await whole_completion(profile, response, request, call, reasoning)
        if not outgoing.stream:
            if chat_answer.normalize_completion(completion) or estimated:
                raw = orjson.dumps(completion)
            await send_bytes(call.send, 200, raw, JSON)
            return
        # iFlow sometimes answers a stream request with JSON: an error, or the whole answer (§7.3 C).
        encoder = chat_chunks.ChunkEncoder(include_usage=chat_request.wants_usage_in_stream(request))
        await run_stream(call.send, encoder, as_chunks(completion))

    return relay


async def _relay_stream(
    profile: Profile, response: Response, request: dict[str, Any], call: Call, reasoning: ReasoningStore
) -> None:
    relay = chat_chunks.StreamRelay(
        include_usage=chat_request.wants_usage_in_stream(request),
        classify=profile.business_error,
    )
    try:
        await _pump(profile, response, request, call, reasoning, relay)
    except asyncio.CancelledError:
        # The client left mid-answer: what was generated so far still counts against its key.
        if relay.usage is not None:
            normalized_usage(profile, relay.usage)
            call.note_usage(relay.usage)
        elif relay.content:
            estimate_now(call, request, relay.output())
        raise


async def _pump(
    profile: Profile,
    response: Response,
    request: dict[str, Any],
    call: Call,
    reasoning: ReasoningStore,
    relay: chat_chunks.StreamRelay,
) -> None:
    """Feed the upstream's stream through ``relay`` to the client (see ``StreamRelay``).

    A host whose chunks are not in the gateway's shape has them rewritten first (``rewriter``,
    from its profile); every other stream passes byte for byte.
    """
    send = call.send
    rewriter = profile.rewriter(request)
    turn = StreamedTurn()
    decoder = SSEDecoder()
    rewriting = EventRewriter(rewriter) if rewriter is not None else None
    started = False
    try:
        async for chunk in response.iter_chunks():
            frames: list[bytes] = []
            events = decoder.feed(chunk)
            for data in rewriting.feed(events) if rewriting is not None else events:
                turn.feed(data)
                frames.extend(relay.feed(data))
            if relay.failure is not None and not started:
                # Nothing has reached the client: a failed attempt, for another account to take over.
                raise relay.failure
            if frames:
                if not started:
                    # Only now, with content in hand, is the 200 certain.
                    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                    started = True
                await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
            if relay.ended:
                break
        events = decoder.finish()
        if rewriting is not None:
            events = rewriting.feed(events) + rewriting.finish()
        tail = []
        for data in events:
            turn.feed(data)  # what the rewriter held until the end belongs to the turn too
            tail.extend(relay.feed(data))
    except (wire.TransportError, UpstreamTooLarge) as exc:
        # UpstreamTooLarge: one event-stream line beyond the cap (sse.MAX_LINE).
        failure = exc if isinstance(exc, UpstreamTooLarge) else transport_failure(exc, "reading")
        if not started:
            raise failure from None
        relay.fail(failure)
        tail = []
    if not started:
        if relay.failure is not None:
            raise relay.failure
        if not tail:
            raise UpstreamError("The upstream ended the stream without sending anything.")
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    usage_estimate = None
    if relay.usage is not None:
        # The client that asked for usage gets it from ``relay.finish``: in OpenAI's shape too.
        normalized_usage(profile, relay.usage)
        call.note_usage(relay.usage)
    else:
        # Before [DONE], even when the client did not ask for usage: a client's next request may
        # follow at once, and a key's tokens_per_day must already know this one.
        usage_estimate = await estimate(call, request, relay.output())
    tail.extend(relay.finish(usage_estimate))
    finished_turn = turn.message()
    if finished_turn is not None:
        reasoning.remember(finished_turn)
    await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})
    if relay.failure is not None:
        # Reported in the stream already; raised so the attempt counts as failed, not served.
        raise relay.failure
    # The upstream's end of message often trails its [DONE]: wait a moment for it, so the
    # connection can be kept for the next request instead of being closed.
    await response.finish(0.2)
