"""OpenAI Chat Completions as clients speak it: request checks, error bodies, and the stream relay.

Pure functions and small state machines over bytes and dicts; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from iflow2api.dialects.checks import check_model_length, check_types, load_object, one_of
from iflow2api.dialects.params import checked
from iflow2api.errors import GatewayError, InvalidRequest, UpstreamError
from iflow2api.redact import redact
from iflow2api.sse import DONE, DONE_FRAME, frame

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Parameters whose JSON type we check, so a wrong one is a clear 400 here rather than an obscure
# upstream failure. Anything not listed passes through untouched.
_TYPED = checked(
    "stream max_tokens max_completion_tokens temperature top_p n tools stream_options reasoning_effort stop"
)


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
    # redact: the last line of defence against an upstream's words that quote a key.
    message = redact(error.message)
    return orjson.dumps(
        {"error": {"message": message, "type": error.type, "param": error.param, "code": error.code}}
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
    """SSE frames carrying a whole completion, for an upstream that answered a stream with JSON.

    With ``include_usage`` they take OpenAI's shape: ``usage`` null on every chunk but the last,
    which has no choices.
    """
    chunks = completion_as_chunk_dicts(completion)
    if include_usage:
        chunks = [chunk if "usage" in chunk else {**chunk, "usage": None} for chunk in chunks]
    else:
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


def malformed(completion: dict[str, Any]) -> str | None:
    """What is wrong with a ``chat.completion``'s choices, or None if nothing is.

    Relayed as they are, wrongly typed choices would break the client instead (or our own
    translation to another dialect), so they are the upstream's error: a 502.

    >>> malformed({"choices": [{"message": 5}, 7]})
    'choice 0 has no message object'
    """
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return "it has no choices"
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            return f"choice {index} is not an object"
        message = choice.get("message")
        if not isinstance(message, dict):
            return f"choice {index} has no message object"
        if not isinstance(message.get("content"), str | list | None):
            return f"the content of choice {index} is neither text nor a list of parts"
        if not isinstance(message.get("tool_calls"), list | None):
            return f"the tool_calls of choice {index} are not a list"
    return None


def chunk_failure(
    chunk: dict[str, Any], classify: Callable[[object], GatewayError | None]
) -> GatewayError | None:
    """What a stream chunk says went wrong, if anything: an error object where the choices belong
    (``classify`` is the speaker's reading of it), wrongly typed choices, or iFlow's
    ``network_error`` finish (a stream that broke upstream, protocol §7.3 C).

    >>> chunk_failure({"choices": [7]}, lambda _: None).message
    'The upstream sent a stream chunk with wrongly typed choices.'
    """
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return classify(chunk)
    if not all(isinstance(choice, dict) for choice in choices):
        return UpstreamError("The upstream sent a stream chunk with wrongly typed choices.")
    if any(choice.get("finish_reason") == "network_error" for choice in choices):
        return UpstreamError("The upstream stream broke off (network_error).")
    return None


def carries_content(chunk: dict[str, Any]) -> bool:
    """Whether a chunk says anything: text, reasoning, a tool call or a finish (a role alone does not).

    >>> carries_content({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    False
    """
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason") is not None:
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(value for name, value in delta.items() if name != "role"):
            return True
    return False


def error_frame(error: GatewayError) -> bytes:
    return frame(error_body(error))


_USAGE_CHUNK_FIELDS = ("id", "object", "created", "model", "system_fingerprint")

# The shape of every chunk but the last from an OpenAI-compatible upstream asked for usage (and
# the gateway always asks). Matched where ``"usage"`` was found: a search from the start would
# cost more than the rest of the fast path.
_NULL_USAGE = re.compile(rb'"usage"\s*+:\s*+null')


# A text field of a chunk and its JSON string body, escapes and all: a key is always a quote, the
# name and a quote, which a string's inside cannot be (its quotes are escaped), so only real keys
# match. Possessive, to stay linear on a long or unterminated string.
_TEXT_FIELD = re.compile(rb'"(?:content|reasoning_content|name|arguments)"\s*+:\s*+"((?:[^"\\]++|\\.)*+)"')


class OutputText:
    """What a stream's model has written so far, read from its raw chunks as they pass.

    What ``token_count.message_output`` finds in each chunk's delta (text, reasoning, tool-call
    names and arguments), without parsing the chunks: the string bodies are kept still escaped, in
    one buffer, and decoded only when an estimate asks. Memory grows with the text written, not
    with the chunks.

    >>> output = OutputText()
    >>> output.feed(b'{"choices":[{"index":0,"delta":{"reasoning_content":"Hm.","content":"Hi"}}]}')
    >>> output.text()
    'Hm.Hi'
    """

    __slots__ = ("_escaped",)

    def __init__(self) -> None:
        self._escaped = bytearray()

    def feed(self, data: bytes) -> None:
        for body in _TEXT_FIELD.findall(data):
            self._escaped += body

    def clear(self) -> None:
        """Forget the text (the upstream's own usage has arrived: no estimate will be needed)."""
        self._escaped = bytearray()

    def text(self) -> str:
        # String bodies joined are one valid string body: every escape lies within its own.
        try:
            text = orjson.loads(b'"' + self._escaped + b'"')
        except orjson.JSONDecodeError:  # raw control characters an upstream did not escape
            return self._escaped.decode("utf-8", "replace")
        return text if isinstance(text, str) else ""


def _without_field(data: bytes, start: int, end: int) -> bytes:
    """A JSON object's bytes without the member at ``data[start:end]``, and the comma that joined it.

    >>> _without_field(b'{"a":1,"b":null}', 7, 15), _without_field(b'{"b":null, "a":1}', 1, 9)
    (b'{"a":1}', b'{"a":1}')
    """
    before = data[:start].rstrip()
    if before.endswith(b","):
        return before[:-1] + data[end:]
    after = data[end:].lstrip()
    return before + (after[1:].lstrip() if after.startswith(b",") else after)


class StreamRelay:
    """Turns the upstream's ``data`` payloads into the frames the client gets.

    Once content flows, most chunks are forwarded byte for byte. A chunk is parsed only when it
    may need changing or decides something:

    - Until the first content (text, reasoning, a tool call or a finish), chunks are held back:
      an error that follows them (an error chunk, an iFlow business error, ``network_error``) is
      then still a failed attempt that another account can take over, since the client has seen
      nothing. ``failure`` says why; the route raises it, or ends the stream with it.
    - ``usage`` is taken off the chunk that carries it (iFlow puts it on the finish chunk, and the
      gateway always asks for it): the client that asked gets it in OpenAI's shape, a last chunk
      with no choices after the finish chunk (whose ``usage`` is null); others never see it.
    - A chunk without ``choices`` may be an upstream error in disguise (``classify``).

    The route feeds every payload, then sends ``finish(estimate)``: the usage chunk and ``[DONE]``,
    or the error and ``[DONE]``. Until usage arrives the text written is kept, for ``output()``.

    >>> relay = StreamRelay(include_usage=False, classify=lambda payload: None)
    >>> relay.feed(b'{"choices":[{"index":0,"delta":{"role":"assistant"}}]}')
    []
    >>> len(relay.feed(b'{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'))
    2
    """

    __slots__ = (
        "_classify",
        "_held",
        "_output",
        "_usage_chunk",
        "content",
        "ended",
        "failure",
        "include_usage",
        "usage",
    )

    def __init__(self, *, include_usage: bool, classify: Callable[[object], GatewayError | None]) -> None:
        self.include_usage = include_usage
        self._classify = classify
        #: Whether content has been seen (and its frames, with any held before it, handed out).
        self.content = False
        #: Whether the upstream said ``[DONE]``, or the stream failed: nothing more is read.
        self.ended = False
        #: Why the stream ended early, when the upstream said so inside it.
        self.failure: GatewayError | None = None
        #: The upstream's usage, the last one seen.
        self.usage: dict[str, Any] | None = None
        self._usage_chunk: dict[str, Any] = {"object": "chat.completion.chunk"}
        self._held: list[bytes] = []
        self._output = OutputText()

    def feed(self, data: bytes) -> list[bytes]:
        if self.ended:
            return []
        if data == DONE:
            self.ended = True
            return []
        if self.content and b'"choices"' in data and b"network_error" not in data:
            at = data.find(b'"usage"')
            if at < 0:
                if self.usage is None:
                    self._output.feed(data)
                if self.include_usage and data.endswith(b"}"):
                    # OpenAI's shape: with usage asked for, every other chunk has it, as null.
                    return [frame(data[:-1] + b',"usage":null}')]
                return [frame(data)]
            # A key is the only place ``"usage"`` can appear (quotes inside strings are escaped).
            null = _NULL_USAGE.match(data, at) if data.find(b'"usage"', at + 7) < 0 else None
            if null is not None:
                if self.usage is None:
                    self._output.feed(data)
                if self.include_usage:
                    return [frame(data)]  # OpenAI's shape already
                # Present only when asked for (ChatCompletionStreamResponse.usage).
                return [frame(_without_field(data, at, null.end()))]
        return self._inspect(data)

    def _inspect(self, data: bytes) -> list[bytes]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # not JSON: nothing a client could use
        if not isinstance(chunk, dict):
            return []
        choices = chunk.get("choices")
        if "id" not in self._usage_chunk and "id" in chunk:
            # The usage chunk shares the stream's id, even when its usage is our estimate.
            self._usage_chunk = {name: chunk[name] for name in _USAGE_CHUNK_FIELDS if name in chunk}
        failure = chunk_failure(chunk, self._classify)
        if failure is not None or not isinstance(choices, list):
            self.fail(failure)  # a chunk without choices that is no error is passed over
            return []
        if self.usage is None:
            self._output.feed(data)
        if "usage" in chunk or self.include_usage:
            self._take_usage(chunk)
            if not choices:
                return []
            data = orjson.dumps(chunk)
        if self.content:
            return [frame(data)]
        self._held.append(frame(data))
        if not carries_content(chunk):
            return []
        self.content = True
        held, self._held = self._held, []
        return held

    def _take_usage(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            self._usage_chunk = {name: chunk[name] for name in _USAGE_CHUNK_FIELDS if name in chunk}
            self._output.clear()
        if self.include_usage:
            chunk["usage"] = None
        else:
            chunk.pop("usage", None)

    def fail(self, error: GatewayError | None) -> None:
        """End the stream with ``error`` (if there is one): found in it, or outside it (the
        connection, a timeout)."""
        if error is not None:
            self.failure = error
            self.ended = True

    def output(self) -> str:
        """What the model wrote, for an estimate of the output (kept only until usage arrives)."""
        return self._output.text()

    def finish(self, estimate: dict[str, int] | None = None) -> list[bytes]:
        """The frames that end the stream: the error if it failed, else the usage chunk if the
        client asked for one (the upstream's, or ``estimate`` without it); then ``[DONE]``."""
        self.ended = True
        if self.failure is not None:
            return [error_frame(self.failure), DONE_FRAME]
        usage = self.usage if self.usage is not None else estimate
        if self.include_usage and usage is not None:
            usage_chunk = {**self._usage_chunk, "choices": [], "usage": usage}
            return [frame(orjson.dumps(usage_chunk)), DONE_FRAME]
        return [DONE_FRAME]
