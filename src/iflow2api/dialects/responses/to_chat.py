"""A checked Responses request as the Chat Completions body sent upstream (see the package's notes).

>>> from iflow2api.dialects.responses.request import parse_request
>>> request = parse_request(b'{"model": "glm-4.7", "instructions": "Be brief.", "input": "Hi"}')
>>> to_chat_request(request)["messages"]
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from iflow2api.dialects.checks import as_object, as_text
from iflow2api.dialects.openai_chat.wire import ChatMessage, ChatPart, ChatTool, ChatToolCall
from iflow2api.dialects.responses.wire import (
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    MessageItem,
    ReasoningItem,
    ResponsesRequest,
)

_MEDIA = ("input_image", "input_file")


def to_chat_request(
    request: ResponsesRequest, history: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The chat body for a request from ``request.parse_request``.

    ``history`` is the chat conversation of the ``previous_response_id`` chain (see
    ``answer.history_messages``); it goes after the instructions and before the new input. The body
    is a plain dict: the upstream side goes on editing it (its own body rules) before sending it.
    """
    messages: list[ChatMessage] = []
    instructions = request.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    messages.extend(cast(ChatMessage, dict(message)) for message in history or ())
    if isinstance(request["input"], str):
        messages.append({"role": "user", "content": request["input"]})
    else:
        _append_items(messages, request["input"])
    chat: dict[str, Any] = {"model": request["model"], "messages": _join_leading_system(messages)}
    chat.update(_tool_options(request))
    for name in ("temperature", "top_p"):
        if request.get(name) is not None:
            chat[name] = request.get(name)
    if request.get("max_output_tokens") is not None:
        chat["max_tokens"] = request.get("max_output_tokens")
    effort = (request.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    fmt = as_object(as_object(request.get("text")).get("format"))
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


def _append_items(messages: list[ChatMessage], items: list[InputItem]) -> None:
    # The casts hold: ``parse_request`` checked each item's fields for its type.
    thinking: list[str] = []  # reasoning waiting for the assistant message it belongs to
    media: list[ChatPart] = []  # images and files that tool results returned
    for item in items:
        kind = item.get("type") or "message"
        if kind == "function_call_output":
            result = cast(FunctionCallOutputItem, item)
            output = result["output"]
            text = output if isinstance(output, str) else "".join(_texts(output))
            messages.append({"role": "tool", "tool_call_id": result["call_id"], "content": text})
            if isinstance(output, list):
                media.extend(_chat_part(part) for part in output if part["type"] in _MEDIA)
            continue
        if media:
            messages.append({"role": "user", "content": media})
            media = []
        if kind == "reasoning":
            reasoning = cast(ReasoningItem, item)
            content = reasoning.get("content") or []
            summary = reasoning.get("summary") or []
            text = "".join(_texts(content)) if content else "\n\n".join(_texts(summary))
            if text:
                thinking.append(text)
            continue
        target: ChatMessage
        if kind == "function_call":
            function_call = cast(FunctionCallItem, item)
            call: ChatToolCall = {
                "id": function_call["call_id"],
                "type": "function",
                "function": {"name": function_call["name"], "arguments": function_call["arguments"]},
            }
            if messages and messages[-1].get("role") == "assistant":
                target = messages[-1]
                target["tool_calls"] = [*(target.get("tool_calls") or ()), call]
            else:
                target = {"role": "assistant", "content": None, "tool_calls": [call]}
                messages.append(target)
        else:
            message = cast(MessageItem, item)
            role, parts = message["role"], message["content"]
            content_out: str | list[ChatPart] = parts if isinstance(parts, str) else ""
            if isinstance(parts, list):
                joiner = "" if role == "assistant" else "\n\n"
                content_out = (
                    [_chat_part(part) for part in parts] if role == "user" else joiner.join(_texts(parts))
                )
            target = {"role": "system" if role == "developer" else role, "content": content_out}
            messages.append(target)
            if role != "assistant":
                thinking.clear()  # reasoning no answer followed has nothing to belong to
        if thinking:
            earlier = target.get("reasoning_content")
            target["reasoning_content"] = "\n\n".join([earlier, *thinking] if earlier else thinking)
            thinking.clear()
    if media:
        messages.append({"role": "user", "content": media})


def _texts(parts: Sequence[object]) -> list[str]:
    """The text of each text part: input_text, output_text, refusal, summary_text, reasoning_text."""
    texts = []
    for value in parts:
        part = as_object(value)
        text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
        if isinstance(text, str) and part.get("type") not in _MEDIA:
            texts.append(text)
    return texts


def _chat_part(part: ContentPart) -> ChatPart:
    if part["type"] == "input_image":
        detail = part.get("detail")
        if detail:
            return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": detail}}
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    if part["type"] == "input_file":
        filename = part.get("filename")
        if filename:
            return {"type": "file", "file": {"file_data": part["file_data"], "filename": filename}}
        return {"type": "file", "file": {"file_data": part["file_data"]}}
    return {"type": "text", "text": _texts([part])[0]}


def _join_leading_system(messages: list[ChatMessage]) -> list[ChatMessage]:
    count = 0
    while count < len(messages) and messages[count].get("role") == "system":
        count += 1
    if count < 2:
        return messages
    text = "\n\n".join(as_text(message.get("content")) for message in messages[:count])
    return [{"role": "system", "content": text}, *messages[count:]]


def _tool_options(request: ResponsesRequest) -> dict[str, Any]:
    tools: list[ChatTool] = []
    for tool in request.get("tools") or ():
        if tool["type"] == "function":
            function = {
                key: tool.get(key)
                for key in ("name", "description", "parameters", "strict")
                if tool.get(key) is not None
            }
            tools.append(cast(ChatTool, {"type": "function", "function": function}))
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice["type"] == "allowed_tools":
        allowed = {
            as_object(tool).get("name")
            for tool in choice.get("tools", ())
            if as_object(tool).get("type") == "function"
        }
        tools = [tool for tool in tools if tool["function"]["name"] in allowed]
        choice = choice.get("mode")
    if not tools:
        return {}
    options: dict[str, Any] = {"tools": tools}
    if isinstance(choice, str):
        options["tool_choice"] = choice
    elif isinstance(choice, dict) and choice["type"] == "function":
        options["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    if request.get("parallel_tool_calls") is not None:
        options["parallel_tool_calls"] = request.get("parallel_tool_calls")
    return options
