"""``POST /v1/messages``: Anthropic Messages (Claude Code) in front of the chat upstream.

The request is translated to Chat Completions, sent along the one upstream path (``chat.exchange``)
and the answer translated back, streamed event by event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson

from iflow2api.asgi import JSON, SSE_HEADERS, Scope, Send, send_bytes, send_frames
from iflow2api.calls import Call
from iflow2api.dialects.aliases import DEFAULT_ALIASES, resolve_model
from iflow2api.dialects.anthropic.answer import from_chat_completion
from iflow2api.dialects.anthropic.request import check_request, parse_request
from iflow2api.dialects.anthropic.stream import StreamTranslator
from iflow2api.dialects.anthropic.to_chat import to_chat_request
from iflow2api.dialects.checks import load_object
from iflow2api.dialects.token_count import counter_for, estimate_chat_tokens
from iflow2api.errors import GatewayError
from iflow2api.routes.chat import exchange

if TYPE_CHECKING:
    from iflow2api.app import Gateway


class AnthropicSink:
    def __init__(self, send: Send, *, model: str) -> None:
        self._send = send
        self._model = model

    async def completion(self, completion: dict[str, Any]) -> None:
        message = from_chat_completion(completion, model=self._model)
        await send_bytes(self._send, 200, orjson.dumps(message), JSON)

    async def stream(self, chunks: AsyncIterator[dict[str, Any]]) -> None:
        translator = StreamTranslator(model=self._model)
        first = await anext(chunks)  # an error here is still a real HTTP error
        await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send_frames(self._send, translator.feed(first), more=True)
        try:
            async for chunk in chunks:
                await send_frames(self._send, translator.feed(chunk), more=True)
            tail = translator.finish()
        except GatewayError as error:
            # Reported in the stream; raised on so the attempt counts as failed, not served.
            await send_frames(self._send, translator.error(error), more=False)
            raise
        await send_frames(self._send, tail, more=False)


def model_for(gateway: Gateway, requested: str) -> str:
    """The upstream model for what the client asked (Claude Code asks for claude-* names).

    The user's aliases first; then, when the pool has an iFlow account, the built-in Claude table,
    and otherwise the first OpenAI-compatible upstream's own ``modelName`` for any Claude name.
    """
    aliases = gateway.settings.model_aliases_map
    gateway.accounts.sync_cli()
    members = [m for m in gateway.pool.members() if m.enabled]
    if any(m.kind != "openai-compatible" for m in members) or not members:
        fallback = dict(DEFAULT_ALIASES)
    else:
        names = [m.account.model_name for m in members if m.account.model_name]
        fallback = {"claude*": names[0]} if names else {}
    for pattern, target in fallback.items():
        aliases.setdefault(pattern, target)
    return resolve_model(requested, aliases)


def _late_error(model: str) -> Callable[[GatewayError], bytes]:
    def frames(error: GatewayError) -> bytes:
        return b"".join(StreamTranslator(model=model).error(error))

    return frames


async def messages(gateway: Gateway, scope: Scope, body: bytes, call: Call) -> None:
    request = parse_request(body)
    chat = to_chat_request(request, model=model_for(gateway, request["model"]))
    call.model, call.stream = chat["model"], bool(chat.get("stream"))
    if call.stream:
        call.keep_alive(gateway.settings.keepalive_interval, _late_error(request["model"]))
    await exchange(gateway, scope, chat, AnthropicSink(call.send, model=request["model"]), call)


async def count_tokens(gateway: Gateway, body: bytes, send: Send) -> None:
    """``POST /v1/messages/count_tokens``: an estimate (see ``dialects.token_count``)."""
    payload = load_object(body)
    payload.setdefault("max_tokens", 1)  # count_tokens requests carry none
    request = check_request(payload)
    model = model_for(gateway, request["model"])
    chat = to_chat_request(request, model=model)
    # Loading a tokenizer and counting a long prompt take a while: off the event loop.
    tokens = await asyncio.to_thread(lambda: estimate_chat_tokens(chat, counter_for(model)))
    await send_bytes(send, 200, orjson.dumps({"input_tokens": tokens}), JSON)
