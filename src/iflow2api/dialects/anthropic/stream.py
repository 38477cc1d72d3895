"""OpenAI chat chunks as Anthropic's stream events: a small state machine, one block open at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from iflow2api.dialects.anthropic.answer import message_id, stop_reason, tool_id, usage_of
from iflow2api.dialects.anthropic.errors import error_detail
from iflow2api.dialects.anthropic.wire import (
    ContentBlock,
    ContentBlockDelta,
    ContentBlockStart,
    ErrorEvent,
    MessageDelta,
    MessageStart,
    StopDelta,
    StreamUsage,
)
from iflow2api.dialects.checks import as_object, as_text, is_json_type
from iflow2api.dialects.chunks import deltas
from iflow2api.errors import GatewayError, UpstreamError
from iflow2api.sse import event

_Text = Literal["thinking", "text"]


class StreamTranslator:
    """OpenAI chat chunks in, Anthropic SSE frames out, one content block open at a time.

    ``message_start`` and a ``ping`` come with the first chunk; thinking, text and each tool call
    (by its OpenAI ``index``) get a block of their own, numbered in order. Only choice 0 counts.
    ``finish()`` closes the message; the upstream's final usage chunk must have been fed by then.
    Errors hidden in chunks are the caller's to find before feeding (as for ``StreamRelay``), except
    iFlow's ``network_error`` finish, which ends the stream with an ``error`` event and ``failure``.

    A tool call's block opens only once both its id and its name are known: upstreams may send the
    id first and the name in the next chunk, and a ``tool_use`` block that starts with an empty
    name breaks Claude Code. Its argument fragments wait meanwhile and follow as one delta. A call
    still lacking either at the end opens then, with what it has (a fresh id if it had none).

    An argument fragment for a tool call whose block was already closed (an upstream interleaving
    calls, which OpenAI does not do) is still sent with that block's index: the SDK assembles it
    correctly, though a client that takes a block as final at its ``content_block_stop`` will not.
    """

    __slots__ = (
        "_blocks",
        "_cached",
        "_finish_reason",
        "_held",
        "_input",
        "_open",
        "_output",
        "_signature",
        "_tools",
        "done",
        "failure",
        "message_id",
        "model",
        "started",
    )

    def __init__(self, *, model: str, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self.done = False
        #: Why the stream ended early, when the upstream said so inside it.
        self.failure: GatewayError | None = None
        self._blocks = 0
        #: The kind of the block now open (its index is ``_blocks - 1``), or None.
        self._open: str | None = None
        self._signature = ""
        #: OpenAI tool-call index → our block index, for calls whose block has opened.
        self._tools: dict[int, int] = {}
        #: OpenAI tool-call index → a call still waiting for its id or name.
        self._held: dict[int, _HeldCall] = {}
        self._finish_reason: str | None = None
        self._input: int | None = None
        self._cached = 0
        self._output: int | None = None

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.done:
            return []
        if isinstance(chunk.get("usage"), dict):
            usage = usage_of(chunk["usage"])
            self._input, self._cached = usage["input_tokens"], usage["cache_read_input_tokens"]
            self._output = usage["output_tokens"]
        frames = [] if self.started else self._start(chunk.get("id"))
        for delta in deltas(chunk):
            if delta.reasoning:
                frames += self._text("thinking", delta.reasoning)
            self._signature = as_text(delta.fields.get("signature")) or self._signature
            if delta.content:
                frames += self._text("text", delta.content)
            for position, call in enumerate(delta.fields.get("tool_calls") or ()):
                if isinstance(call, dict):
                    frames += self._tool_call(call, position)
            finish = delta.finish_reason
            if finish == "network_error":
                # iFlow's word for a stream that broke upstream (protocol §7.3 C): the answer is cut short.
                self.failure = UpstreamError("The upstream stream broke off (network_error).")
                return frames + self.error(self.failure)
            if isinstance(finish, str):
                self._finish_reason = finish
        return frames

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        frames = [] if self.started else self._start(None)
        for key in list(self._held):
            frames += self._release(key)
        frames += self._close()
        self.done = True
        usage: StreamUsage = {}
        if self._input is not None:
            usage = {"input_tokens": self._input, "cache_read_input_tokens": self._cached}
        usage["output_tokens"] = self._output or 0
        delta: StopDelta = {
            "stop_reason": stop_reason(self._finish_reason, tool_use=bool(self._tools)),
            "stop_sequence": None,
        }
        end: MessageDelta = {"delta": delta, "usage": usage}
        return [*frames, event("message_delta", end), event("message_stop", {})]

    def error(self, error: GatewayError) -> list[bytes]:
        """The ``error`` event that ends a stream early; nothing once the stream has ended."""
        if self.done:
            return []
        self.done = True
        payload: ErrorEvent = {"error": error_detail(error)}
        return [event("error", payload)]

    def _start(self, upstream_id: object) -> list[bytes]:
        self.started = True
        if self.message_id is None:
            self.message_id = message_id(upstream_id)
        start: MessageStart = {
            "message": {
                "id": self.message_id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": self._input or 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": self._cached,
                    "output_tokens": 0,
                },
            }
        }
        return [event("message_start", start), event("ping", {})]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        index = self._blocks - 1
        frames = []
        if self._open == "thinking":
            signature: ContentBlockDelta = {
                "index": index,
                "delta": {"type": "signature_delta", "signature": self._signature},
            }
            frames.append(event("content_block_delta", signature))
        self._open = None
        return [*frames, event("content_block_stop", {"index": index})]

    def _open_block(self, kind: str, block: ContentBlock) -> list[bytes]:
        frames = self._close()
        self._open = kind
        self._blocks += 1
        start: ContentBlockStart = {"index": self._blocks - 1, "content_block": block}
        return [*frames, event("content_block_start", start)]

    def _text(self, kind: _Text, text: str) -> list[bytes]:
        frames: list[bytes] = []
        delta: ContentBlockDelta
        if kind == "thinking":
            if self._open != kind:
                frames = self._open_block(kind, {"type": "thinking", "thinking": "", "signature": ""})
            delta = {"index": self._blocks - 1, "delta": {"type": "thinking_delta", "thinking": text}}
        else:
            if self._open != kind:
                frames = self._open_block(kind, {"type": "text", "text": ""})
            delta = {"index": self._blocks - 1, "delta": {"type": "text_delta", "text": text}}
        return [*frames, event("content_block_delta", delta)]

    def _tool_call(self, call: dict[str, Any], position: int) -> list[bytes]:
        key = call["index"] if is_json_type(call.get("index"), int) else position
        function = as_object(call.get("function"))
        arguments = as_text(function.get("arguments"))
        if key in self._tools:
            return self._arguments(key, arguments)
        held = self._held.setdefault(key, _HeldCall())
        held.call_id = held.call_id or as_text(call.get("id"))
        held.name = held.name or as_text(function.get("name"))
        if arguments:
            held.arguments.append(arguments)
        return self._release(key) if held.call_id and held.name else []

    def _release(self, key: int) -> list[bytes]:
        """Open the block of a held call and send the arguments it gathered meanwhile."""
        held = self._held.pop(key)
        block: ContentBlock = {
            "type": "tool_use",
            "id": tool_id(held.call_id),
            "name": held.name,
            "input": {},
        }
        frames = self._open_block("tool_use", block)
        self._tools[key] = self._blocks - 1
        return frames + self._arguments(key, "".join(held.arguments))

    def _arguments(self, key: int, arguments: str) -> list[bytes]:
        if not arguments:
            return []
        delta: ContentBlockDelta = {
            "index": self._tools[key],
            "delta": {"type": "input_json_delta", "partial_json": arguments},
        }
        return [event("content_block_delta", delta)]


@dataclass(slots=True)
class _HeldCall:
    """A streamed tool call whose id or name has not arrived yet."""

    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
