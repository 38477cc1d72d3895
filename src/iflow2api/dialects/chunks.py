"""Reading an upstream chat chunk the way every stream translator does: choice 0's delta only, and
each field read defensively, since a chunk is untrusted JSON.

>>> [(d.reasoning, d.content) for d in deltas({"choices": [{"delta": {"content": "Hi"}}]})]
[('', 'Hi')]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from iflow2api.dialects.checks import as_object, as_text


class Delta(NamedTuple):
    #: The model's thinking, as ``reasoning_content`` (iFlow, DeepSeek) or ``reasoning``.
    reasoning: str
    content: str
    #: The whole delta, for what only one dialect reads (``tool_calls``, ``signature``).
    fields: dict[str, Any]
    finish_reason: object


def deltas(chunk: dict[str, Any]) -> Iterator[Delta]:
    """The delta of each choice 0 in ``chunk`` (the gateway asks for one choice; others are ignored)."""
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = as_object(choice.get("delta"))
            reasoning = as_text(delta.get("reasoning_content")) or as_text(delta.get("reasoning"))
            yield Delta(reasoning, as_text(delta.get("content")), delta, choice.get("finish_reason"))
