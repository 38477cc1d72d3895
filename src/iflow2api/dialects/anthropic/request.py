"""Parsing and checking a Messages request, enough to fail early and clearly (a 400 naming the
offending parameter) rather than upstream; ``to_chat`` then trusts the shapes checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

from iflow2api.dialects.anthropic.wire import MessagesRequest
from iflow2api.dialects.checks import (
    as_object,
    check_model_length,
    check_types,
    fail,
    is_json_type,
    load_object,
    one_of,
    shown,
)
from iflow2api.dialects.params import OBJECT, checked

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
_RESULT_BLOCKS = frozenset({"text", "image", "document"})
_TYPED = checked(
    "stream temperature top_p top_k stop_sequences metadata tools tool_choice thinking output_config",
    tool_choice=OBJECT,  # Anthropic's is always an object
)


#: Where a value sits in the request, as the keys and indices that lead to it; written out as a
#: parameter name (``messages[3].content[0]``) only for an error, not for every block checked.
Path = tuple[str | int, ...]


def _name(path: Path) -> str:
    """
    >>> _name(("messages", 3, "content", 0))
    'messages[3].content[0]'
    """
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _need_str(block: dict[str, Any], key: str, path: Path) -> None:
    if not isinstance(block.get(key), str):
        param = _name(path)
        fail(f"'{param}.{key}' must be a string.", f"{param}.{key}", "invalid_type")


def parse_request(body: bytes) -> MessagesRequest:
    """The client's Messages request, checked enough to fail early and clearly.

    Raises ``InvalidRequest`` naming the offending parameter. Fields not named here (``cache_control``,
    ``service_tier``, ``container``, ...) are accepted and ignored.
    """
    return check_request(load_object(body))


def check_request(payload: dict[str, Any]) -> MessagesRequest:
    """``payload``, a parsed Messages request, if ``parse_request`` would accept it."""
    for name in ("model", "max_tokens", "messages"):
        if payload.get(name) is None:
            fail(f"'{name}' is required.", name, "missing_required_parameter")
    if not isinstance(payload["model"], str) or not payload["model"].strip():
        fail("'model' must be a non-empty string.", "model", "invalid_type")
    check_model_length(payload["model"])
    if not is_json_type(payload["max_tokens"], int):
        fail("'max_tokens' must be an integer.", "max_tokens", "invalid_type")
    if payload["max_tokens"] < 1:
        fail("'max_tokens' must be at least 1.", "max_tokens")
    messages = payload["messages"]
    if not isinstance(messages, list):
        fail("'messages' must be an array of message objects.", "messages", "invalid_type")
    if not messages:
        fail("'messages' must contain at least one message.", "messages", "empty_array")
    for index, message in enumerate(messages):
        _check_message(message, index)
    if payload.get("system") is not None:
        _check_content(payload["system"], ("system",), _BLOCKS["system"])
    check_types(payload, _TYPED)
    for index, stop in enumerate(payload.get("stop_sequences") or ()):
        if not isinstance(stop, str):
            fail(f"'stop_sequences[{index}]' must be a string.", f"stop_sequences[{index}]", "invalid_type")
    for index, tool in enumerate(payload.get("tools") or ()):
        _check_tool(tool, f"tools[{index}]")
    _check_options(payload)
    return cast(MessagesRequest, payload)


def _check_message(message: object, index: int) -> None:
    if not isinstance(message, dict):
        fail(f"'messages[{index}]' must be an object.", f"messages[{index}]", "invalid_type")
    role = message.get("role")
    if not isinstance(role, str) or role not in _BLOCKS:
        fail(f"'messages[{index}].role' must be 'user', 'assistant' or 'system'.", f"messages[{index}].role")
    if "content" not in message:
        param = f"messages[{index}].content"
        fail(f"'{param}' is required.", param, "missing_required_parameter")
    content = message["content"]
    if not isinstance(content, str):
        _check_content(content, ("messages", index, "content"), _BLOCKS[role])


def _check_content(content: object, path: Path, allowed: frozenset[str]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        param = _name(path)
        fail(f"'{param}' must be a string or an array of content blocks.", param, "invalid_type")
    for index, block in enumerate(content):
        _check_block(block, (*path, index), allowed)


def _check_block(block: object, path: Path, allowed: frozenset[str]) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        param = _name(path)
        fail(f"'{param}' must be a content block object with a 'type'.", param, "invalid_type")
    kind = block["type"]
    if kind not in allowed:
        param = _name(path)
        fail(f"'{param}': a {shown(kind)} block is not supported here by this gateway.", f"{param}.type")
    if kind == "text":
        _need_str(block, "text", path)
    elif kind == "thinking":
        _need_str(block, "thinking", path)
    elif kind == "image":
        image_url(block, _name(path))
    elif kind == "document":
        document_text(block, _name(path))
    elif kind == "tool_use":
        for key in ("id", "name"):
            _need_str(block, key, path)
        if not isinstance(block.get("input"), dict):
            param = _name(path)
            fail(f"'{param}.input' must be an object.", f"{param}.input", "invalid_type")
    elif kind == "tool_result":
        _need_str(block, "tool_use_id", path)
        if block.get("is_error") is not None and not isinstance(block["is_error"], bool):
            param = _name(path)
            fail(f"'{param}.is_error' must be a boolean.", f"{param}.is_error", "invalid_type")
        content = block.get("content")
        if content is not None:
            _check_content(content, (*path, "content"), _RESULT_BLOCKS)


def image_url(block: Mapping[str, Any], param: str) -> str:
    """The URL (or data URL) of an image block; checked here, used again by the translation."""
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        fail(f"'{param}.source' must be a base64 or url image source.", f"{param}.source")
    if source["type"] == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    if isinstance(source.get("media_type"), str) and isinstance(source.get("data"), str):
        return f"data:{source['media_type']};base64,{source['data']}"
    fail(f"'{param}.source' is missing its data, media_type or url.", f"{param}.source")


def document_text(block: Mapping[str, Any], param: str) -> str:
    """The text of a plain-text or content document; the models behind iFlow read no PDFs."""
    source = as_object(block.get("source"))
    data, content = source.get("data"), source.get("content")
    if source.get("type") == "text" and isinstance(data, str):
        return data
    if source.get("type") == "content":
        if isinstance(content, str):
            return content
        texts = [as_object(part).get("text") for part in content] if isinstance(content, list) else [None]
        if all(isinstance(text, str) for text in texts):
            return "\n\n".join(str(text) for text in texts)
    fail(f"'{param}': only plain-text documents are supported, not this source.", f"{param}.source")


def _check_tool(tool: object, param: str) -> None:
    if not isinstance(tool, dict):
        fail(f"'{param}' must be an object.", param, "invalid_type")
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        fail(f"'{param}.name' must be a non-empty string.", f"{param}.name", "invalid_type")
    if tool.get("type") not in (None, "custom"):
        fail(
            f"'{param}' is Anthropic's server tool {shown(tool['type'])}, which this gateway cannot provide.",
            f"{param}.type",
        )
    if not isinstance(tool.get("input_schema"), dict):
        fail(f"'{param}.input_schema' must be an object.", f"{param}.input_schema", "invalid_type")
    if tool.get("description") is not None and not isinstance(tool["description"], str):
        fail(f"'{param}.description' must be a string.", f"{param}.description", "invalid_type")


def _check_options(payload: dict[str, Any]) -> None:
    choice = payload.get("tool_choice")
    if choice is not None:
        if not one_of(choice.get("type"), _TOOL_CHOICES):
            fail("'tool_choice.type' must be one of auto, any, tool, none.", "tool_choice.type")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            fail("'tool_choice.name' must be a string.", "tool_choice.name", "invalid_type")
    thinking = payload.get("thinking")
    if thinking is not None:
        if not one_of(thinking.get("type"), _THINKING):
            fail(f"'thinking.type' must be one of {', '.join(sorted(_THINKING))}.", "thinking.type")
        if thinking["type"] == "enabled" and not is_json_type(thinking.get("budget_tokens"), int):
            fail("'thinking.budget_tokens' must be an integer.", "thinking.budget_tokens", "invalid_type")
    user_id = (payload.get("metadata") or {}).get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        fail("'metadata.user_id' must be a string.", "metadata.user_id", "invalid_type")
    effort = (payload.get("output_config") or {}).get("effort")
    if effort is not None and not one_of(effort, _EFFORTS):
        fail(f"'output_config.effort' must be one of {', '.join(sorted(_EFFORTS))}.", "output_config.effort")
