"""Chat Completions streams: the translator for parsed chunks, what a chunk says, and the byte fast path."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from iflow2api.dialects.openai_chat.errors import error_frame
from iflow2api.errors import GatewayError, UpstreamError
from iflow2api.sse import DONE, DONE_FRAME, frame


class ChunkEncoder:
    """Parsed chunks in, Chat Completions frames out: the ``StreamTranslator`` of this API, for
    chunks that were parsed anyway (the byte fast path is ``StreamRelay``).

    With ``include_usage`` the frames take OpenAI's shape: ``usage`` null on every chunk but the
    last, which has no choices; without it, no usage at all.

    >>> ChunkEncoder(include_usage=False).feed({"choices": [], "usage": {"total_tokens": 1}})
    []
    """

    __slots__ = ("include_usage",)

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if "usage" in chunk:
            return [frame(orjson.dumps(chunk))] if self.include_usage else []
        if self.include_usage:
            chunk = {**chunk, "usage": None}
        return [frame(orjson.dumps(chunk))]

    def finish(self) -> list[bytes]:
        return [DONE_FRAME]

    def error(self, error: GatewayError) -> list[bytes]:
        return [error_frame(error), DONE_FRAME]


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
