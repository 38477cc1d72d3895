"""``POST /v1/chat/completions``: parse, speak to the upstream, relay the answer as it arrives."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from iflow2api import affinity
from iflow2api.asgi import JSON, SSE_HEADERS, Scope, Send, send_bytes
from iflow2api.auth.credentials import Account
from iflow2api.calls import Call
from iflow2api.dialects import openai_chat, token_count
from iflow2api.dialects.aliases import resolve_model
from iflow2api.errors import (
    GatewayError,
    ModelNotFound,
    NoAccountAvailable,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from iflow2api.pool.router import Pool
from iflow2api.reasoning import ReasoningStore, StreamedTurn
from iflow2api.redact import redact
from iflow2api.sse import DONE, DONE_FRAME, SSEDecoder
from iflow2api.upstream import wire
from iflow2api.upstream.client import Response, retry_after_seconds
from iflow2api.upstream.speakers import Outgoing, Speaker

if TYPE_CHECKING:
    from iflow2api.app import Gateway


class ChatSink(Protocol):
    """Where another dialect's route receives the upstream's answer, parsed (see ``exchange``)."""

    async def completion(self, completion: dict[str, Any]) -> None: ...

    async def stream(self, chunks: AsyncIterator[dict[str, Any]]) -> None:
        """Consume the chunks; the first one is pulled before anything is sent, so errors before
        it still become real HTTP errors. Errors after it arrive as ``GatewayError`` raised by the
        iterator, for the sink to report in its own dialect and then raise again (the attempt
        failed, and its account must hear of it)."""


JSONDict = dict[str, Any]
Relay = Callable[[Speaker, Response, dict[str, Any], Outgoing], Awaitable[None]]


def _openai_late_error(error: GatewayError) -> bytes:
    return openai_chat.error_frame(error) + DONE_FRAME


async def chat_completions(gateway: Gateway, scope: Scope, body: bytes, call: Call) -> None:
    request = openai_chat.parse_request(body)
    send = call.send
    call.model, call.stream = request["model"], bool(request.get("stream"))
    if call.stream:
        call.keep_alive(gateway.settings.keepalive_interval, _openai_late_error)

    async def relay(
        speaker: Speaker, response: Response, request: dict[str, Any], outgoing: Outgoing
    ) -> None:
        if not outgoing.stream:
            await _relay_completion(speaker, response, request, call, gateway.reasoning)
        elif not _is_sse(response):
            await _relay_json_on_stream(speaker, response, request, call, gateway.reasoning)
        else:
            await _relay_stream(speaker, response, request, send, gateway.reasoning, call)

    await serve(gateway, scope, request, relay, call)


async def exchange(
    gateway: Gateway, scope: Scope, request: dict[str, Any], sink: ChatSink, call: Call
) -> None:
    """Run a Chat Completions request upstream for another dialect, answering through ``sink``."""

    async def relay(
        speaker: Speaker, response: Response, request: dict[str, Any], outgoing: Outgoing
    ) -> None:
        if not outgoing.stream:
            completion = _completion(speaker, _json(await _read(response)))
            _remember(gateway.reasoning, completion)
            await _note_usage(call, request, completion)
            openai_chat.normalize_completion(completion)
            await sink.completion(completion)
        elif not _is_sse(response):
            completion = _completion(speaker, _json(await _read(response)))
            _remember(gateway.reasoning, completion)
            await _note_usage(call, request, completion)
            await sink.stream(_as_async(openai_chat.completion_as_chunk_dicts(completion)))
        else:
            await sink.stream(_parsed_chunks(speaker, response, request, gateway.reasoning, call))

    await serve(gateway, scope, request, relay, call)


def _is_sse(response: Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


async def _as_async(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def _parsed_chunks(
    speaker: Speaker, response: Response, request: dict[str, Any], reasoning: ReasoningStore, call: Call
) -> AsyncIterator[dict[str, Any]]:
    """The upstream's stream as chunk dicts, with its errors raised (see ``ChatSink.stream``).

    Chunks without content (a role alone) are held back until content or a finish arrives, so an
    error right after them still fails before the sink has sent anything: another account can
    take the request. Without usage from the upstream, an estimated usage chunk ends the stream;
    a stream that fails after content is estimated too, before its error is raised.
    """
    decoder = SSEDecoder()
    turn = StreamedTurn()
    held: list[dict[str, Any]] = []
    output = openai_chat.OutputText()  # for an estimate, until usage arrives
    content = ended = usage_seen = False
    try:
        try:
            async for raw in response.iter_chunks():
                for data in decoder.feed(raw):
                    if data == DONE:
                        ended = True  # what follows [DONE] is not read; an empty stream is an error below
                        break
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(chunk, dict):
                        continue
                    failure = openai_chat.chunk_failure(chunk, speaker.business_error)
                    if failure is not None:
                        raise failure
                    if not isinstance(chunk.get("choices"), list):
                        continue  # no choices, and no error either: nothing to pass on
                    turn.feed(data, chunk)
                    if isinstance(chunk.get("usage"), dict):
                        call.note_usage(chunk["usage"])
                        usage_seen = True
                        output.clear()
                    elif not usage_seen:
                        output.feed(data)
                    if not content:
                        held.append(chunk)
                        if not openai_chat.carries_content(chunk):
                            continue
                        content = True
                        for earlier in held:
                            yield earlier
                        held = []
                        continue
                    yield chunk
                if ended:
                    break
        except wire.TransportError as exc:
            raise _transport_failure(exc) from None
    except GatewayError:
        # Failed after content (an error in the stream, a break, silence): no other account takes
        # over, and what was written still counts against the key, as on the chat route.
        if content and not usage_seen:
            await _estimate(call, request, output.text())
        raise
    except (asyncio.CancelledError, GeneratorExit):
        # The client left mid-answer: what was generated so far still counts against its key.
        if content and not usage_seen:
            _estimate_now(call, request, output.text())
        raise
    finally:
        finished_turn = turn.message()
        if finished_turn is not None:
            reasoning.remember(finished_turn)
    if not content:
        raise UpstreamError("The upstream ended the stream without sending anything.")
    if not usage_seen:
        usage = await _estimate(call, request, output.text())
        yield {"object": "chat.completion.chunk", "choices": [], "usage": usage}


def _transport_failure(exc: wire.TransportError) -> GatewayError:
    """What an upstream answer that could not be read to its end means for the client."""
    if isinstance(exc, wire.BodyTooLarge):
        return UpstreamTooLarge(
            f"The upstream's answer was not read to its end: {exc} (setting max_upstream_body)."
        )
    if isinstance(exc, wire.ReadTimeout):
        return UpstreamTimeout("The upstream went silent for too long (setting stream_idle_timeout).")
    # Cut off mid-answer, or bytes that are not HTTP.
    return UpstreamError(f"The upstream's answer broke off before it was complete: {exc}.")


async def _estimate(call: Call, request: dict[str, Any], output: str) -> dict[str, int]:
    """Count the tokens ourselves, for an answer the upstream reported no usage for."""
    usage = await asyncio.to_thread(token_count.estimate_usage, request, output)
    call.note_estimate(usage)
    return usage


def _estimate_now(call: Call, request: dict[str, Any], output: str) -> None:
    """A quick estimate where there is no time to wait for a tokenizer (the request is cancelled).

    The character heuristic, prompt and output alike: it counts in C, so even a prompt of tens of
    megabytes holds the event loop for milliseconds, not the second a tokenizer would take.
    """
    call.note_estimate(token_count.estimate_usage(request, output, token_count.estimate_text_tokens))


async def _note_usage(call: Call, request: dict[str, Any], completion: dict[str, Any]) -> bool:
    """Record a whole completion's usage, estimating (and filling it in) when there is none;
    True if the completion changed."""
    if isinstance(completion.get("usage"), dict):
        call.note_usage(completion["usage"])
        return False
    completion["usage"] = await _estimate(call, request, token_count.completion_output(completion))
    return True


async def serve(gateway: Gateway, scope: Scope, request: dict[str, Any], relay: Relay, call: Call) -> None:
    """Send ``request`` to an account of the pool, failing over to others until content flows.

    A failed attempt is retried on another account (at most ``max_attempts`` in all) as long as
    nothing but keep-alive pings has reached the client; what the failure means for the account
    that produced it (cooldown, refresh, quarantine) is the pool's business (``pool.outcomes``).
    An account the upstream asked to wait (its ``Retry-After``) stays a candidate for the retry:
    with nothing else free, the retry waits out that rest (``max_cooldown_wait``) in the pool.
    """
    pool = gateway.pool
    gateway.accounts.sync_cli()
    if not pool.members():
        raise gateway.no_accounts()
    aliases = gateway.settings.model_aliases
    if aliases:
        resolved = resolve_model(request["model"], dict(aliases))
        if resolved != request["model"]:
            request = {**request, "model": resolved}
    model = call.model = request["model"]
    gateway.keys.check_model(call.key, model)
    if pool.affinity:
        call.session = affinity.session_key(scope, request)
    tried: set[str] = set()
    renewed: set[str] = set()
    last: GatewayError | None = None
    for _ in range(gateway.settings.max_attempts):
        try:
            member = await pool.acquire(model, session=call.session, exclude=frozenset(tried))
            started = time.time()
        except NoAccountAvailable:
            if last is None:
                raise
            raise _final(pool, model, last) from None
        call.attempts += 1
        call.account = member.label
        call.on_content = functools.partial(pool.answered, member, started)
        try:
            await _complete(gateway, member.account, request, relay)
        except GatewayError as error:
            if call.content_sent:
                # Part of the answer is out, so nothing is retried; but the upstream failed all the
                # same, and its account is told so (a rate limit mid-stream is still a rate limit).
                pool.failed(member, error)
                raise
            last = error
            if isinstance(error, ModelNotFound) and pool.serves(member, model) is not True:
                # An account that was only thought to serve the model: no fault of its own.
                tried.add(member.id)
                continue
            verdict = pool.failed(member, error)
            if verdict.action == "refresh":
                # The key expired (iFlow 439) or was refused: a fresh one, then the same account again.
                renewal = (
                    "impossible" if member.renew is None or member.id in renewed else await member.renew()
                )
                renewed.add(member.id)
                if renewal == "renewed":
                    continue
                if renewal == "impossible":
                    pool.quarantine(member, f"{verdict.reason}: {error.message}", code=error.code)
                else:
                    pool.cool_down(member, f"{verdict.reason}; renewing the key failed for now")
            if not verdict.retry_elsewhere:
                raise
            if not verdict.upstream_asked:
                tried.add(member.id)
        else:
            pool.succeeded(member, started)
            return
        finally:
            call.on_content = None
            pool.release(member)
    assert last is not None
    raise _final(pool, model, last)


def _final(pool: Pool, model: str, last: GatewayError) -> GatewayError:
    """The error that ends a request every account failed: the last one, and when that was a rate
    limit and every account rests at the upstream's request, with the ``Retry-After`` of the first
    rest to end (a rest of the gateway's own choosing is no reason to keep a client away)."""
    if isinstance(last, RateLimited):
        wait = pool.asked_rest(model)
        if wait is not None:
            last.retry_after = wait
    return last


async def _complete(gateway: Gateway, account: Account, request: dict[str, Any], relay: Relay) -> None:
    # An upstream may quote the key it was sent, whatever its shape: every error made from its
    # words loses it here, before the pool stores it as a reason, the log shows it or a client does.
    secrets = (account.api_key,)
    speaker = _Redacting(gateway.speaker(account), secrets)
    response: Response | None = None
    try:
        await gateway.models.check(account, request["model"])
        # Reasoning the client left out of its history goes back in (see iflow2api.reasoning).
        messages = gateway.reasoning.restore(request["messages"])
        if messages is not request["messages"]:
            request = {**request, "messages": messages}
        outgoing = speaker.prepare(account, request)
        response = await gateway.client.send("POST", outgoing.url, outgoing.headers, outgoing.body)
        try:
            if response.status >= 300:
                raw = await _read(response)
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                raise speaker.http_error(
                    response.status, raw, response.headers.get("eagleeye-traceid"), retry_after
                )
            await relay(speaker, response, request, outgoing)
        finally:
            # Unread content means the client left or we failed: closing the connection is what
            # tells the upstream to stop generating.
            response.release()
    except GatewayError as error:
        raise _redacted(error, secrets) from None


def _redacted(error: GatewayError, secrets: tuple[str, ...]) -> GatewayError:
    error.message = redact(error.message, secrets)
    error.args = (error.message,)
    if error.param:  # an upstream's own words too, on openai-compatible errors
        error.param = redact(error.param, secrets)
    if error.code and any(secret in error.code for secret in secrets):
        error.code = redact(error.code, secrets)
    return error


class _Redacting:
    """A speaker whose errors never carry the account's secrets (see ``_complete``); this also
    covers the errors a relay writes into a stream that has started."""

    __slots__ = ("_secrets", "_speaker")

    def __init__(self, speaker: Speaker, secrets: tuple[str, ...]) -> None:
        self._speaker = speaker
        self._secrets = secrets

    def prepare(self, account: Account, request: dict[str, Any]) -> Outgoing:
        return self._speaker.prepare(account, request)

    def business_error(self, payload: object) -> GatewayError | None:
        error = self._speaker.business_error(payload)
        return None if error is None else _redacted(error, self._secrets)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return _redacted(self._speaker.http_error(status, body, trace_id, retry_after), self._secrets)


async def _read(response: Response) -> bytes:
    try:
        return await response.read()
    except wire.TransportError as exc:
        raise _transport_failure(exc) from None


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        snippet = raw[:200].decode("utf-8", "replace")
        raise UpstreamError(f"The upstream answered with something that is not JSON: {snippet!r}") from None


def _completion(speaker: Speaker, payload: object) -> dict[str, Any]:
    error = speaker.business_error(payload)
    if error is not None:
        raise error
    if not isinstance(payload, dict) or not payload.get("choices"):
        # The CLI refuses these too ("missing or empty choices array", protocol §7.1).
        raise UpstreamError("The upstream's answer has no choices.")
    problem = openai_chat.malformed(payload)
    if problem is not None:
        raise UpstreamError(f"The upstream's answer is malformed: {problem}.")
    return payload


def _remember(reasoning: ReasoningStore, completion: dict[str, Any]) -> None:
    choice = completion["choices"][0]
    if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
        reasoning.remember(choice["message"])


async def _relay_completion(
    speaker: Speaker, response: Response, request: dict[str, Any], call: Call, reasoning: ReasoningStore
) -> None:
    raw = await _read(response)
    completion = _completion(speaker, _json(raw))
    _remember(reasoning, completion)
    estimated = await _note_usage(call, request, completion)
    if openai_chat.normalize_completion(completion) or estimated:
        raw = orjson.dumps(completion)
    await send_bytes(call.send, 200, raw, JSON)


async def _relay_json_on_stream(
    speaker: Speaker, response: Response, request: dict[str, Any], call: Call, reasoning: ReasoningStore
) -> None:
    """iFlow sometimes answers a stream request with JSON: an error, or the whole answer (§7.3 C)."""
    completion = _completion(speaker, _json(await _read(response)))
    _remember(reasoning, completion)
    await _note_usage(call, request, completion)
    send = call.send
    frames = openai_chat.completion_as_chunks(
        completion, include_usage=openai_chat.wants_usage_in_stream(request)
    )
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await send({"type": "http.response.body", "body": b"".join(frames)})


async def _relay_stream(
    speaker: Speaker,
    response: Response,
    request: dict[str, Any],
    send: Send,
    reasoning: ReasoningStore,
    call: Call,
) -> None:
    relay = openai_chat.StreamRelay(
        include_usage=openai_chat.wants_usage_in_stream(request),
        classify=speaker.business_error,
    )
    try:
        await _pump(response, request, send, reasoning, call, relay)
    except asyncio.CancelledError:
        # The client left mid-answer: what was generated so far still counts against its key.
        if relay.usage is not None:
            call.note_usage(relay.usage)
        elif relay.content:
            _estimate_now(call, request, relay.output())
        raise


async def _pump(
    response: Response,
    request: dict[str, Any],
    send: Send,
    reasoning: ReasoningStore,
    call: Call,
    relay: openai_chat.StreamRelay,
) -> None:
    """Feed the upstream's stream through ``relay`` to the client (see ``StreamRelay``)."""
    turn = StreamedTurn()
    decoder = SSEDecoder()
    started = False
    try:
        async for chunk in response.iter_chunks():
            frames: list[bytes] = []
            for data in decoder.feed(chunk):
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
        tail = [frame for data in decoder.finish() for frame in relay.feed(data)]
    except (wire.TransportError, UpstreamTooLarge) as exc:
        # UpstreamTooLarge: one event-stream line beyond the cap (sse.MAX_LINE).
        failure = exc if isinstance(exc, UpstreamTooLarge) else _transport_failure(exc)
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
    estimate = None
    if relay.usage is not None:
        call.note_usage(relay.usage)
    else:
        # Before [DONE], even when the client did not ask for usage: a client's next request may
        # follow at once, and a key's tokens_per_day must already know this one.
        estimate = await _estimate(call, request, relay.output())
    tail.extend(relay.finish(estimate))
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
