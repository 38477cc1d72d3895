"""OpenAI Responses (``POST /v1/responses``) translated to and from Chat Completions.

Pure functions and one small state machine over dicts and bytes; no I/O. A route parses the
client's body, sends the chat request upstream, and turns the chat answer back into a Response:

>>> request = parse_request(b'{"model": "glm-4.7", "instructions": "Be brief.", "input": "Hi"}')
>>> to_chat_request(request)["messages"]
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
>>> completion = {"choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}]}
>>> response = from_chat_completion(completion, request=request, response_id="resp_1", created_at=1)
>>> response["status"], response["output"][0]["content"][0]["text"]
('completed', 'Hello')

What Chat Completions cannot say, and what we chose instead:

* Only ``function`` tools reach the model. Hosted tools (web and file search, computer use, code
  interpreter, MCP, image generation, shell, apply_patch) and free-form ``custom`` tools have no
  chat spelling: they are dropped, with a ``tool_choice`` naming one. ``allowed_tools`` becomes
  its mode, with the tools cut down to the functions it allows.
* ``developer`` messages become ``system`` ones (open models' chat templates know no developer),
  and the system messages that open the conversation are joined into one, as the iFlow CLI sends
  its prompt. Function calls join the assistant message before them, so one model turn stays one
  chat message. A reasoning item becomes the ``reasoning_content`` of the assistant message after
  it: its ``reasoning_text`` content if any, else its summary; ``encrypted_content`` is ignored.
  Images and files a tool returned follow the tool results as a user message, since a chat tool
  message carries text only.
* The model's thinking comes back as a reasoning item with one ``summary_text`` part holding all
  of it, streamed as ``response.reasoning_summary_*`` events: Codex and the SDKs show summaries,
  while Codex hides ``reasoning_text`` unless told to show raw reasoning.
* Item ids derive from the response id (``resp_X`` → ``msg_X_1``, the number being the output
  index), so an answer always translates the same way; a tool call the upstream left without an
  id gets ``call_<n>``, n counting the answer's calls.
* ``finish_reason`` ``length`` (``content_filter``) makes the response ``incomplete`` with reason
  ``max_output_tokens`` (``content_filter``), and the item being written then ``incomplete``.
* An answer with neither text nor tool calls still gets an empty message item, so clients that
  look for the assistant's message find one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from iflow2api.dialects import openai_chat
from iflow2api.dialects.checks import (
    TypeTable,
    check_length,
    check_model_length,
    check_types,
    load_object,
    shown,
)
from iflow2api.errors import ContextTooLong, GatewayError, InvalidRequest, RateLimited
from iflow2api.redact import redact

#: ``reasoning.effort`` values the SDK knows; the iFlow speaker maps each one.
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

_ROLES = ("assistant", "developer", "system", "user")
_TEXT_FORMATS = ("text", "json_object", "json_schema")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_MEDIA = ("input_image", "input_file")

# Parameters whose JSON type we check (null is always allowed); anything else passes untouched.
_TYPED: TypeTable = {
    "instructions": (str, "a string"),
    "tools": (list, "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "max_output_tokens": (int, "an integer"),
    "reasoning": (dict, "an object"),
    "text": (dict, "an object"),
    "stream": (bool, "a boolean"),
    "store": (bool, "a boolean"),
    "parallel_tool_calls": (bool, "a boolean"),
    "previous_response_id": (str, "a string"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "metadata": (dict, "an object"),
    "user": (str, "a string"),
}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


# --- the request ------------------------------------------------------------------------------


def _ensure(ok: bool, param: str, message: str, code: str = "invalid_type") -> None:
    if not ok:
        raise InvalidRequest(message, param=param, code=code)


def _ensure_string(value: object, param: str) -> None:
    _ensure(isinstance(value, str) and bool(value), param, f"'{param}' must be a non-empty string.")


def parse_request(body: bytes) -> dict[str, Any]:
    """The client's request body, checked enough for :func:`to_chat_request` to trust its shape.

    Raises ``InvalidRequest`` naming the offending parameter (``input[2].call_id``).
    """
    payload = load_object(body)
    model = payload.get("model")
    _ensure(model is not None, "model", "you must provide a model parameter", "missing_required_parameter")
    _ensure(isinstance(model, str) and bool(model.strip()), "model", "'model' must be a non-empty string.")
    check_model_length(str(model))
    _check_input(payload.get("input"))
    check_types(payload, _TYPED)
    previous = payload.get("previous_response_id")
    if isinstance(previous, str):
        check_length(previous, "previous_response_id")
    limit = payload.get("max_output_tokens")
    _ensure(
        limit is None or limit >= 1,
        "max_output_tokens",
        "'max_output_tokens' must be at least 1.",
        "invalid_value",
    )
    for index, tool in enumerate(payload.get("tools") or ()):
        _check_tool(tool, f"tools[{index}]")
    _check_tool_choice(payload.get("tool_choice"))
    effort = _dict(payload.get("reasoning")).get("effort")
    message = f"'reasoning.effort' must be one of {', '.join(EFFORTS)}."
    _ensure(effort is None or effort in EFFORTS, "reasoning.effort", message, "invalid_value")
    _check_text_format(_dict(payload.get("text")).get("format"))
    for key, value in _dict(payload.get("metadata")).items():
        _ensure(isinstance(value, str), f"metadata.{key[:64]}", "Metadata values must be strings.")
    return payload


def _check_input(items: object) -> None:
    _ensure(items is not None, "input", "'input' is a required property", "missing_required_parameter")
    if isinstance(items, str):
        return
    _ensure(isinstance(items, list), "input", "'input' must be a string or an array of input items.")
    assert isinstance(items, list)
    _ensure(bool(items), "input", "'input' must contain at least one item.", "empty_array")
    for index, value in enumerate(items):
        param = f"input[{index}]"
        _ensure(isinstance(value, dict), param, f"'{param}' must be an object.")
        item = _dict(value)
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role")
            message = f"'{param}.role' must be one of {', '.join(_ROLES)}."
            _ensure(role in _ROLES, f"{param}.role", message, "invalid_value")
            _check_content(item.get("content"), f"{param}.content", media=role == "user")
        elif kind == "function_call":
            _ensure_string(item.get("call_id"), f"{param}.call_id")
            _ensure_string(item.get("name"), f"{param}.name")
            arguments = f"{param}.arguments"
            _ensure(isinstance(item.get("arguments"), str), arguments, f"'{arguments}' must be a string.")
        elif kind == "function_call_output":
            _ensure_string(item.get("call_id"), f"{param}.call_id")
            _check_content(item.get("output"), f"{param}.output", media=True)
        elif kind == "reasoning":
            for name in ("summary", "content"):
                where = f"{param}.{name}"
                _ensure(isinstance(item.get(name) or [], list), where, f"'{where}' must be an array.")
        else:
            message = (
                f"Input items of type {shown(kind)} are not supported; this gateway takes message, "
                "function_call, function_call_output and reasoning items."
            )
            _ensure(False, f"{param}.type", message, "invalid_value")


def _check_content(content: object, param: str, *, media: bool) -> None:
    """A string or content parts; images and files only where chat carries them (user, tool results)."""
    if isinstance(content, str):
        return
    _ensure(isinstance(content, list), param, f"'{param}' must be a string or an array of content parts.")
    assert isinstance(content, list)
    for index, value in enumerate(content):
        where = f"{param}[{index}]"
        _ensure(isinstance(value, dict), where, f"'{where}' must be an object.")
        part = _dict(value)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "refusal"):
            name = "refusal" if kind == "refusal" else "text"
            _ensure(isinstance(part.get(name), str), f"{where}.{name}", f"'{where}.{name}' must be a string.")
        elif kind == "input_image" and media:
            message = (
                "Give images as 'image_url' (a URL or a data URL); uploaded files ('file_id') are not "
                "available through this gateway."
            )
            _ensure(bool(_string(part.get("image_url"))), f"{where}.image_url", message, "invalid_value")
        elif kind == "input_file" and media:
            message = "Give files inline as 'file_data'; 'file_id' and 'file_url' are not available here."
            _ensure(bool(_string(part.get("file_data"))), f"{where}.file_data", message, "invalid_value")
        else:
            place = "here" if media else "a message of this role, which takes text only"
            message = f"Content parts of type {shown(kind)} are not supported in {place}."
            _ensure(False, f"{where}.type", message, "invalid_value")


def _check_tool(value: object, param: str) -> None:
    tool = _dict(value)
    _ensure(isinstance(tool.get("type"), str), param, f"'{param}' must be an object with a 'type'.")
    if tool["type"] != "function":
        return
    _ensure_string(tool.get("name"), f"{param}.name")
    for name, expected, described in (
        ("parameters", dict, "an object"),
        ("description", str, "a string"),
        ("strict", bool, "a boolean"),
    ):
        where = f"{param}.{name}"
        _ensure(
            tool.get(name) is None or isinstance(tool[name], expected),
            where,
            f"'{where}' must be {described}.",
        )


def _check_tool_choice(choice: object) -> None:
    if isinstance(choice, str):
        message = "'tool_choice' must be auto, none, required or an object."
        _ensure(choice in ("auto", "none", "required"), "tool_choice", message, "invalid_value")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    _ensure(isinstance(kind, str), "tool_choice.type", "'tool_choice.type' must be a string.")
    if kind == "function":
        _ensure_string(choice.get("name"), "tool_choice.name")
    elif kind == "allowed_tools":
        message = "'tool_choice.mode' must be auto or required."
        _ensure(choice.get("mode") in ("auto", "required"), "tool_choice.mode", message, "invalid_value")
        tools = choice.get("tools")
        _ensure(isinstance(tools, list), "tool_choice.tools", "'tool_choice.tools' must be an array.")


def _check_text_format(fmt: object) -> None:
    if fmt is None:
        return
    message = f"'text.format.type' must be one of {', '.join(_TEXT_FORMATS)}."
    _ensure(_dict(fmt).get("type") in _TEXT_FORMATS, "text.format.type", message, "invalid_value")
    if _dict(fmt)["type"] == "json_schema":
        _ensure_string(_dict(fmt).get("name"), "text.format.name")
        schema = _dict(fmt).get("schema")
        _ensure(isinstance(schema, dict), "text.format.schema", "'text.format.schema' must be an object.")


# --- Responses request → chat request ---------------------------------------------------------


def to_chat_request(request: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The chat body for a request from :func:`parse_request`.

    ``history`` is the chat conversation of the ``previous_response_id`` chain (see
    :func:`history_messages`); it goes after the instructions and before the new input.
    """
    messages: list[dict[str, Any]] = []
    if request.get("instructions"):
        messages.append({"role": "system", "content": request["instructions"]})
    messages.extend(dict(message) for message in history or ())
    if isinstance(request["input"], str):
        messages.append({"role": "user", "content": request["input"]})
    else:
        _append_items(messages, request["input"])
    chat: dict[str, Any] = {"model": request["model"], "messages": _join_leading_system(messages)}
    chat.update(_tool_options(request))
    for name in ("temperature", "top_p"):
        if request.get(name) is not None:
            chat[name] = request[name]
    if request.get("max_output_tokens") is not None:
        chat["max_tokens"] = request["max_output_tokens"]
    if _dict(request.get("reasoning")).get("effort") is not None:
        chat["reasoning_effort"] = request["reasoning"]["effort"]
    fmt = _dict(_dict(request.get("text")).get("format"))
    if fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        schema = {
            key: fmt[key] for key in ("name", "description", "schema", "strict") if fmt.get(key) is not None
        }
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    # "text" is chat's default, so it sends nothing.
    if request.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _append_items(messages: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    thinking: list[str] = []  # reasoning waiting for the assistant message it belongs to
    media: list[dict[str, Any]] = []  # images and files that tool results returned
    for item in items:
        kind = item.get("type") or "message"
        if kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "".join(_texts(output))
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            if isinstance(output, list):
                media.extend(_chat_part(part) for part in output if part["type"] in _MEDIA)
            continue
        if media:
            messages.append({"role": "user", "content": media})
            media = []
        if kind == "reasoning":
            content = item.get("content") or []
            text = "".join(_texts(content)) if content else "\n\n".join(_texts(item.get("summary") or []))
            if text:
                thinking.append(text)
            continue
        if kind == "function_call":
            function = {"name": item["name"], "arguments": item["arguments"]}
            call = {"id": item["call_id"], "type": "function", "function": function}
            if messages and messages[-1].get("role") == "assistant":
                target = messages[-1]
                target["tool_calls"] = [*(target.get("tool_calls") or ()), call]
            else:
                target = {"role": "assistant", "content": None, "tool_calls": [call]}
                messages.append(target)
        else:
            role, content = item["role"], item["content"]
            if isinstance(content, list):
                joiner = "" if role == "assistant" else "\n\n"
                content = (
                    [_chat_part(part) for part in content] if role == "user" else joiner.join(_texts(content))
                )
            target = {"role": "system" if role == "developer" else role, "content": content}
            messages.append(target)
            if role != "assistant":
                thinking.clear()  # reasoning no answer followed has nothing to belong to
        if thinking:
            earlier = target.get("reasoning_content")
            target["reasoning_content"] = "\n\n".join([earlier, *thinking] if earlier else thinking)
            thinking.clear()
    if media:
        messages.append({"role": "user", "content": media})


def _texts(parts: list[Any]) -> list[str]:
    """The text of each text part: input_text, output_text, refusal, summary_text, reasoning_text."""
    texts = []
    for part in parts:
        part = _dict(part)
        text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
        if isinstance(text, str) and part.get("type") not in _MEDIA:
            texts.append(text)
    return texts


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "input_image":
        image = {"url": part["image_url"], **({"detail": part["detail"]} if part.get("detail") else {})}
        return {"type": "image_url", "image_url": image}
    if part["type"] == "input_file":
        file = {
            "file_data": part["file_data"],
            **({"filename": part["filename"]} if part.get("filename") else {}),
        }
        return {"type": "file", "file": file}
    return {"type": "text", "text": _texts([part])[0]}


def _join_leading_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    count = 0
    while count < len(messages) and messages[count].get("role") == "system":
        count += 1
    if count < 2:
        return messages
    text = "\n\n".join(_string(message.get("content")) for message in messages[:count])
    return [{"role": "system", "content": text}, *messages[count:]]


def _tool_options(request: dict[str, Any]) -> dict[str, Any]:
    tools: list[dict[str, Any]] = []
    for tool in request.get("tools") or ():
        if tool["type"] == "function":
            function = {
                key: tool[key]
                for key in ("name", "description", "parameters", "strict")
                if tool.get(key) is not None
            }
            tools.append({"type": "function", "function": function})
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice["type"] == "allowed_tools":
        allowed = {
            _dict(tool).get("name") for tool in choice["tools"] if _dict(tool).get("type") == "function"
        }
        tools = [tool for tool in tools if tool["function"]["name"] in allowed]
        choice = choice["mode"]
    if not tools:
        return {}
    options: dict[str, Any] = {"tools": tools}
    if isinstance(choice, str):
        options["tool_choice"] = choice
    elif isinstance(choice, dict) and choice["type"] == "function":
        options["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if request.get("parallel_tool_calls") is not None:
        options["parallel_tool_calls"] = request["parallel_tool_calls"]
    return options


# --- chat answer → Response -------------------------------------------------------------------


class _Call(NamedTuple):
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class _Reply:
    """What the assistant said, whether it came whole or streamed."""

    reasoning: str = ""
    text: str = ""
    calls: tuple[_Call, ...] = ()


def _reply(completion: dict[str, Any]) -> tuple[_Reply, str | None]:
    choices = completion.get("choices")
    choice = _dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = _dict(choice.get("message"))
    calls = []
    raw_calls = message.get("tool_calls")
    for number, call in enumerate(raw_calls if isinstance(raw_calls, list) else ()):
        function = _dict(_dict(call).get("function"))
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else orjson.dumps(arguments).decode()
        call_id = _string(_dict(call).get("id")) or f"call_{number}"
        calls.append(_Call(call_id, _string(function.get("name")), arguments))
    reasoning = _string(message.get("reasoning_content")) or _string(message.get("reasoning"))
    finish = choice.get("finish_reason")
    return _Reply(reasoning, _string(message.get("content")), tuple(calls)), finish if isinstance(
        finish, str
    ) else None


def _item_id(prefix: str, response_id: str, output_index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{output_index}"


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": summary, "status": status}


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_output_text(text)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def _call_item(item_id: str, call: _Call, status: str) -> dict[str, Any]:
    fields = {"call_id": call.call_id, "name": call.name, "arguments": call.arguments}
    return {"id": item_id, "type": "function_call", "status": status, **fields}


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(usage: object) -> dict[str, Any] | None:
    """Chat usage as Responses usage. Cache reads and writes counted Anthropic-style, outside
    ``prompt_tokens``, are added to the input, as the iFlow CLI does."""
    if not isinstance(usage, dict) or not usage:
        return None
    read, written = (
        _count(usage.get("cache_read_input_tokens")),
        _count(usage.get("cache_creation_input_tokens")),
    )
    prompt, completion = (
        _dict(usage.get("prompt_tokens_details")),
        _dict(usage.get("completion_tokens_details")),
    )
    input_tokens = _count(usage.get("prompt_tokens")) + read + written
    output_tokens = _count(usage.get("completion_tokens"))
    total = _count(usage.get("total_tokens"))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": _count(prompt.get("cached_tokens")) or read,
            "cache_write_tokens": _count(prompt.get("cache_write_tokens")) or written,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": _count(completion.get("reasoning_tokens"))},
        "total_tokens": total + read + written if total else input_tokens + output_tokens,
    }


def _response(
    request: dict[str, Any],
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """The Response object, echoing the request's settings as OpenAI does; ``tools`` lists the
    function tools the model was offered. ``extra``: ``usage``, ``incomplete_details``, ``error``."""
    tools = [
        {
            "type": "function",
            "name": tool["name"],
            **{key: tool.get(key) for key in ("description", "parameters", "strict")},
        }
        for tool in request.get("tools") or ()
        if tool["type"] == "function"
    ]
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "model": request["model"],
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": request.get("reasoning"),
        "store": request.get("store") is not False,
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": tools,
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        **{key: value for key, value in extra.items() if value is not None},
    }
    if request.get("user") is not None:
        response["user"] = request["user"]
    return response


def _incomplete(finish_reason: str | None) -> dict[str, Any] | None:
    reason = _INCOMPLETE.get(finish_reason or "")
    return {"reason": reason} if reason else None


def from_chat_completion(
    completion: dict[str, Any], *, request: dict[str, Any], response_id: str, created_at: int | None = None
) -> dict[str, Any]:
    """The Response for a chat completion; ``created_at`` defaults to the completion's ``created``."""
    reply, finish_reason = _reply(completion)
    output: list[dict[str, Any]] = []
    if reply.reasoning:
        output.append(_reasoning_item(_item_id("rs", response_id, 0), reply.reasoning, "completed"))
    if reply.text or not reply.calls:
        output.append(_message_item(_item_id("msg", response_id, len(output)), reply.text, "completed"))
    for call in reply.calls:
        output.append(_call_item(_item_id("fc", response_id, len(output)), call, "completed"))
    incomplete = _incomplete(finish_reason)
    if incomplete:
        output[-1]["status"] = "incomplete"
    if created_at is None:
        created = completion.get("created")
        created_at = created if isinstance(created, int) else int(time.time())
    status = "incomplete" if incomplete else "completed"
    usage = _usage(completion.get("usage"))
    return _response(
        request, response_id, created_at, status, output, usage=usage, incomplete_details=incomplete
    )


def _assistant_message(reply: _Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or (None if reply.calls else "")}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.calls
        ]
    return message


def history_messages(request_chat: dict[str, Any], completion: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat conversation to remember under a response's id, for ``previous_response_id``.

    System messages are left out: instructions do not carry over to the next response (OpenAI's
    rule), and system or developer input items, which OpenAI would carry, cannot be told apart
    from them once translated. A chain keeps its system prompt by sending ``instructions`` again.
    For a stream, pass :meth:`StreamTranslator.completion`.
    """
    kept = [m for m in request_chat.get("messages") or () if _dict(m).get("role") not in (None, "system")]
    return [*kept, _assistant_message(_reply(completion)[0])]


def error_body(error: GatewayError) -> bytes:
    """The body for a request that fails before a stream starts: the same as for chat."""
    return openai_chat.error_body(error)


def _failure(error: GatewayError) -> dict[str, Any]:
    """``response.error`` with the codes Codex acts on: compact (``context_length_exceeded``, which
    OpenAI sends though its schema does not list it), wait, give up, or retry (``server_error``)."""
    message, code = redact(error.message), "server_error"
    if isinstance(error, ContextTooLong):
        code = "context_length_exceeded"
    elif isinstance(error, RateLimited):
        code = "rate_limit_exceeded"
        if error.retry_after is not None:  # the words Codex looks for to know how long to wait
            message += f" Please try again in {max(1, round(error.retry_after))}s."
    elif isinstance(error, InvalidRequest):
        code = "invalid_prompt"
    return {"code": code, "message": message}


# --- the stream -------------------------------------------------------------------------------

_PREFIXES = {"reasoning": "rs", "message": "msg", "function_call": "fc"}


@dataclass(slots=True)
class _OpenItem:
    """The output item being streamed. Items are written one after another, as OpenAI does."""

    kind: str  # "reasoning", "message" or "function_call"
    output_index: int
    item_id: str
    parts: list[str] = field(default_factory=list)  # thinking, text or argument fragments
    call_id: str = ""
    name: str = ""
    #: A function call is announced once its id and name are known (upstreams may send either one
    #: a chunk later); until then its arguments wait.
    announced: bool = True

    @property
    def where(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": self.output_index}

    def item(self, status: str) -> dict[str, Any]:
        text = "".join(self.parts) if status != "in_progress" else ""
        if self.kind == "reasoning":
            return _reasoning_item(self.item_id, text, status)
        if self.kind == "message":
            return _message_item(self.item_id, text if status != "in_progress" else None, status)
        return _call_item(self.item_id, _Call(self.call_id, self.name, text), status)


class StreamTranslator:
    """Chat completion chunks in, Responses server-sent events out.

    ``start`` opens the response; ``feed`` takes each parsed ``chat.completion.chunk``; ``finish``
    closes what is open and sends ``response.completed`` (or ``response.incomplete``); ``error``
    ends the stream with ``error`` and ``response.failed`` instead. Each returns whole SSE frames
    and opens the response first if ``start`` was not called. Failures inside the upstream stream
    (iFlow's ``network_error``) are the caller's to recognise, as ``StreamRelay`` does.
    """

    def __init__(self, *, request: dict[str, Any], response_id: str, created_at: int) -> None:
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self._sequence = 0
        self._started = False
        self._final: dict[str, Any] | None = None  # the Response, once the stream has ended
        self._items: list[dict[str, Any]] = []  # finished output items, by output_index
        self._open: _OpenItem | None = None
        self._calls_by_id: dict[str, _OpenItem] = {}
        self._calls_by_index: dict[int, _OpenItem] = {}
        self._last_call: _OpenItem | None = None
        self._calls = 0
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    def start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        snapshot = self.completed_response()
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        frames = self.start()
        if self._final is not None:
            return frames
        if _dict(chunk.get("usage")):
            self._usage = chunk["usage"]  # the last one counts (MiniMax ends with an empty one)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            thinking = _string(delta.get("reasoning_content")) or _string(delta.get("reasoning"))
            if thinking:
                frames += self._text("reasoning", thinking)
            if _string(delta.get("content")):
                frames += self._text("message", delta["content"])
            fragments = delta.get("tool_calls")
            for fragment in fragments if isinstance(fragments, list) else ():
                frames += self._tool_fragment(_dict(fragment))
            if _string(choice.get("finish_reason")):
                self._finish_reason = choice["finish_reason"]
                frames += self._close()
        return frames

    def finish(self) -> list[bytes]:
        frames = self.start()
        if self._final is not None:
            return frames
        frames += self._close()
        if not any(item["type"] != "reasoning" for item in self._items):
            frames += self._begin("message") + self._close()
        incomplete = _incomplete(self._finish_reason)
        self._final = self._snapshot(
            "incomplete" if incomplete else "completed", self._items, incomplete_details=incomplete
        )
        frames.append(self._event(f"response.{self._final['status']}", response=self._final))
        return frames

    def error(self, error: GatewayError) -> list[bytes]:
        frames = self.start()
        if self._final is not None:
            return frames
        frames.append(
            self._event(
                "error", code=error.code or error.type, message=redact(error.message), param=error.param
            )
        )
        output = [*self._items, self._open.item("incomplete")] if self._open else self._items
        self._final = self._snapshot("failed", output, error=_failure(error))
        frames.append(self._event("response.failed", response=self._final))
        return frames

    def completed_response(self) -> dict[str, Any]:
        """The final Response once the stream has ended (for the store); before, the story so far."""
        return self._final if self._final is not None else self._snapshot("in_progress", list(self._items))

    def completion(self) -> dict[str, Any]:
        """What was streamed, as a ``chat.completion`` for :func:`history_messages`."""
        output = self.completed_response()["output"]
        reply = _Reply(
            "".join(
                part["text"] for item in output if item["type"] == "reasoning" for part in item["summary"]
            ),
            "".join(part["text"] for item in output if item["type"] == "message" for part in item["content"]),
            tuple(
                _Call(i["call_id"], i["name"], i["arguments"]) for i in output if i["type"] == "function_call"
            ),
        )
        choice = {"index": 0, "message": _assistant_message(reply), "finish_reason": self._finish_reason}
        return {
            "id": self.response_id,
            "object": "chat.completion",
            "created": self.created_at,
            "model": self.request["model"],
            "choices": [choice],
            "usage": self._usage,
        }

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = orjson.dumps({"type": kind, "sequence_number": self._sequence, **fields})
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    def _snapshot(self, status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        usage = _usage(self._usage) if status != "in_progress" else None
        return _response(
            self.request, self.response_id, self.created_at, status, output, usage=usage, **extra
        )

    def _begin(self, kind: str) -> list[bytes]:
        index = len(self._items)
        item = self._open = _OpenItem(kind, index, _item_id(_PREFIXES[kind], self.response_id, index))
        if kind == "function_call":
            item.announced = False
            self._calls += 1
            return []
        frames = [
            self._event("response.output_item.added", output_index=index, item=item.item("in_progress"))
        ]
        if kind == "reasoning":
            part = {"type": "summary_text", "text": ""}
            frames.append(
                self._event("response.reasoning_summary_part.added", **item.where, summary_index=0, part=part)
            )
        else:
            frames.append(
                self._event(
                    "response.content_part.added", **item.where, content_index=0, part=_output_text("")
                )
            )
        return frames

    def _text(self, kind: str, text: str) -> list[bytes]:
        frames = (
            [] if self._open is not None and self._open.kind == kind else self._close() + self._begin(kind)
        )
        item = self._open
        assert item is not None
        item.parts.append(text)
        if kind == "reasoning":
            frames.append(
                self._event(
                    "response.reasoning_summary_text.delta", **item.where, summary_index=0, delta=text
                )
            )
        else:
            frames.append(
                self._event(
                    "response.output_text.delta", **item.where, content_index=0, delta=text, logprobs=[]
                )
            )
        return frames

    def _tool_fragment(self, fragment: dict[str, Any]) -> list[bytes]:
        upstream_id = _string(fragment.get("id"))
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
        function = _dict(fragment.get("function"))
        call.name = call.name or _string(function.get("name"))
        arguments = _string(function.get("arguments"))
        if arguments:
            call.parts.append(arguments)
        if not call.announced:
            return frames + (self._announce(call) if call.name and call.call_id else [])
        if arguments:
            frames.append(
                self._event("response.function_call_arguments.delta", **call.where, delta=arguments)
            )
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
        frames = [
            self._event(
                "response.output_item.added", output_index=call.output_index, item=call.item("in_progress")
            )
        ]
        if call.parts:
            frames.append(
                self._event("response.function_call_arguments.delta", **call.where, delta="".join(call.parts))
            )
        return frames

    def _close(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        text, where = "".join(item.parts), item.where
        frames: list[bytes] = []
        if item.kind == "reasoning":
            frames.append(
                self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text)
            )
            part = {"type": "summary_text", "text": text}
            frames.append(
                self._event("response.reasoning_summary_part.done", **where, summary_index=0, part=part)
            )
        elif item.kind == "message":
            frames.append(
                self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            )
            frames.append(
                self._event("response.content_part.done", **where, content_index=0, part=_output_text(text))
            )
        else:
            if not item.announced:
                frames += self._announce(item)
            frames.append(
                self._event("response.function_call_arguments.done", **where, name=item.name, arguments=text)
            )
        done = item.item("incomplete" if self._finish_reason in _INCOMPLETE else "completed")
        self._items.append(done)
        frames.append(self._event("response.output_item.done", output_index=item.output_index, item=done))
        return frames
