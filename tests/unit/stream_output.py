"""What a stream's model wrote, from its parsed chunks: the reference ``OutputText`` must agree with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from iflow2api.dialects.token_count import message_output


def chunks_output(chunks: Iterable[dict[str, Any]]) -> str:
    """The text of a stream's ``chat.completion.chunk``s, deltas joined (see ``message_output``)."""
    return "".join(
        message_output(choice.get("delta"))
        for chunk in chunks
        for choice in chunk.get("choices") or ()
        if isinstance(choice, dict)
    )
