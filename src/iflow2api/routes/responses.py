"""``POST /v1/responses``: OpenAI Responses (Codex) in front of the chat upstream.

``previous_response_id`` works from the gateway's own memory of recent responses (bounded by count
and by bytes, since one input can be megabytes; a forgotten id is a clear 400). With
``store: false`` (Codex's mode) nothing is remembered and the client sends the whole conversation
each time.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from iflow2api.asgi import JSON, SSE_HEADERS, Scope, Send, send_bytes, send_frames
from iflow2api.calls import Call
from iflow2api.dialects.responses.answer import from_chat_completion, history_messages
from iflow2api.dialects.responses.request import parse_request
from iflow2api.dialects.responses.stream import StreamTranslator
from iflow2api.dialects.responses.to_chat import to_chat_request
from iflow2api.dialects.responses.wire import ResponsesRequest
from iflow2api.errors import GatewayError, InvalidRequest
from iflow2api.routes.chat import exchange
from iflow2api.state.sqlite import MAX_RESPONSE_HISTORY_BYTES

if TYPE_CHECKING:
    from iflow2api.app import Gateway


#: Responses remembered for ``previous_response_id``, at most; the oldest are forgotten first.
MAX_STORED = 1000
#: Their size as JSON, at most, by default (setting ``responses_store_max_bytes``; 0: no bound),
#: the same bound as the store's.
MAX_STORED_BYTES = MAX_RESPONSE_HISTORY_BYTES

History = list[dict[str, Any]]


class ResponseMemory:
    """The chat history behind each recent stored response: the newest in memory, all of them in
    the state store (``save``/``load``), so a restart forgets nothing the store still holds.

    Both the count and the size (as JSON) are bounded; a history larger than the whole byte bound
    is not remembered at all, here or in the store.
    """

    def __init__(
        self,
        max_entries: int = MAX_STORED,
        *,
        max_bytes: int = MAX_STORED_BYTES,
        save: Callable[[str, bytes], None] = lambda _id, _history: None,
        load: Callable[[str], Awaitable[History | None]] | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: What the histories held here take as JSON, together.
        self.bytes = 0
        self._histories: OrderedDict[str, tuple[History, int]] = OrderedDict()
        self._save = save
        self._load = load

    def put(self, response_id: str, history: History) -> None:
        encoded = self._keep(response_id, history)
        if encoded is not None:
            self._save(response_id, encoded)  # serialised once, for the bound and the store

    def _keep(self, response_id: str, history: History) -> bytes | None:
        """Remember ``history``; its JSON, or None when it is too large to remember at all."""
        encoded = orjson.dumps(history)
        size = len(encoded)
        if self.max_bytes and size > self.max_bytes:
            return None
        old = self._histories.pop(response_id, None)
        if old is not None:
            self.bytes -= old[1]
        self._histories[response_id] = (history, size)
        self.bytes += size
        while len(self._histories) > self.max_entries or (self.max_bytes and self.bytes > self.max_bytes):
            _, (_, dropped) = self._histories.popitem(last=False)
            self.bytes -= dropped
        return encoded

    async def get(self, response_id: str) -> History:
        kept = self._histories.get(response_id)
        if kept is not None:
            self._histories.move_to_end(response_id)
            return kept[0]
        history = await self._load(response_id) if self._load is not None else None
        if history is None:
            bound = f", up to {self.max_bytes:,} bytes of them" if self.max_bytes else ""
            raise InvalidRequest(
                f"Previous response with id '{response_id}' not found: this gateway keeps stored "
                f"responses for a while, the most recent ones{bound} (setting "
                "responses_store_max_bytes).",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        self._keep(response_id, history)
        return history


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
        self.translator: StreamTranslator | None = None

    def _remember(self, completion: dict[str, Any]) -> None:
        if self._request.get("store", True) is not False:
            self._memory.put(self.response_id, history_messages(self._chat, completion))

    async def completion(self, completion: dict[str, Any]) -> None:
        self._remember(completion)
        body = from_chat_completion(completion, request=self._request, response_id=self.response_id)
        await send_bytes(self._send, 200, orjson.dumps(body), JSON)

    async def stream(self, chunks: AsyncIterator[dict[str, Any]]) -> None:
        translator = self.translator = StreamTranslator(
            request=self._request, response_id=self.response_id, created_at=int(time.time())
        )
        first = await anext(chunks)  # an error here is still a real HTTP error
        await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send_frames(self._send, translator.feed(first), more=True)
        try:
            async for chunk in chunks:
                await send_frames(self._send, translator.feed(chunk), more=True)
            tail = translator.finish()
            # The translator's own record, so the history uses the call ids the client saw.
            self._remember(translator.completion())
        except GatewayError as error:
            # Reported in the stream; raised on so the attempt counts as failed, not served.
            await send_frames(self._send, translator.error(error), more=False)
            raise
        await send_frames(self._send, tail, more=False)


async def create_response(gateway: Gateway, scope: Scope, body: bytes, call: Call) -> None:
    request = parse_request(body)
    previous = request.get("previous_response_id")
    history = await gateway.responses.get(previous) if isinstance(previous, str) and previous else None
    chat = to_chat_request(request, history)
    sink = ResponsesSink(call.send, gateway.responses, request, chat)
    call.model, call.stream = chat["model"], bool(chat.get("stream"))
    if call.stream:

        def late_error(error: GatewayError) -> bytes:
            translator = sink.translator or StreamTranslator(
                request=request, response_id=sink.response_id, created_at=int(time.time())
            )
            return b"".join(translator.error(error))

        call.keep_alive(gateway.settings.keepalive_interval, late_error)
    await exchange(gateway, scope, chat, sink, call)
