"""A checked Messages request as the Chat Completions body sent upstream (see the package's notes)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

import orjson

from iflow2api.dialects.anthropic.request import document_text, image_url
from iflow2api.dialects.anthropic.wire import (
    AssistantBlock,
    Block,
    InputMessage,
    MessagesRequest,
    ResultBlock,
    TextBlock,
    Tool,
    ToolResultBlock,
    UserBlock,
)
from iflow2api.dialects.intent import effort_of_budget
from iflow2api.dialects.openai_chat.wire import ChatMessage, ChatPart, ChatTextPart, ChatTool, ChatToolCall

#: Anthropic's ``tool_choice.type`` → OpenAI's ``tool_choice`` (``tool`` names its function instead).
_TOOL_CHOICES: Mapping[str, str] = MappingProxyType({"auto": "auto", "any": "required", "none": "none"})


def to_chat_request(request: MessagesRequest, *, model: str) -> dict[str, Any]:
    """The OpenAI chat body for a request ``parse_request`` accepted, to be sent as ``model``.

    A plain dict: the upstream side goes on editing it (its own body rules) before sending it.
    """
    messages: list[ChatMessage] = []
    system = _joined_text(request.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    # The casts hold: ``check_request`` allowed only its role's blocks in each message.
    for role, blocks in _turns(request["messages"]):
        if role == "assistant":
            messages.append(_assistant_message(cast("list[AssistantBlock]", blocks)))
        elif role == "system":
            messages.append({"role": "system", "content": _joined_text(cast("list[TextBlock]", blocks))})
        else:
            messages.extend(_user_messages(cast("list[UserBlock]", blocks)))
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": request["max_tokens"]}
    for name in ("temperature", "top_p", "top_k"):
        if request.get(name) is not None:
            body[name] = request.get(name)
    if request.get("stop_sequences"):
        body["stop"] = request.get("stop_sequences")
    user_id = (request.get("metadata") or {}).get("user_id")
    if user_id:
        body["user"] = user_id
    body["stream"] = request.get("stream") is True
    if body["stream"]:
        body["stream_options"] = {"include_usage": True}
    tools = request.get("tools")
    if tools:
        body["tools"] = [_function_tool(tool) for tool in tools]
    choice = request.get("tool_choice")
    # OpenAI refuses a tool_choice without tools; without tools there is nothing to choose anyway.
    if choice is not None and tools:
        body["tool_choice"] = _TOOL_CHOICES.get(choice["type"]) or {
            "type": "function",
            "function": {"name": choice.get("name")},
        }
        if choice.get("disable_parallel_tool_use") is True:
            body["parallel_tool_calls"] = False
    effort = _reasoning_effort(request)
    if effort is not None:
        body["reasoning_effort"] = effort
    return body


def _reasoning_effort(request: MessagesRequest) -> str | None:
    """``thinking`` decides when it says on or off; otherwise ``output_config.effort``, if any."""
    thinking = request.get("thinking")
    if thinking and thinking["type"] == "disabled":
        return "none"
    if thinking and thinking["type"] == "enabled":
        return effort_of_budget(thinking.get("budget_tokens", 0))
    effort = (request.get("output_config") or {}).get("effort")
    return str(effort) if effort is not None else None


def _joined_text(content: str | list[TextBlock] | None) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(block["text"] for block in content or () if block["type"] == "text")


def _function_tool(tool: Tool) -> ChatTool:
    description = tool.get("description")
    if description:
        return {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": description,
                "parameters": tool["input_schema"],
            },
        }
    return {"type": "function", "function": {"name": tool["name"], "parameters": tool["input_schema"]}}


def _turns(messages: list[InputMessage]) -> list[tuple[str, list[Block]]]:
    """Each message as blocks, consecutive user or assistant messages as one turn (as Anthropic does).

    An assistant answer split over several messages must become one OpenAI message, or its tool
    calls would not be followed directly by their results.
    """
    turns: list[tuple[str, list[Block]]] = []
    for message in messages:
        content = message["content"]
        blocks: list[Block] = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if turns and turns[-1][0] == message["role"] != "system":
            turns[-1][1].extend(blocks)
        else:
            turns.append((message["role"], list(blocks)))
    return turns


def _assistant_message(content: list[AssistantBlock]) -> ChatMessage:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ChatToolCall] = []
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
    message: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message


def _user_messages(content: list[UserBlock]) -> list[ChatMessage]:
    """Tool results first (as ``tool`` messages, answering the previous turn's calls), then the rest."""
    messages: list[ChatMessage] = []
    parts: list[ChatPart] = []
    for block in content:
        if block["type"] == "tool_result":
            text, images = _tool_result(block)
            messages.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts.extend(images)
        else:
            parts.append(_user_part(block))
    if parts:
        texts = [part for part in parts if part["type"] == "text"]
        if len(texts) == len(parts):
            messages.append({"role": "user", "content": "\n\n".join(part["text"] for part in texts)})
        else:
            messages.append({"role": "user", "content": parts})
    return messages


def _user_part(block: ResultBlock) -> ChatPart:
    if block["type"] == "image":
        return {"type": "image_url", "image_url": {"url": image_url(block, "image")}}
    if block["type"] == "document":
        return {"type": "text", "text": document_text(block, "document")}
    return {"type": "text", "text": block["text"]}


def _tool_result(block: ToolResultBlock) -> tuple[str, list[ChatPart]]:
    content = block.get("content")
    images: list[ChatPart] = []
    if isinstance(content, list):
        parts = [_user_part(part) for part in content]
        images = [part for part in parts if part["type"] == "image_url"]
        texts: list[ChatTextPart] = [part for part in parts if part["type"] == "text"]
        text = "\n\n".join(part["text"] for part in texts)
    else:
        text = content or ""
    # Lowercasing the first five characters decides as the whole text would, without copying it.
    if block.get("is_error") and not text[:5].lower().startswith("error"):
        text = f"Error: {text}" if text else "Error"
    return text, images
