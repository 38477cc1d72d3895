"""``POST /v1/chat/completions``: parse, dispatch, and relay the answer as it arrives."""

from __future__ import annotations

import functools

from iflow2api.asgi import Scope
from iflow2api.calls import Call
from iflow2api.dialects.openai_chat import request as chat_request
from iflow2api.dialects.openai_chat.stream import ChunkEncoder
from iflow2api.services.chat_stream import chat_relay
from iflow2api.services.dispatch import Dispatcher
from iflow2api.services.streams import late_error

#: A late error needs no state of the stream: a fresh encoder writes it.
_late_error = late_error(functools.partial(ChunkEncoder, include_usage=False))


class ChatRoute:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def __call__(self, scope: Scope, body: bytes, call: Call) -> None:
        request = chat_request.parse_request(body)
        await self._dispatcher.dispatch(scope, request, call, chat_relay, _late_error)
