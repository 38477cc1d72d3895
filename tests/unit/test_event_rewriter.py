"""``providers.base.EventRewriter``: a host's stream events through its profile's chunk rewriter.

Unchanged chunks keep the host's own bytes (no second write); changed ones are written anew; what
the rewriter holds comes out before ``[DONE]``, or at ``finish`` when the stream ended without it.
"""

from __future__ import annotations

from typing import Any

import orjson

from iflow2api.providers.base import EventRewriter

UNCHANGED = b'{"choices":[{"index":0,"delta":{"content":"a"}}],  "id":"x"}'  # odd spacing: not ours
CHANGED = b'{"choices":[{"index":0,"delta":{"reasoning":"why"}}]}'


class Renaming:
    """Moves ``delta.reasoning`` to ``reasoning_content``; holds a tail until the end."""

    def __init__(self) -> None:
        self.finished = 0

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        delta = chunk["choices"][0]["delta"]
        if "reasoning" not in delta:
            return [chunk]
        return [{"choices": [{"index": 0, "delta": {"reasoning_content": delta["reasoning"]}}]}]

    def finish(self) -> list[dict[str, Any]]:
        self.finished += 1
        return [{"choices": [{"index": 0, "delta": {"content": "held"}}]}]


def test_an_unchanged_chunk_passes_as_the_hosts_bytes_and_a_changed_one_is_rewritten() -> None:
    events = EventRewriter(Renaming()).feed([UNCHANGED, CHANGED])
    assert events[0] is UNCHANGED
    assert orjson.loads(events[1]) == {"choices": [{"index": 0, "delta": {"reasoning_content": "why"}}]}


def test_what_is_held_comes_out_once_before_done_or_at_the_end() -> None:
    rewriter = Renaming()
    events = EventRewriter(rewriter).feed([b"[DONE]"])
    assert [orjson.loads(e) for e in events[:-1]] == [
        {"choices": [{"index": 0, "delta": {"content": "held"}}]}
    ]
    assert events[-1] == b"[DONE]"
    without_done = EventRewriter(Renaming())
    assert without_done.feed([UNCHANGED]) == [UNCHANGED]
    assert len(without_done.finish()) == 1 and without_done.finish() == []


def test_what_is_not_a_json_object_passes_untouched() -> None:
    assert EventRewriter(Renaming()).feed([b"not json", b"[1,2]"]) == [b"not json", b"[1,2]"]
