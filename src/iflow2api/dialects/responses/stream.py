"""Chat completion chunks as Responses server-sent events: one small state machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from iflow2api.dialects.checks import as_object, as_text
from iflow2api.dialects.chunks import deltas
from iflow2api.dialects.responses.answer import (
    INCOMPLETE,
    Call,
    Reply,
    assistant_message,
    call_item,
    incomplete,
    item_id,
    message_item,
    output_text,
    reasoning_item,
    response,
    usage_of,
)
from iflow2api.dialects.responses.errors import response_error
from iflow2api.dialects.responses.wire import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    ErrorEvent,
    Event,
    IncompleteDetails,
    ItemEvent,
    OutputItem,
    Place,
    Response,
    ResponseError,
    ResponsesRequest,
    ResponseStatus,
    Status,
    SummaryDeltaEvent,
    SummaryDoneEvent,
    SummaryPartEvent,
    TextDeltaEvent,
    TextDoneEvent,
)
from iflow2api.errors import GatewayError
from iflow2api.redact import redact
from iflow2api.sse import event

_Kind = Literal["reasoning", "message", "function_call"]
_PREFIXES: Mapping[_Kind, str] = MappingProxyType(
    {"reasoning": "rs", "message": "msg", "function_call": "fc"}
)


@dataclass(slots=True)
class _OpenItem:
    """The output item being streamed. Items are written one after another, as OpenAI does."""

    kind: _Kind
    output_index: int
    item_id: str
    parts: list[str] = field(default_factory=list)  # thinking, text or argument fragments
    call_id: str = ""
    name: str = ""
    #: A function call is announced once its id and name are known (upstreams may send either one
    #: a chunk later); until then its arguments wait.
    announced: bool = True

    @property
    def where(self) -> Place:
        return {"item_id": self.item_id, "output_index": self.output_index}

    def item(self, status: Status) -> OutputItem:
        text = "".join(self.parts) if status != "in_progress" else ""
        if self.kind == "reasoning":
            return reasoning_item(self.item_id, text, status)
        if self.kind == "message":
            return message_item(self.item_id, text if status != "in_progress" else None, status)
        return call_item(self.item_id, Call(self.call_id, self.name, text), status)


class StreamTranslator:
    """Chat completion chunks in, Responses server-sent events out.

    ``feed`` takes each parsed ``chat.completion.chunk`` (the first call opens the response with
    ``response.created`` and ``response.in_progress`` too); ``finish`` closes what is open and sends
    ``response.completed`` (or ``response.incomplete``); ``error`` ends the stream with ``error``
    and ``response.failed`` instead. Each returns whole SSE frames, and opens the response first if
    nothing did yet. Failures inside the upstream stream (iFlow's ``network_error``) are the
    caller's to recognise, as ``StreamRelay`` does.
    """

    def __init__(self, *, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self._sequence = 0
        self._started = False
        self._final: Response | None = None  # the Response, once the stream has ended
        self._items: list[OutputItem] = []  # finished output items, by output_index
        self._open: _OpenItem | None = None
        self._calls_by_id: dict[str, _OpenItem] = {}
        self._calls_by_index: dict[int, _OpenItem] = {}
        self._last_call: _OpenItem | None = None
        self._calls = 0
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        frames = self._start()
        if self._final is not None:
            return frames
        if as_object(chunk.get("usage")):
            self._usage = chunk["usage"]  # the last one counts (MiniMax ends with an empty one)
        for delta in deltas(chunk):
            if delta.reasoning:
                frames += self._text("reasoning", delta.reasoning)
            if delta.content:
                frames += self._text("message", delta.content)
            fragments = delta.fields.get("tool_calls")
            for fragment in fragments if isinstance(fragments, list) else ():
                frames += self._tool_fragment(as_object(fragment))
            if isinstance(delta.finish_reason, str) and delta.finish_reason:
                self._finish_reason = delta.finish_reason
                frames += self._close()
        return frames

    def finish(self) -> list[bytes]:
        frames = self._start()
        if self._final is not None:
            return frames
        frames += self._close()
        if not any(item["type"] != "reasoning" for item in self._items):
            frames += self._begin("message") + self._close()
        details = incomplete(self._finish_reason)
        self._final = self._snapshot(
            "incomplete" if details else "completed", self._items, incomplete=details
        )
        frames.append(self._event(f"response.{self._final['status']}", {"response": self._final}))
        return frames

    def error(self, error: GatewayError) -> list[bytes]:
        frames = self._start()
        if self._final is not None:
            return frames
        failure: ErrorEvent = {
            "code": error.code or error.type,
            "message": redact(error.message),
            "param": error.param,
        }
        frames.append(self._event("error", failure))
        output = [*self._items, self._open.item("incomplete")] if self._open else self._items
        self._final = self._snapshot("failed", output, error=response_error(error))
        frames.append(self._event("response.failed", {"response": self._final}))
        return frames

    def completed_response(self) -> Response:
        """The final Response once the stream has ended (for the store); before, the story so far."""
        return self._final if self._final is not None else self._snapshot("in_progress", list(self._items))

    def completion(self) -> dict[str, Any]:
        """What was streamed, as a ``chat.completion`` for ``answer.history_messages``."""
        output = self.completed_response()["output"]
        reasoning, text, calls = [], [], []
        for item in output:
            if item["type"] == "reasoning":
                reasoning += [part["text"] for part in item["summary"]]
            elif item["type"] == "message":
                text += [part["text"] for part in item["content"]]
            else:
                calls.append(Call(item["call_id"], item["name"], item["arguments"]))
        reply = Reply("".join(reasoning), "".join(text), tuple(calls))
        choice = {"index": 0, "message": assistant_message(reply), "finish_reason": self._finish_reason}
        return {
            "id": self.response_id,
            "object": "chat.completion",
            "created": self.created_at,
            "model": self.request["model"],
            "choices": [choice],
            "usage": self._usage,
        }

    def _start(self) -> list[bytes]:
        """``response.created`` and ``response.in_progress``, before the first of anything else."""
        if self._started:
            return []
        self._started = True
        snapshot = self.completed_response()
        return [
            self._event("response.created", {"response": snapshot}),
            self._event("response.in_progress", {"response": snapshot}),
        ]

    def _event(self, kind: str, payload: Event) -> bytes:
        self._sequence += 1
        return event(kind, {"sequence_number": self._sequence - 1, **payload})

    def _snapshot(
        self,
        status: ResponseStatus,
        output: list[OutputItem],
        *,
        incomplete: IncompleteDetails | None = None,
        error: ResponseError | None = None,
    ) -> Response:
        usage = usage_of(self._usage) if status != "in_progress" else None
        return response(
            self.request,
            self.response_id,
            self.created_at,
            status,
            output,
            usage=usage,
            incomplete_details=incomplete,
            error=error,
        )

    def _begin(self, kind: _Kind) -> list[bytes]:
        index = len(self._items)
        item = self._open = _OpenItem(kind, index, item_id(_PREFIXES[kind], self.response_id, index))
        if kind == "function_call":
            item.announced = False
            self._calls += 1
            return []
        added: ItemEvent = {"output_index": index, "item": item.item("in_progress")}
        frames = [self._event("response.output_item.added", added)]
        if kind == "reasoning":
            summary: SummaryPartEvent = {
                **item.where,
                "summary_index": 0,
                "part": {"type": "summary_text", "text": ""},
            }
            frames.append(self._event("response.reasoning_summary_part.added", summary))
        else:
            content: ContentPartEvent = {**item.where, "content_index": 0, "part": output_text("")}
            frames.append(self._event("response.content_part.added", content))
        return frames

    def _text(self, kind: Literal["reasoning", "message"], text: str) -> list[bytes]:
        frames = (
            [] if self._open is not None and self._open.kind == kind else self._close() + self._begin(kind)
        )
        item = self._open
        assert item is not None
        item.parts.append(text)
        if kind == "reasoning":
            summary: SummaryDeltaEvent = {**item.where, "summary_index": 0, "delta": text}
            frames.append(self._event("response.reasoning_summary_text.delta", summary))
        else:
            content: TextDeltaEvent = {**item.where, "content_index": 0, "delta": text, "logprobs": []}
            frames.append(self._event("response.output_text.delta", content))
        return frames

    def _tool_fragment(self, fragment: dict[str, Any]) -> list[bytes]:
        upstream_id = as_text(fragment.get("id"))
        index = fragment.get("index") if isinstance(fragment.get("index"), int) else None
        call = self._route(upstream_id, index)
        frames: list[bytes] = []
        if call is None:
            frames = self._close() + self._begin("function_call")
            call = self._open
            assert call is not None
        elif call is not self._open:
            # Upstreams send parallel calls one after another (the iFlow CLI's parser relies on it
            # too), so a call was finished when the next one began.
            return frames
        if index is not None:
            self._calls_by_index[index] = call
        if upstream_id and not call.call_id:
            call.call_id = upstream_id
            self._calls_by_id[upstream_id] = call
        self._last_call = call
        function = as_object(fragment.get("function"))
        call.name = call.name or as_text(function.get("name"))
        arguments = as_text(function.get("arguments"))
        if arguments:
            call.parts.append(arguments)
        if not call.announced:
            return frames + (self._announce(call) if call.name and call.call_id else [])
        if arguments:
            frames.append(self._arguments_delta(call, arguments))
        return frames

    def _route(self, upstream_id: str, index: int | None) -> _OpenItem | None:
        """The call a fragment continues: by id, else by index, else the last; None for a new call."""
        if upstream_id:
            known = self._calls_by_id.get(upstream_id)
            slot = self._calls_by_index.get(index) if index is not None else None
            # A new id at a known index is a new call, unless the call there has no id yet.
            return known or (slot if slot is not None and not slot.call_id else None)
        return self._calls_by_index.get(index) if index is not None else self._last_call

    def _announce(self, call: _OpenItem) -> list[bytes]:
        call.announced = True
        call.call_id = call.call_id or f"call_{self._calls - 1}"
        added: ItemEvent = {"output_index": call.output_index, "item": call.item("in_progress")}
        frames = [self._event("response.output_item.added", added)]
        if call.parts:
            frames.append(self._arguments_delta(call, "".join(call.parts)))
        return frames

    def _arguments_delta(self, call: _OpenItem, arguments: str) -> bytes:
        delta: ArgumentsDeltaEvent = {**call.where, "delta": arguments}
        return self._event("response.function_call_arguments.delta", delta)

    def _close(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        text, where = "".join(item.parts), item.where
        frames: list[bytes] = []
        if item.kind == "reasoning":
            summary_done: SummaryDoneEvent = {**where, "summary_index": 0, "text": text}
            frames.append(self._event("response.reasoning_summary_text.done", summary_done))
            part: SummaryPartEvent = {
                **where,
                "summary_index": 0,
                "part": {"type": "summary_text", "text": text},
            }
            frames.append(self._event("response.reasoning_summary_part.done", part))
        elif item.kind == "message":
            text_done: TextDoneEvent = {**where, "content_index": 0, "text": text, "logprobs": []}
            frames.append(self._event("response.output_text.done", text_done))
            content: ContentPartEvent = {**where, "content_index": 0, "part": output_text(text)}
            frames.append(self._event("response.content_part.done", content))
        else:
            if not item.announced:
                frames += self._announce(item)
            arguments: ArgumentsDoneEvent = {**where, "name": item.name, "arguments": text}
            frames.append(self._event("response.function_call_arguments.done", arguments))
        done = item.item("incomplete" if self._finish_reason in INCOMPLETE else "completed")
        self._items.append(done)
        finished: ItemEvent = {"output_index": item.output_index, "item": done}
        frames.append(self._event("response.output_item.done", finished))
        return frames
