"""``POST /v1/messages``: Anthropic Messages (Claude Code) in front of the chat upstream.

The request is translated to Chat Completions, dispatched (``services.dispatch``) and the answer
translated back, streamed event by event through the one stream loop (``services.streams``).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import orjson

from iflow2api.asgi import JSON, Scope, Send, send_bytes
from iflow2api.calls import Call
from iflow2api.dialects.anthropic.answer import from_chat_completion
from iflow2api.dialects.anthropic.request import check_request, parse_request
from iflow2api.dialects.anthropic.stream import StreamTranslator as AnthropicTranslator
from iflow2api.dialects.anthropic.to_chat import to_chat_request
from iflow2api.dialects.checks import load_object
from iflow2api.dialects.intent import intent_of_anthropic
from iflow2api.dialects.token_count import counter_for, estimate_chat_tokens
from iflow2api.dialects.translator import StreamTranslator
from iflow2api.services.dispatch import Dispatcher
from iflow2api.services.streams import late_error, sink_relay


class AnthropicSink:
    def __init__(self, send: Send, *, model: str) -> None:
        self._send = send
        self._model = model

    async def completion(self, completion: dict[str, Any]) -> None:
        message = from_chat_completion(completion, model=self._model)
        await send_bytes(self._send, 200, orjson.dumps(message), JSON)

    def translator(self) -> StreamTranslator:
        return AnthropicTranslator(model=self._model)

    def streamed(self) -> None:
        pass

    def late_translator(self) -> StreamTranslator:
        # Anthropic's error event carries nothing of the stream before it: a fresh translator.
        return self.translator()


class MessagesRoute:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def __call__(self, scope: Scope, body: bytes, call: Call) -> None:
        request = parse_request(body)
        chat = to_chat_request(request, model=self._dispatcher.anthropic_model(request["model"]))
        sink = AnthropicSink(call.send, model=request["model"])
        relay = functools.partial(sink_relay, sink)
        intent = intent_of_anthropic(request)
        await self._dispatcher.dispatch(scope, chat, call, relay, late_error(sink.late_translator), intent)

    async def count_tokens(self, body: bytes, send: Send) -> None:
        """``POST /v1/messages/count_tokens``: an estimate (see ``dialects.token_count``)."""
        payload = load_object(body)
        payload.setdefault("max_tokens", 1)  # count_tokens requests carry none
        request = check_request(payload)
        model = self._dispatcher.anthropic_model(request["model"])
        chat = to_chat_request(request, model=model)
        # Loading a tokenizer and counting a long prompt take a while: off the event loop.
        tokens = await asyncio.to_thread(lambda: estimate_chat_tokens(chat, counter_for(model)))
        await send_bytes(send, 200, orjson.dumps({"input_tokens": tokens}), JSON)
