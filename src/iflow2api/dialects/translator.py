"""What every dialect's stream translator offers, so one loop serves every API's stream.

The upstream speaks Chat Completions; a translator turns its chunks (parsed once, upstream-side)
into the frames of one client API: Chat Completions itself, Anthropic Messages or OpenAI Responses.
Pure: chunk dicts in, encoded SSE frames out; the loop that sends them owns all I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

from iflow2api.errors import GatewayError


class StreamTranslator(Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        """The frames one upstream chunk becomes (the first call may open the stream too)."""
        ...

    def finish(self) -> list[bytes]:
        """The frames that close a stream the upstream ended well."""
        ...

    def error(self, error: GatewayError) -> list[bytes]:
        """The frames that end a started stream with ``error``, in this API's own words."""
        ...
