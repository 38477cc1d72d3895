"""Scripted replies, and the pure code that turns them into OpenAI-shaped JSON and SSE bytes.

Each chat request that passes the fake's checks consumes one reply, in the order they were enqueued::

    fake.enqueue(Completion(content="Hi"), BusinessError(status="449", msg="busy"), Hang(2.0))

A :class:`Completion` adapts to the request (JSON, or SSE chunks when it asked to stream); the other
replies are served the same way whatever the request asked.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

import orjson

DEFAULT_CONTENT = "Hello from fake iFlow"
DEFAULT_USAGE: dict[str, Any] = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}

# One SSE event: a dict is one ``data:`` event; a str is a raw block of lines (the blank line that
# ends it is added); bytes go out exactly as given, for frames split across writes.
Event = Mapping[str, object] | str | bytes


# --- wire shapes --------------------------------------------------------------------------------


class FunctionCall(TypedDict):
    name: str
    arguments: str


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class Message(TypedDict):
    role: Literal["assistant"]
    content: str | None
    reasoning_content: NotRequired[str]
    tool_calls: NotRequired[list[ToolCall]]


class Choice(TypedDict):
    index: int
    message: Message
    finish_reason: str


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: NotRequired[dict[str, Any]]


class FunctionFragment(TypedDict, total=False):
    name: str
    arguments: str


class ToolCallFragment(TypedDict):
    index: int
    id: NotRequired[str]
    type: NotRequired[Literal["function"]]
    function: FunctionFragment


class Delta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str
    reasoning_content: str
    tool_calls: list[ToolCallFragment]


class ChunkChoice(TypedDict):
    index: int
    delta: Delta
    finish_reason: str | None


class ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    # null on the other chunks when OpenAI was asked for usage (``null_usage``).
    usage: NotRequired[dict[str, Any] | None]


# --- reply types --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """A successful answer: chat.completion JSON, or chunks when the request streams.

    Streamed, it becomes: reasoning deltas, content deltas (a few words each), tool-call fragments
    (id and name first, then pieces of the arguments), a chunk with ``finish_reason``, and ``usage``
    on that last chunk if the request asked ``stream_options.include_usage``; then ``[DONE]``.
    ``usage=None`` leaves usage out altogether; ``model=None`` echoes the request's model.
    """

    content: str = DEFAULT_CONTENT
    reasoning: str | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    model: str | None = None


@dataclass(frozen=True)
class Stream:
    """Full control over an SSE answer, whatever the request asked.

    Each item of ``chunks`` is one event: a dict goes out as ``data: <json>``, a str as a raw block
    of lines (e.g. ``": keep-alive"``) ended by a blank line, bytes exactly as given. ``delay``
    seconds pass before each event but the first, which waits ``first_delay`` (after the headers
    went out). ``data_space=False`` writes ``data:{...}``; ``done=False`` leaves out
    ``data: [DONE]``; ``cut_after=N`` writes N events of ``chunks`` and then drops the connection
    without the chunked-encoding terminator.
    """

    chunks: Sequence[Event]
    delay: float = 0.0
    first_delay: float = 0.0
    data_space: bool = True
    done: bool = True
    cut_after: int | None = None

    @classmethod
    def of_text(
        cls,
        texts: Sequence[str],
        *,
        reasoning: Sequence[str] = (),
        usage: dict[str, Any] | None = None,
        finish_reason: str = "stop",
        model: str = "glm-4.7",
        delay: float = 0.0,
        first_delay: float = 0.0,
        data_space: bool = True,
        done: bool = True,
        cut_after: int | None = None,
    ) -> Stream:
        """One chunk per reasoning piece, one per text piece, then the finish chunk (with ``usage``).

        >>> Stream.of_text(["Hel", "lo"], delay=0.1).chunks[0]["choices"][0]["delta"]["content"]
        'Hel'
        """
        builder = _ChunkBuilder(model)
        chunks = [builder.chunk({"reasoning_content": piece}) for piece in reasoning]
        chunks += [builder.chunk({"content": piece}) for piece in texts]
        chunks.append(builder.finish(finish_reason, usage))
        return cls(chunks, delay, first_delay, data_space, done, cut_after)


@dataclass(frozen=True)
class BusinessError:
    """§7.3 B: HTTP 200 with ``{"status", "msg", "body": null}`` (or ``{"error_code", "msg"}``).

    Served as ``application/json`` to stream requests too, as iFlow does (§7.3 C). A ``None`` status
    is left out of the body.
    """

    status: str | int | None = None
    msg: str = ""
    error_code: int | None = None

    def payload(self) -> dict[str, Any]:
        if self.error_code is not None:
            return {"error_code": self.error_code, "msg": self.msg}
        status = {} if self.status is None else {"status": self.status}
        return {**status, "msg": self.msg, "body": None}


@dataclass(frozen=True)
class HttpError:
    """§7.3 A: a non-2xx status. The default body is iFlow's ``{"error": {"message": "status N", …}}``.

    A dict body goes out as JSON, bytes as ``text/plain``; ``headers`` adds e.g. ``Retry-After``.
    """

    status: int
    body: bytes | dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def payload(self) -> bytes | dict[str, Any]:
        if self.body is not None:
            return self.body
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return {"error": {"message": f"status {self.status}", "type": kind}}


@dataclass(frozen=True)
class JsonOnStream:
    """§7.3 C: a whole chat.completion JSON body, even when the request asked for a stream."""

    completion: Completion = field(default_factory=Completion)


@dataclass(frozen=True)
class RawJson:
    """HTTP 200 with exactly this JSON body, whatever the request asked: answers no real upstream
    should give (wrongly typed ``choices``...), to see that the gateway refuses to pass them on."""

    body: object


@dataclass(frozen=True)
class Hang:
    """Send nothing for ``seconds`` (not even headers), then serve ``then`` (default: a Completion).

    The fake notices when the client gives up meanwhile (see ``FakeIflow.wait_for_disconnects``).
    """

    seconds: float
    then: Reply | None = None


Reply = Completion | Stream | BusinessError | HttpError | JsonOnStream | RawJson | Hang


# --- rendering ----------------------------------------------------------------------------------


def completion_body(completion: Completion, model: str) -> ChatCompletion:
    message: Message = {"role": "assistant", "content": completion.content}
    if completion.reasoning is not None:
        message["reasoning_content"] = completion.reasoning
    if completion.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in completion.tool_calls]
    body: ChatCompletion = {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model or model,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason}],
    }
    if completion.usage is not None:
        body["usage"] = completion.usage
    return body


def completion_chunks(
    completion: Completion,
    model: str,
    *,
    include_usage: bool,
    separate_usage: bool = False,
    null_usage: bool = False,
) -> list[ChatCompletionChunk]:
    """The chunks of a streamed :class:`Completion`.

    ``separate_usage`` puts usage on an extra chunk with no choices, as OpenAI does; otherwise it
    rides on the finish chunk, which §7.2 allows and which a gateway has to handle. ``null_usage``
    gives every chunk without usage a ``"usage": null``, as OpenAI does when asked for usage.
    """
    builder = _ChunkBuilder(completion.model or model)
    reasoning = split_words(completion.reasoning or "")
    chunks = [builder.chunk({"reasoning_content": piece}) for piece in reasoning]
    chunks += [builder.chunk({"content": piece}) for piece in split_words(completion.content)]
    for index, call in enumerate(_tool_call(call) for call in completion.tool_calls or []):
        head: ToolCallFragment = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        chunks.append(builder.chunk({"tool_calls": [head]}))
        for piece in split_in_three(call["function"]["arguments"]):
            chunks.append(builder.chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    usage = completion.usage if include_usage else None
    if separate_usage and usage is not None:
        chunks += [builder.finish(completion.finish_reason, None), builder.usage_only(usage)]
    else:
        chunks.append(builder.finish(completion.finish_reason, usage))
    if null_usage:
        for chunk in chunks:
            chunk.setdefault("usage", None)
    return chunks


def encode_event(event: Event, *, data_space: bool) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode() + b"\n\n"
    return (b"data: " if data_space else b"data:") + orjson.dumps(event) + b"\n\n"


def encode_done(*, data_space: bool) -> bytes:
    return b"data: [DONE]\n\n" if data_space else b"data:[DONE]\n\n"


def split_words(text: str) -> list[str]:
    """``"The answer is 4"`` → ``["The", " answer", " is", " 4"]``; joined, the pieces give the text back."""
    pieces = re.findall(r"\s*\S+", text)
    trailing = text[len("".join(pieces)) :]
    if trailing:
        pieces.append(trailing)
    return pieces


def split_in_three(text: str) -> list[str]:
    step = max(1, -(-len(text) // 3))
    return [text[start : start + step] for start in range(0, len(text), step)]


def _tool_call(call: Mapping[str, Any]) -> ToolCall:
    function = call["function"]
    return {
        "id": call.get("id") or f"call_{secrets.token_hex(6)}",
        "type": "function",
        "function": {"name": function["name"], "arguments": function.get("arguments", "")},
    }


def _completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


class _ChunkBuilder:
    """Chunks that share one id, creation time and model; the first delta carries the role."""

    def __init__(self, model: str) -> None:
        self.id = _completion_id()
        self.created = int(time.time())
        self.model = model
        self.first = True

    def chunk(self, delta: Delta) -> ChatCompletionChunk:
        if self.first:
            delta = {"role": "assistant", **delta}
            self.first = False
        return self._wrap([{"index": 0, "delta": delta, "finish_reason": None}])

    def finish(self, finish_reason: str, usage: dict[str, Any] | None) -> ChatCompletionChunk:
        chunk = self._wrap([{"index": 0, "delta": {}, "finish_reason": finish_reason}])
        if usage is not None:
            chunk["usage"] = usage
        return chunk

    def usage_only(self, usage: dict[str, Any]) -> ChatCompletionChunk:
        chunk = self._wrap([])
        chunk["usage"] = usage
        return chunk

    def _wrap(self, choices: list[ChunkChoice]) -> ChatCompletionChunk:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
