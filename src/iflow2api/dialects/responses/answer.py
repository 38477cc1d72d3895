"""A chat completion as the Response the client waits for, and what to remember of it.

>>> from iflow2api.dialects.responses.request import parse_request
>>> request = parse_request(b'{"model": "glm-4.7", "input": "Hi"}')
>>> completion = {"choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}]}
>>> response = from_chat_completion(completion, request=request, response_id="resp_1", created_at=1)
>>> response["status"], response["output"][0]["content"][0]["text"]
('completed', 'Hello')
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple, cast

import orjson

from iflow2api.dialects.checks import as_object, as_text, count
from iflow2api.dialects.openai_chat.wire import ChatMessage
from iflow2api.dialects.responses.wire import (
    IncompleteDetails,
    OutputFunctionCall,
    OutputItem,
    OutputMessage,
    OutputReasoning,
    OutputText,
    Response,
    ResponseError,
    ResponsesRequest,
    ResponseStatus,
    ResponseUsage,
    Status,
    SummaryText,
)

#: The ``finish_reason`` values that leave a response ``incomplete``, and the reason it gives.
INCOMPLETE: Final[Mapping[str, str]] = MappingProxyType(
    {"length": "max_output_tokens", "content_filter": "content_filter"}
)


class Call(NamedTuple):
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What the assistant said, whether it came whole or streamed."""

    reasoning: str = ""
    text: str = ""
    calls: tuple[Call, ...] = ()


def _reply(completion: dict[str, Any]) -> tuple[Reply, str | None]:
    choices = completion.get("choices")
    choice = as_object(choices[0]) if isinstance(choices, list) and choices else {}
    message = as_object(choice.get("message"))
    calls = []
    raw_calls = message.get("tool_calls")
    for number, call in enumerate(raw_calls if isinstance(raw_calls, list) else ()):
        function = as_object(as_object(call).get("function"))
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else orjson.dumps(arguments).decode()
        call_id = as_text(as_object(call).get("id")) or f"call_{number}"
        calls.append(Call(call_id, as_text(function.get("name")), arguments))
    reasoning = as_text(message.get("reasoning_content")) or as_text(message.get("reasoning"))
    finish = choice.get("finish_reason")
    reply = Reply(reasoning, as_text(message.get("content")), tuple(calls))
    return reply, finish if isinstance(finish, str) else None


def item_id(prefix: str, response_id: str, output_index: int) -> str:
    """Item ids derive from the response id (``resp_X`` → ``msg_X_1``), so an answer always
    translates the same way."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{output_index}"


def output_text(text: str) -> OutputText:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, status: Status) -> OutputReasoning:
    summary: list[SummaryText] = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": summary, "status": status}


def message_item(item_id: str, text: str | None, status: Status) -> OutputMessage:
    content = [] if text is None else [output_text(text)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def call_item(item_id: str, call: Call, status: Status) -> OutputFunctionCall:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
    }


def usage_of(usage: object) -> ResponseUsage | None:
    """Chat usage as Responses usage. Cache reads and writes counted Anthropic-style, outside
    ``prompt_tokens``, are added to the input, as the iFlow CLI does."""
    if not isinstance(usage, dict) or not usage:
        return None
    read, written = (
        count(usage.get("cache_read_input_tokens")),
        count(usage.get("cache_creation_input_tokens")),
    )
    prompt = as_object(usage.get("prompt_tokens_details"))
    completion = as_object(usage.get("completion_tokens_details"))
    input_tokens = count(usage.get("prompt_tokens")) + read + written
    output_tokens = count(usage.get("completion_tokens"))
    total = count(usage.get("total_tokens"))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": count(prompt.get("cached_tokens")) or read,
            "cache_write_tokens": count(prompt.get("cache_write_tokens")) or written,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": count(completion.get("reasoning_tokens"))},
        "total_tokens": total + read + written if total else input_tokens + output_tokens,
    }


def response(
    request: ResponsesRequest,
    response_id: str,
    created_at: int,
    status: ResponseStatus,
    output: list[OutputItem],
    *,
    usage: ResponseUsage | None = None,
    incomplete_details: IncompleteDetails | None = None,
    error: ResponseError | None = None,
) -> Response:
    """The Response object, echoing the request's settings as OpenAI does; ``tools`` lists the
    function tools the model was offered."""
    body: Response = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete_details,
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
        "tools": [
            {
                "type": "function",
                "name": tool.get("name", ""),
                "description": tool.get("description"),
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict"),
            }
            for tool in request.get("tools") or ()
            if tool["type"] == "function"
        ],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
    }
    if usage is not None:
        body["usage"] = usage
    user = request.get("user")
    if user is not None:
        body["user"] = user
    return body


def incomplete(finish_reason: str | None) -> IncompleteDetails | None:
    reason = INCOMPLETE.get(finish_reason or "")
    return {"reason": reason} if reason else None


def from_chat_completion(
    completion: dict[str, Any], *, request: ResponsesRequest, response_id: str, created_at: int | None = None
) -> Response:
    """The Response for a chat completion; ``created_at`` defaults to the completion's ``created``."""
    reply, finish_reason = _reply(completion)
    output: list[OutputItem] = []
    if reply.reasoning:
        output.append(reasoning_item(item_id("rs", response_id, 0), reply.reasoning, "completed"))
    if reply.text or not reply.calls:
        output.append(message_item(item_id("msg", response_id, len(output)), reply.text, "completed"))
    for call in reply.calls:
        output.append(call_item(item_id("fc", response_id, len(output)), call, "completed"))
    details = incomplete(finish_reason)
    if details:
        output[-1]["status"] = "incomplete"
    if created_at is None:
        created = completion.get("created")
        created_at = created if isinstance(created, int) else int(time.time())
    status: Status = "incomplete" if details else "completed"
    usage = usage_of(completion.get("usage"))
    return response(request, response_id, created_at, status, output, usage=usage, incomplete_details=details)


def assistant_message(reply: Reply) -> ChatMessage:
    message: ChatMessage = {"role": "assistant", "content": reply.text or (None if reply.calls else "")}
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
    For a stream, pass ``StreamTranslator.completion()``. Plain dicts: they are stored as JSON.
    """
    kept = [m for m in request_chat.get("messages") or () if as_object(m).get("role") not in (None, "system")]
    return [*kept, cast(dict[str, Any], assistant_message(_reply(completion)[0]))]
