"""Anthropic Messages as clients speak it (Claude Code, the ``anthropic`` SDK), over OpenAI chat.

Pure translation, no I/O: a Messages request becomes a Chat Completions body, a chat completion
becomes a Message, and chat chunks become Anthropic's stream events::

    >>> request = parse_request(b'{"model":"claude-sonnet-4-5","max_tokens":64,'
    ...                         b'"messages":[{"role":"user","content":"hi"}]}')
    >>> to_chat_request(request, model="glm-4.7")["messages"]
    [{'role': 'user', 'content': 'hi'}]

Where the dialects do not line up:

- Text blocks of the system prompt, of a user turn and of a tool result are joined with a blank
  line; an assistant turn's text (and its thinking) blocks are joined with nothing, because they
  are the pieces of one upstream answer and the upstream should see that answer again verbatim.
- ``tool_result`` blocks become ``tool`` messages placed before the rest of their turn. With
  ``is_error`` the content gets an ``Error: `` prefix unless it already starts with "error". Images
  in a tool result go into the user message that follows, since tool messages carry only text.
- Consecutive turns of one role are one turn, as Anthropic combines them, so that an assistant
  answer split over several messages keeps its tool calls next to their results.
- ``redacted_thinking`` is dropped (opaque to any other model); thinking signatures are ignored.
- ``thinking`` sets ``reasoning_effort`` by its budget (``disabled`` is ``none``); otherwise
  ``output_config.effort`` does, if given. Blocks and tools no model behind the gateway can use
  (PDFs, files by id, Anthropic's server tools) are a 400 naming them, never silently dropped.
- A tool call whose arguments are not a JSON object gets ``input`` ``{}``: the client's schema check
  then fails and the model hears about it and retries, which inventing a key would not achieve.
- OpenAI does not say which stop sequence ended an answer, nor whether one did, so ``stop_reason``
  is never ``stop_sequence``. ``content_filter`` becomes ``refusal``; any answer with tool calls
  ends in ``tool_use`` unless it was cut off (``max_tokens``).
- OpenAI's ``prompt_tokens`` include cached tokens; Anthropic's ``input_tokens`` do not.
- Thinking blocks carry an empty ``signature`` (or the upstream's, if it sends one), and a stream
  sends its ``signature_delta`` before closing the block, as Anthropic does.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NoReturn

import orjson

from iflow2api.dialects.checks import (
    TypeTable,
    check_model_length,
    check_types,
    is_json_type,
    load_object,
    one_of,
    shown,
)
from iflow2api.errors import GatewayError, InvalidRequest, UpstreamError
from iflow2api.redact import redact

#: Claude model names → iFlow models; the first matching pattern wins (see ``resolve_model``).
DEFAULT_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "claude-*opus*": "glm-5",
        # Claude Code's small, fast model (titles, summaries, quick checks): one that does not think.
        "claude-*haiku*": "qwen3-coder-plus",
        "claude-*sonnet*": "glm-4.7",
        "claude-*": "glm-4.7",
    }
)


def resolve_model(name: str, aliases: Mapping[str, str]) -> str:
    """The target of the first glob in ``aliases`` matching ``name`` in any case, else ``name``.

    >>> resolve_model("claude-3-5-haiku-20241022", DEFAULT_ALIASES)
    'qwen3-coder-plus'
    """
    lowered = name.lower()
    for pattern, target in aliases.items():
        if fnmatch.fnmatchcase(lowered, pattern.lower()):
            return target
    return name


# ---------------------------------------------------------------------------------------------
# Requests

_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_THINKING = frozenset({"enabled", "disabled", "adaptive", "between_tools"})
_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
_BLOCKS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "user": frozenset({"text", "image", "document", "tool_result"}),
        "assistant": frozenset({"text", "thinking", "redacted_thinking", "tool_use"}),
        "system": frozenset({"text"}),
    }
)
_TYPED: TypeTable = MappingProxyType(
    {
        "stream": (bool, "a boolean"),
        "temperature": ((int, float), "a number"),
        "top_p": ((int, float), "a number"),
        "top_k": (int, "an integer"),
        "stop_sequences": (list, "an array of strings"),
        "metadata": (dict, "an object"),
        "tools": (list, "an array"),
        "tool_choice": (dict, "an object"),
        "thinking": (dict, "an object"),
        "output_config": (dict, "an object"),
    }
)


def _fail(message: str, param: str, code: str = "invalid_value") -> NoReturn:
    raise InvalidRequest(message, param=param, code=code)


def _text_of(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _need_str(block: dict[str, Any], key: str, param: str) -> None:
    if not isinstance(block.get(key), str):
        _fail(f"'{param}.{key}' must be a string.", f"{param}.{key}", "invalid_type")


def parse_request(body: bytes) -> dict[str, Any]:
    """The client's Messages request, checked enough to fail early and clearly.

    Raises ``InvalidRequest`` naming the offending parameter. Fields not named here (``cache_control``,
    ``service_tier``, ``container``, ...) are accepted and ignored.
    """
    return check_request(load_object(body))


def check_request(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload``, a parsed Messages request, if ``parse_request`` would accept it."""
    for name in ("model", "max_tokens", "messages"):
        if payload.get(name) is None:
            _fail(f"'{name}' is required.", name, "missing_required_parameter")
    if not isinstance(payload["model"], str) or not payload["model"].strip():
        _fail("'model' must be a non-empty string.", "model", "invalid_type")
    check_model_length(payload["model"])
    if not is_json_type(payload["max_tokens"], int):
        _fail("'max_tokens' must be an integer.", "max_tokens", "invalid_type")
    if payload["max_tokens"] < 1:
        _fail("'max_tokens' must be at least 1.", "max_tokens")
    messages = payload["messages"]
    if not isinstance(messages, list):
        _fail("'messages' must be an array of message objects.", "messages", "invalid_type")
    if not messages:
        _fail("'messages' must contain at least one message.", "messages", "empty_array")
    for index, message in enumerate(messages):
        _check_message(message, f"messages[{index}]")
    if payload.get("system") is not None:
        _check_content(payload["system"], "system", _BLOCKS["system"])
    check_types(payload, _TYPED)
    for index, stop in enumerate(payload.get("stop_sequences") or ()):
        if not isinstance(stop, str):
            _fail(f"'stop_sequences[{index}]' must be a string.", f"stop_sequences[{index}]", "invalid_type")
    for index, tool in enumerate(payload.get("tools") or ()):
        _check_tool(tool, f"tools[{index}]")
    _check_options(payload)
    return payload


def _check_message(message: object, param: str) -> None:
    if not isinstance(message, dict):
        _fail(f"'{param}' must be an object.", param, "invalid_type")
    role = message.get("role")
    if not isinstance(role, str) or role not in _BLOCKS:
        _fail(f"'{param}.role' must be 'user', 'assistant' or 'system'.", f"{param}.role")
    if "content" not in message:
        _fail(f"'{param}.content' is required.", f"{param}.content", "missing_required_parameter")
    _check_content(message["content"], f"{param}.content", _BLOCKS[role])


def _check_content(content: object, param: str, allowed: frozenset[str]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        _fail(f"'{param}' must be a string or an array of content blocks.", param, "invalid_type")
    for index, block in enumerate(content):
        _check_block(block, f"{param}[{index}]", allowed)


def _check_block(block: object, param: str, allowed: frozenset[str]) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        _fail(f"'{param}' must be a content block object with a 'type'.", param, "invalid_type")
    kind = block["type"]
    if kind not in allowed:
        _fail(f"'{param}': a {shown(kind)} block is not supported here by this gateway.", f"{param}.type")
    if kind == "text":
        _need_str(block, "text", param)
    elif kind == "thinking":
        _need_str(block, "thinking", param)
    elif kind == "image":
        _image_url(block, param)
    elif kind == "document":
        _document_text(block, param)
    elif kind == "tool_use":
        for key in ("id", "name"):
            _need_str(block, key, param)
        if not isinstance(block.get("input"), dict):
            _fail(f"'{param}.input' must be an object.", f"{param}.input", "invalid_type")
    elif kind == "tool_result":
        _need_str(block, "tool_use_id", param)
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            _fail(f"'{param}.is_error' must be a boolean.", f"{param}.is_error", "invalid_type")
        content = block.get("content")
        if content is not None:
            _check_content(content, f"{param}.content", frozenset({"text", "image", "document"}))


def _image_url(block: dict[str, Any], param: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        _fail(f"'{param}.source' must be a base64 or url image source.", f"{param}.source")
    if source["type"] == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    if isinstance(source.get("media_type"), str) and isinstance(source.get("data"), str):
        return f"data:{source['media_type']};base64,{source['data']}"
    _fail(f"'{param}.source' is missing its data, media_type or url.", f"{param}.source")


def _document_text(block: dict[str, Any], param: str) -> str:
    """The text of a plain-text or content document; the models behind iFlow read no PDFs."""
    source = _dict(block.get("source"))
    data, content = source.get("data"), source.get("content")
    if source.get("type") == "text" and isinstance(data, str):
        return data
    if source.get("type") == "content":
        if isinstance(content, str):
            return content
        texts = [_dict(part).get("text") for part in content] if isinstance(content, list) else [None]
        if all(isinstance(text, str) for text in texts):
            return "\n\n".join(str(text) for text in texts)
    _fail(f"'{param}': only plain-text documents are supported, not this source.", f"{param}.source")


def _check_tool(tool: object, param: str) -> None:
    if not isinstance(tool, dict):
        _fail(f"'{param}' must be an object.", param, "invalid_type")
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        _fail(f"'{param}.name' must be a non-empty string.", f"{param}.name", "invalid_type")
    if tool.get("type") not in (None, "custom"):
        _fail(
            f"'{param}' is Anthropic's server tool {shown(tool['type'])}, which this gateway cannot provide.",
            f"{param}.type",
        )
    if not isinstance(tool.get("input_schema"), dict):
        _fail(f"'{param}.input_schema' must be an object.", f"{param}.input_schema", "invalid_type")
    if tool.get("description") is not None and not isinstance(tool["description"], str):
        _fail(f"'{param}.description' must be a string.", f"{param}.description", "invalid_type")


def _check_options(payload: dict[str, Any]) -> None:
    choice = payload.get("tool_choice")
    if choice is not None:
        if not one_of(choice.get("type"), _TOOL_CHOICES):
            _fail("'tool_choice.type' must be one of auto, any, tool, none.", "tool_choice.type")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            _fail("'tool_choice.name' must be a string.", "tool_choice.name", "invalid_type")
    thinking = payload.get("thinking")
    if thinking is not None:
        if not one_of(thinking.get("type"), _THINKING):
            _fail(f"'thinking.type' must be one of {', '.join(sorted(_THINKING))}.", "thinking.type")
        if thinking["type"] == "enabled" and not is_json_type(thinking.get("budget_tokens"), int):
            _fail("'thinking.budget_tokens' must be an integer.", "thinking.budget_tokens", "invalid_type")
    user_id = (payload.get("metadata") or {}).get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        _fail("'metadata.user_id' must be a string.", "metadata.user_id", "invalid_type")
    effort = (payload.get("output_config") or {}).get("effort")
    if effort is not None and not one_of(effort, _EFFORTS):
        _fail(f"'output_config.effort' must be one of {', '.join(sorted(_EFFORTS))}.", "output_config.effort")


def to_chat_request(request: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The OpenAI chat body for a request ``parse_request`` accepted, to be sent as ``model``."""
    messages: list[dict[str, Any]] = []
    system = _joined_text(request.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for role, blocks in _turns(request["messages"]):
        if role == "assistant":
            messages.append(_assistant_message(blocks))
        elif role == "system":
            messages.append({"role": "system", "content": _joined_text(blocks)})
        else:
            messages.extend(_user_messages(blocks))
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": request["max_tokens"]}
    for name in ("temperature", "top_p", "top_k"):
        if request.get(name) is not None:
            body[name] = request[name]
    if request.get("stop_sequences"):
        body["stop"] = request["stop_sequences"]
    user_id = (request.get("metadata") or {}).get("user_id")
    if user_id:
        body["user"] = user_id
    body["stream"] = request.get("stream") is True
    if body["stream"]:
        body["stream_options"] = {"include_usage": True}
    if request.get("tools"):
        body["tools"] = [_function_tool(tool) for tool in request["tools"]]
    choice = request.get("tool_choice")
    # OpenAI refuses a tool_choice without tools; without tools there is nothing to choose anyway.
    if choice is not None and request.get("tools"):
        body["tool_choice"] = {
            "auto": "auto",
            "any": "required",
            "none": "none",
            "tool": {"type": "function", "function": {"name": choice.get("name")}},
        }[choice["type"]]
        if choice.get("disable_parallel_tool_use") is True:
            body["parallel_tool_calls"] = False
    effort = _reasoning_effort(request)
    if effort is not None:
        body["reasoning_effort"] = effort
    return body


def _reasoning_effort(request: dict[str, Any]) -> str | None:
    """``thinking`` decides when it says on or off; otherwise ``output_config.effort``, if any."""
    thinking = request.get("thinking") or {}
    if thinking.get("type") == "disabled":
        return "none"
    if thinking.get("type") == "enabled":
        budget = thinking["budget_tokens"]
        return "low" if budget < 4_000 else "medium" if budget < 16_000 else "high"
    effort = (request.get("output_config") or {}).get("effort")
    return str(effort) if effort is not None else None


def _joined_text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(block["text"] for block in content or () if block["type"] == "text")


def _function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool["input_schema"]
    return {"type": "function", "function": function}


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each message as blocks, consecutive user or assistant messages as one turn (as Anthropic does).

    An assistant answer split over several messages must become one OpenAI message, or its tool
    calls would not be followed directly by their results.
    """
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if turns and turns[-1][0] == message["role"] != "system":
            turns[-1][1].extend(blocks)
        else:
            turns.append((message["role"], list(blocks)))
    return turns


def _assistant_message(content: list[dict[str, Any]]) -> dict[str, Any]:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "thinking":
            reasoning.append(block["thinking"])
        elif block["type"] == "tool_use":
            arguments = orjson.dumps(block["input"]).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def _user_messages(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results first (as ``tool`` messages, answering the previous turn's calls), then the rest."""
    messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "tool_result":
            text, images = _tool_result(block)
            messages.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
        else:
            parts.append(_user_part(block))
    if parts:
        if all(part["type"] == "text" for part in parts):
            messages.append({"role": "user", "content": "\n\n".join(part["text"] for part in parts)})
        else:
            messages.append({"role": "user", "content": parts})
    return messages


def _user_part(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "image":
        return {"type": "image_url", "image_url": {"url": _image_url(block, "image")}}
    if block["type"] == "document":
        return {"type": "text", "text": _document_text(block, "document")}
    return {"type": "text", "text": block["text"]}


def _tool_result(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    images: list[dict[str, Any]] = []
    if isinstance(content, list):
        parts = [_user_part(part) for part in content]
        images = [part for part in parts if part["type"] == "image_url"]
        text = "\n\n".join(part["text"] for part in parts if part["type"] == "text")
    else:
        text = content or ""
    if block.get("is_error") and not text.lower().startswith("error"):
        text = f"Error: {text}" if text else "Error"
    return text, images


# ---------------------------------------------------------------------------------------------
# Responses


def _stop_reason(finish_reason: object, *, tool_use: bool) -> str:
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "content_filter":
        return "refusal"
    return "tool_use" if tool_use else "end_turn"


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(usage: object) -> dict[str, int]:
    usage = _dict(usage)
    cached = _count(_dict(usage.get("prompt_tokens_details")).get("cached_tokens"))
    return {
        "input_tokens": max(0, _count(usage.get("prompt_tokens")) - cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def _message_id(upstream_id: object) -> str:
    return f"msg_{upstream_id}" if isinstance(upstream_id, str) and upstream_id else f"msg_{uuid.uuid4().hex}"


def _tool_id(call_id: object) -> str:
    # Kept verbatim: the client sends it back as tool_use_id, and the upstream wants its own id then.
    return call_id if isinstance(call_id, str) and call_id else f"toolu_{uuid.uuid4().hex[:24]}"


def _tool_input(arguments: object) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def from_chat_completion(completion: dict[str, Any], *, model: str) -> dict[str, Any]:
    """The Anthropic Message for an OpenAI chat completion; ``model`` is the one the client named."""
    choices = completion.get("choices")
    choice = _dict(choices[0] if isinstance(choices, list) and choices else None)
    message = _dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    reasoning = _text_of(message.get("reasoning_content")) or _text_of(message.get("reasoning"))
    if reasoning:
        content.append(
            {"type": "thinking", "thinking": reasoning, "signature": _text_of(message.get("signature"))}
        )
    if _text_of(message.get("content")):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = _dict(call.get("function") if isinstance(call, dict) else None)
        if function:
            content.append(
                {
                    "type": "tool_use",
                    "id": _tool_id(call.get("id")),
                    "name": _text_of(function.get("name")),
                    "input": _tool_input(function.get("arguments")),
                }
            )
    tool_use = any(block["type"] == "tool_use" for block in content)
    return {
        "id": _message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(choice.get("finish_reason"), tool_use=tool_use),
        "stop_sequence": None,
        "usage": _usage(completion.get("usage")),
    }


# ---------------------------------------------------------------------------------------------
# Errors

_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
)


def error_status(error: GatewayError) -> int:
    """Anthropic's status for ``error``: ours, except that server-side trouble is 500, 504 or 529.

    An upstream failure worth retrying (a busy model, no connection) is 529 ``overloaded_error``;
    a timeout stays 504 ``timeout_error``; anything else on our side or upstream is 500 ``api_error``.
    Client errors keep their status (405 too, as ``invalid_request_error``).
    """
    status = error.status
    if status < 500 or status == 504:
        return status
    return 529 if isinstance(error, UpstreamError) and error.retryable else 500


def _error_type(error: GatewayError) -> str:
    status = error_status(error)
    return _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(error: GatewayError) -> bytes:
    message = redact(error.message)  # the last line of defence against an upstream quoting a key
    return orjson.dumps({"type": "error", "error": {"type": _error_type(error), "message": message}})


# ---------------------------------------------------------------------------------------------
# Streams


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    data = orjson.dumps({"type": kind, **payload})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


_START_BLOCKS: Mapping[str, dict[str, str]] = MappingProxyType(
    {"thinking": {"type": "thinking", "thinking": "", "signature": ""}, "text": {"type": "text", "text": ""}}
)
_DELTAS: Mapping[str, str] = MappingProxyType({"thinking": "thinking_delta", "text": "text_delta"})


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
            usage = _usage(chunk["usage"])
            self._input, self._cached = usage["input_tokens"], usage["cache_read_input_tokens"]
            self._output = usage["output_tokens"]
        frames = [] if self.started else self._start(chunk.get("id"))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            reasoning = _text_of(delta.get("reasoning_content")) or _text_of(delta.get("reasoning"))
            if reasoning:
                frames += self._text("thinking", reasoning)
            self._signature = _text_of(delta.get("signature")) or self._signature
            if _text_of(delta.get("content")):
                frames += self._text("text", delta["content"])
            for position, call in enumerate(delta.get("tool_calls") or ()):
                if isinstance(call, dict):
                    frames += self._tool_call(call, position)
            finish = choice.get("finish_reason")
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
        usage: dict[str, int] = {}
        if self._input is not None:
            usage = {"input_tokens": self._input, "cache_read_input_tokens": self._cached}
        usage["output_tokens"] = self._output or 0
        stop_reason = _stop_reason(self._finish_reason, tool_use=bool(self._tools))
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        return [
            *frames,
            _event("message_delta", {"delta": delta, "usage": usage}),
            _event("message_stop", {}),
        ]

    def error(self, error: GatewayError) -> list[bytes]:
        """The ``error`` event that ends a stream early; nothing once the stream has ended."""
        if self.done:
            return []
        self.done = True
        body = {"type": _error_type(error), "message": redact(error.message)}
        return [_event("error", {"error": body})]

    def _start(self, upstream_id: object) -> list[bytes]:
        self.started = True
        if self.message_id is None:
            self.message_id = _message_id(upstream_id)
        message: dict[str, Any] = {
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
        return [_event("message_start", {"message": message}), _event("ping", {})]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        index = self._blocks - 1
        frames = []
        if self._open == "thinking":
            delta = {"type": "signature_delta", "signature": self._signature}
            frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
        self._open = None
        return [*frames, _event("content_block_stop", {"index": index})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        frames = self._close()
        self._open = kind
        self._blocks += 1
        return [*frames, _event("content_block_start", {"index": self._blocks - 1, "content_block": block})]

    def _text(self, kind: str, text: str) -> list[bytes]:
        frames = [] if self._open == kind else self._open_block(kind, dict(_START_BLOCKS[kind]))
        delta = {"type": _DELTAS[kind], kind: text}
        return [*frames, _event("content_block_delta", {"index": self._blocks - 1, "delta": delta})]

    def _tool_call(self, call: dict[str, Any], position: int) -> list[bytes]:
        key = call["index"] if is_json_type(call.get("index"), int) else position
        function = _dict(call.get("function"))
        arguments = _text_of(function.get("arguments"))
        if key in self._tools:
            return self._arguments(key, arguments)
        held = self._held.setdefault(key, _HeldCall())
        held.call_id = held.call_id or _text_of(call.get("id"))
        held.name = held.name or _text_of(function.get("name"))
        if arguments:
            held.arguments.append(arguments)
        return self._release(key) if held.call_id and held.name else []

    def _release(self, key: int) -> list[bytes]:
        """Open the block of a held call and send the arguments it gathered meanwhile."""
        held = self._held.pop(key)
        block = {"type": "tool_use", "id": _tool_id(held.call_id), "name": held.name, "input": {}}
        frames = self._open_block("tool_use", block)
        self._tools[key] = self._blocks - 1
        return frames + self._arguments(key, "".join(held.arguments))

    def _arguments(self, key: int, arguments: str) -> list[bytes]:
        if not arguments:
            return []
        delta = {"type": "input_json_delta", "partial_json": arguments}
        return [_event("content_block_delta", {"index": self._tools[key], "delta": delta})]


@dataclass(slots=True)
class _HeldCall:
    """A streamed tool call whose id or name has not arrived yet."""

    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
