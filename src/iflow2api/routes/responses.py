"""``POST /v1/responses``: OpenAI Responses (Codex) in front of the chat upstream.

``previous_response_id`` works from the gateway's own memory of recent responses (bounded by count
and by bytes, since one input can be megabytes; a forgotten id is a clear 400). With
``store: false`` (Codex's mode) nothing is remembered and the client sends the whole conversation
each time.
"""

from __future__ import annotations

import functools
import secrets
import time
from typing import Any

import orjson

from iflow2api.asgi import JSON, Scope, Send, send_bytes
from iflow2api.calls import Call
from iflow2api.dialects.responses.answer import from_chat_completion, history_messages
from iflow2api.dialects.responses.request import parse_request
from iflow2api.dialects.responses.stream import StreamTranslator
from iflow2api.dialects.responses.to_chat import to_chat_request
from iflow2api.dialects.responses.wire import ResponsesRequest
from iflow2api.services.dispatch import Dispatcher
from iflow2api.services.response_memory import ResponseMemory
from iflow2api.services.streams import late_error, sink_relay


class ResponsesSink:
    def __init__(
        self, send: Send, memory: ResponseMemory, request: ResponsesRequest, chat: dict[str, Any]
    ) -> None:
        self._send = send
        self._memory = memory
        self._request = request
        self._chat = chat
        self.response_id = "resp_" + secrets.token_hex(12)
        #: The stream's translator once it has started, so a late error continues its events.
        self.stream: StreamTranslator | None = None

    def _remember(self, completion: dict[str, Any]) -> None:
        if self._request.get("store", True) is not False:
            self._memory.put(self.response_id, history_messages(self._chat, completion))

    async def completion(self, completion: dict[str, Any]) -> None:
        self._remember(completion)
        body = from_chat_completion(completion, request=self._request, response_id=self.response_id)
        await send_bytes(self._send, 200, orjson.dumps(body), JSON)

    def translator(self) -> StreamTranslator:
        self.stream = self._new_translator()
        return self.stream

    def _new_translator(self) -> StreamTranslator:
        return StreamTranslator(
            request=self._request, response_id=self.response_id, created_at=int(time.time())
        )

    def streamed(self) -> None:
        # The translator's own record, so the history uses the call ids the client saw.
        assert self.stream is not None
        self._remember(self.stream.completion())

    def late_translator(self) -> StreamTranslator:
        # The error continues the stream's own response (its id, its events' sequence numbers).
        return self.stream or self._new_translator()


class ResponsesRoute:
    def __init__(self, dispatcher: Dispatcher, memory: ResponseMemory) -> None:
        self._dispatcher = dispatcher
        self._memory = memory

    async def __call__(self, scope: Scope, body: bytes, call: Call) -> None:
        request = parse_request(body)
        previous = request.get("previous_response_id")
        history = await self._memory.get(previous) if isinstance(previous, str) and previous else None
        chat = to_chat_request(request, history)
        sink = ResponsesSink(call.send, self._memory, request, chat)
        relay = functools.partial(sink_relay, sink)
        await self._dispatcher.dispatch(scope, chat, call, relay, late_error(sink.late_translator))
