"""``POST /v1/chat/completions``: parse, dispatch, and relay the answer as it arrives."""

from __future__ import annotations

from iflow2api.asgi import Scope
from iflow2api.calls import Call
from iflow2api.dialects.openai_chat import errors as chat_errors
from iflow2api.dialects.openai_chat import request as chat_request
from iflow2api.errors import GatewayError
from iflow2api.services.chat_stream import chat_relay
from iflow2api.services.dispatch import Dispatcher
from iflow2api.sse import DONE_FRAME


def _late_error(error: GatewayError) -> bytes:
    return chat_errors.error_frame(error) + DONE_FRAME


class ChatRoute:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    async def __call__(self, scope: Scope, body: bytes, call: Call) -> None:
        request = chat_request.parse_request(body)
        await self._dispatcher.dispatch(scope, request, call, chat_relay, _late_error)
