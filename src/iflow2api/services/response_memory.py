"""The memory behind ``previous_response_id``: the chat history of recent stored responses.

Bounded by count and by bytes, since one input can be megabytes; the newest are kept in memory and
all of them in the state store, so a restart forgets nothing the store still holds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from iflow2api.errors import InvalidRequest
from iflow2api.state.sqlite import MAX_RESPONSE_HISTORY_BYTES

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
