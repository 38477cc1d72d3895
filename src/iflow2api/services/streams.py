"""Answers in another API's words: the upstream read through ``UpstreamStream``, and the one loop
that sends any ``StreamTranslator``'s frames to the client.

Every API's stream that is parsed goes through ``run_stream`` (Chat Completions too, with
``dialects.openai_chat.stream.ChunkEncoder``, when the upstream answered a stream with JSON; its
byte fast path is ``services.chat_stream``). A route that translates (Anthropic Messages, OpenAI
Responses) hands the dispatch service a ``Sink`` through ``sink_relay``: a whole answer goes to
``Sink.completion``; a stream goes through the sink's translator, chunk by chunk, in ``run_stream``.
A stream the profile asked for though the client did not is gathered into a whole answer
(``gathered_completion``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from iflow2api.asgi import SSE_HEADERS, Send, send_frames
from iflow2api.calls import Call
from iflow2api.dialects.openai_chat import answer as chat_answer
from iflow2api.dialects.translator import StreamTranslator
from iflow2api.errors import GatewayError
from iflow2api.providers.base import Outgoing, Profile
from iflow2api.reasoning import ReasoningStore
from iflow2api.services.answers import estimate, estimate_now, is_sse, normalized_usage, whole_completion
from iflow2api.services.dispatch import Relay
from iflow2api.services.gathering import Gatherer
from iflow2api.services.upstream_stream import UpstreamStream
from iflow2api.upstream import wire
from iflow2api.upstream.client import Response, transport_failure


class Sink(Protocol):
    """Where a translating route receives the upstream's answer."""

    async def completion(self, completion: dict[str, Any]) -> None:
        """A whole answer (not streamed)."""

    def translator(self) -> StreamTranslator:
        """The translator of a stream that is about to start (asked once per attempt)."""

    def streamed(self) -> None:
        """The stream ended well; called before its last frames are sent."""

    def late_translator(self) -> StreamTranslator:
        """The translator whose ``error`` ends a stream after keep-alive pings (see ``late_error``)."""


def sink_relay(sink: Sink, call: Call, reasoning: ReasoningStore) -> Relay:
    """The relay that answers through ``sink`` (see ``services.dispatch.Relay``); with ``sink``
    bound, a ``services.dispatch.MakeRelay``."""

    async def relay(
        profile: Profile, response: Response, request: dict[str, Any], outgoing: Outgoing
    ) -> None:
        if not outgoing.stream or request.get("stream") is not True:
            if outgoing.stream:  # a host that thinks only on streams, for a client that does not stream
                completion = await gathered_completion(profile, response, request, reasoning, call)
            else:
                _, completion, _ = await whole_completion(profile, response, request, call, reasoning)
            chat_answer.normalize_completion(completion)
            await sink.completion(completion)
            return
        if is_sse(response):
            chunks = parsed_chunks(profile, response, request, reasoning, call)
        else:
            # iFlow sometimes answers a stream request with JSON: an error, or the whole answer (§7.3 C).
            _, completion, _ = await whole_completion(profile, response, request, call, reasoning)
            chunks = as_chunks(completion)
        await run_stream(call.send, sink.translator(), chunks, sink.streamed)

    return relay


def late_error(translator: Callable[[], StreamTranslator]) -> Callable[[GatewayError], bytes]:
    """How every API writes an error into a stream that has started (keep-alive pings, or content
    a stop cut short): as the frames of ``translator()``'s ``error``, for ``Dispatcher.dispatch``."""

    def frames(error: GatewayError) -> bytes:
        return b"".join(translator().error(error))

    return frames


async def run_stream(
    send: Send,
    translator: StreamTranslator,
    chunks: AsyncGenerator[dict[str, Any], None],
    streamed: Callable[[], None] | None = None,
) -> None:
    """The one stream loop: ``chunks`` through ``translator`` to the client.

    The first chunk is pulled before anything is sent, so errors before it are still real HTTP
    errors (and another account may take the request). An error after it is reported in the
    stream, in the translator's words, and raised again: the attempt failed, and its account must
    hear of it.
    """
    # Closed here, not whenever it is collected: a client that leaves while a frame is being sent
    # must still have what was written estimated before its usage row is recorded.
    async with contextlib.aclosing(chunks):
        first = await anext(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send_frames(send, translator.feed(first), more=True)
        try:
            async for chunk in chunks:
                await send_frames(send, translator.feed(chunk), more=True)
            tail = translator.finish()
            if streamed is not None:
                streamed()
        except GatewayError as error:
            await send_frames(send, translator.error(error), more=False)
            raise
        await send_frames(send, tail, more=False)


async def as_chunks(completion: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """A whole completion as the chunks a stream would have carried, for ``run_stream``."""
    for chunk in chat_answer.completion_as_chunk_dicts(completion):
        yield chunk


async def parsed_chunks(
    profile: Profile, response: Response, request: dict[str, Any], reasoning: ReasoningStore, call: Call
) -> AsyncGenerator[dict[str, Any], None]:
    """The upstream's stream as chunk dicts (``UpstreamStream``), with its errors raised.

    Usage is recorded as it arrives, in OpenAI's shape (``answers.normalized_usage``); without
    usage from the upstream, an estimated usage chunk ends the stream. A stream that fails after
    content is estimated too, before its error is raised, and so is one the client leaves: what
    was written still counts against its key.
    """
    stream = UpstreamStream(classify=profile.business_error, rewriter=profile.rewriter(request))
    noted: dict[str, Any] | None = None

    def note_usage() -> None:
        nonlocal noted
        if stream.usage is not noted:
            noted = stream.usage
            if noted is not None:
                # In place: the chunk that carries it reaches the translator reshaped too.
                normalized_usage(profile, noted)
            call.note_usage(noted)

    try:
        try:
            async for raw in response.iter_chunks():
                chunks = stream.feed(raw)
                note_usage()
                for chunk in chunks:
                    yield chunk
                if stream.failure is not None:
                    raise stream.failure
                if stream.ended:
                    break
            # What the rewriter still held when the stream ended without [DONE].
            chunks = stream.flush()
            note_usage()
            for chunk in chunks:
                yield chunk
        except wire.TransportError as exc:
            raise transport_failure(exc, "reading") from None
    except GatewayError:
        if stream.content and stream.usage is None:
            await estimate(call, request, stream.output.text())
        raise
    except (asyncio.CancelledError, GeneratorExit):
        if stream.content and stream.usage is None:
            estimate_now(call, request, stream.output.text())
        raise
    finally:
        finished_turn = stream.turn.message()
        if finished_turn is not None:
            reasoning.remember(finished_turn)
    stream.finish()
    if stream.usage is None:
        usage = await estimate(call, request, stream.output.text())
        yield {"object": "chat.completion.chunk", "choices": [], "usage": usage}


async def gathered_completion(
    profile: Profile, response: Response, request: dict[str, Any], reasoning: ReasoningStore, call: Call
) -> dict[str, Any]:
    """The whole answer to a request the profile sent streaming though the client did not ask to
    (``providers.base.Prepared.stream``): the stream read like any other (``parsed_chunks``: its
    errors raised, its usage noted or estimated, its reasoning remembered) and gathered into one
    ``chat.completion`` (``services.gathering.Gatherer``). A host that answered with JSON after
    all is read as a whole answer.
    """
    if not is_sse(response):
        _, completion, _ = await whole_completion(profile, response, request, call, reasoning)
        return completion
    gatherer = Gatherer()
    async with contextlib.aclosing(parsed_chunks(profile, response, request, reasoning, call)) as chunks:
        async for chunk in chunks:
            gatherer.feed(chunk)
    return gatherer.completion()
