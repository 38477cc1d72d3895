"""OpenAI Chat Completions as clients speak it: request checks, error bodies, and the stream relay.

Pure functions and small state machines over bytes and dicts; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from iflow2api.dialects.checks import TypeTable, check_model_length, check_types, load_object, one_of
from iflow2api.errors import GatewayError, InvalidRequest, UpstreamError
from iflow2api.sse import DONE, DONE_FRAME, frame

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Parameters whose JSON type we check, so a wrong one is a clear 400 here rather than an obscure
# upstream failure. Anything not listed passes through untouched.
_TYPED: TypeTable = {
    "stream": (bool, "a boolean"),
    "max_tokens": (int, "an integer"),
    "max_completion_tokens": (int, "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "n": (int, "an integer"),
    "tools": (list, "an array"),
    "stream_options": (dict, "an object"),
    "reasoning_effort": (str, "a string"),
    "stop": ((str, list), "a string or an array of strings"),
}


def parse_request(body: bytes) -> dict[str, Any]:
    """The client's request body, checked enough to fail early and clearly.

    Raises ``InvalidRequest`` naming the offending parameter.
    """
    payload = load_object(body)
    model = payload.get("model")
    if model is None:
        raise InvalidRequest(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' must be a non-empty string.", param="model", code="invalid_type")
    check_model_length(model)
    messages = payload.get("messages")
    if messages is None:
        raise InvalidRequest(
            "'messages' is a required property", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise InvalidRequest(
            "'messages' must be an array of message objects.", param="messages", code="invalid_type"
        )
    if not messages:
        raise InvalidRequest(
            "'messages' must contain at least one message.", param="messages", code="empty_array"
        )
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{param}' must be an object.", param=param, code="invalid_type")
        role = message.get("role")
        if not one_of(role, _ROLES):
            raise InvalidRequest(
                f"'{param}.role' must be one of {', '.join(sorted(_ROLES))}.",
                param=f"{param}.role",
                code="invalid_value",
            )
    check_types(payload, _TYPED)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(name)
        if value is not None and value < 1:
            raise InvalidRequest(f"'{name}' must be at least 1.", param=name, code="invalid_value")
    return payload


def content_text(content: object) -> str:
    """The text of a message's ``content``, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (
            part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
        return "".join(str(text or "") for text in texts)
    return ""


def wants_usage_in_stream(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def error_body(error: GatewayError) -> bytes:
    return orjson.dumps(
        {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    )


def normalize_completion(completion: dict[str, Any]) -> bool:
    """Fill in what OpenAI's schema requires and iFlow leaves out; True if anything was added.

    ``usage`` (the original iflow2api found it missing at times), and the nullable but required
    ``logprobs`` of each choice and ``refusal`` of each message, which strictly typed clients
    insist on.
    """
    changed = False
    if not isinstance(completion.get("usage"), dict):
        completion["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        changed = True
    for choice in completion.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if "logprobs" not in choice:
            choice["logprobs"] = None
            changed = True
        message = choice.get("message")
        if isinstance(message, dict) and "refusal" not in message:
            message["refusal"] = None
            changed = True
    return changed


def completion_as_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[bytes]:
    """SSE frames carrying a whole completion, for an upstream that answered a stream with JSON."""
    chunks = completion_as_chunk_dicts(completion)
    if not include_usage:
        chunks = [chunk for chunk in chunks if "usage" not in chunk]
    return [frame(orjson.dumps(chunk)) for chunk in chunks] + [DONE_FRAME]


def completion_as_chunk_dicts(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole completion as the chunks a stream would have carried (usage last, if known)."""
    base = {
        "id": completion.get("id", "chatcmpl-iflow2api"),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    chunks: list[dict[str, Any]] = []
    for choice in completion.get("choices") or []:
        message = dict(choice.get("message") or {})
        tool_calls = message.get("tool_calls")
        if tool_calls:
            message["tool_calls"] = [{"index": i, **call} for i, call in enumerate(tool_calls)]
        delta = {k: v for k, v in message.items() if v is not None}
        index = choice.get("index", 0)
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
        chunks.append({**base, "choices": [finish]})
    if isinstance(completion.get("usage"), dict):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def error_frame(error: GatewayError) -> bytes:
    return frame(error_body(error))


class StreamRelay:
    """Turns the upstream's ``data`` payloads into the frames the client gets.

    Most chunks are forwarded byte for byte. A chunk is parsed only when it may need changing:
    ``usage`` the client did not ask for is removed (iFlow always sends it, because the CLI always
    asks), and a chunk without ``choices`` may be an upstream error in disguise.
    """

    __slots__ = ("_classify", "chunks", "done", "failure", "include_usage")

    def __init__(self, *, include_usage: bool, classify: Callable[[object], GatewayError | None]) -> None:
        self.include_usage = include_usage
        self._classify = classify
        self.done = False
        self.chunks = 0
        #: Why the stream ended early, when the upstream said so inside it.
        self.failure: GatewayError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self.done:
            return []
        if data == DONE:
            self.done = True
            return [DONE_FRAME]
        if self.include_usage and b'"choices"' in data and b"network_error" not in data:
            self.chunks += 1
            return [frame(data)]
        return self._inspect(data)

    def _inspect(self, data: bytes) -> list[bytes]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # not JSON: nothing a client could use
        if not isinstance(chunk, dict):
            return []
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            if "error" in chunk:
                self.failure = UpstreamError("The upstream reported an error in the stream.")
                return self._end_with(frame(data))
            error = self._classify(chunk)
            if error is not None:
                self.failure = error
                return self._end_with(error_frame(error))
            return []
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason") == "network_error":
                # Reported for iFlow streams that broke upstream (protocol §7.3 C); the answer is cut short.
                self.failure = UpstreamError("The upstream stream broke off (network_error).")
                return self._end_with(error_frame(self.failure))
        if not self.include_usage and "usage" in chunk:
            del chunk["usage"]
            if not choices:
                return []
            data = orjson.dumps(chunk)
        self.chunks += 1
        return [frame(data)]

    def _end_with(self, final: bytes) -> list[bytes]:
        self.done = True
        return [final, DONE_FRAME]

    def finish(self) -> list[bytes]:
        """Frames owed at the end of the upstream stream: a ``[DONE]`` it left out."""
        if self.done:
            return []
        self.done = True
        return [DONE_FRAME]
