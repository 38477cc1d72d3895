"""Parsing and checking a Responses request, enough for ``to_chat`` to trust its shape: a wrong one
is a 400 naming the offending parameter (``input[2].call_id``) rather than an upstream failure.
"""

from __future__ import annotations

from typing import Any, cast

from iflow2api.dialects.checks import (
    as_object,
    as_text,
    check_length,
    check_model_length,
    check_types,
    ensure,
    load_object,
    shown,
)
from iflow2api.dialects.params import checked
from iflow2api.dialects.responses.wire import ResponsesRequest

#: ``reasoning.effort`` values the SDK knows; the iFlow speaker maps each one.
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

_ROLES = ("assistant", "developer", "system", "user")
_TEXT_FORMATS = ("text", "json_object", "json_schema")

# Parameters whose JSON type we check (null is always allowed); anything else passes untouched.
_TYPED = checked(
    "instructions tools tool_choice max_output_tokens reasoning text stream store parallel_tool_calls "
    "previous_response_id temperature top_p metadata user"
)


def _ensure_string(value: object, param: str) -> None:
    ensure(isinstance(value, str) and bool(value), param, f"'{param}' must be a non-empty string.")


def parse_request(body: bytes) -> ResponsesRequest:
    """The client's request body, checked enough for ``to_chat.to_chat_request`` to trust its shape.

    Raises ``InvalidRequest`` naming the offending parameter (``input[2].call_id``).
    """
    payload = load_object(body)
    model = payload.get("model")
    ensure(model is not None, "model", "you must provide a model parameter", "missing_required_parameter")
    ensure(isinstance(model, str) and bool(model.strip()), "model", "'model' must be a non-empty string.")
    check_model_length(str(model))
    _check_input(payload.get("input"))
    check_types(payload, _TYPED)
    previous = payload.get("previous_response_id")
    if isinstance(previous, str):
        check_length(previous, "previous_response_id")
    limit = payload.get("max_output_tokens")
    ensure(
        limit is None or limit >= 1,
        "max_output_tokens",
        "'max_output_tokens' must be at least 1.",
        "invalid_value",
    )
    for index, tool in enumerate(payload.get("tools") or ()):
        _check_tool(tool, f"tools[{index}]")
    _check_tool_choice(payload.get("tool_choice"))
    effort = as_object(payload.get("reasoning")).get("effort")
    message = f"'reasoning.effort' must be one of {', '.join(EFFORTS)}."
    ensure(effort is None or effort in EFFORTS, "reasoning.effort", message, "invalid_value")
    _check_text_format(as_object(payload.get("text")).get("format"))
    for key, value in as_object(payload.get("metadata")).items():
        ensure(isinstance(value, str), f"metadata.{key[:64]}", "Metadata values must be strings.")
    return cast(ResponsesRequest, payload)


def _check_input(items: object) -> None:
    ensure(items is not None, "input", "'input' is a required property", "missing_required_parameter")
    if isinstance(items, str):
        return
    ensure(isinstance(items, list), "input", "'input' must be a string or an array of input items.")
    assert isinstance(items, list)
    ensure(bool(items), "input", "'input' must contain at least one item.", "empty_array")
    for index, value in enumerate(items):
        param = f"input[{index}]"
        ensure(isinstance(value, dict), param, f"'{param}' must be an object.")
        _check_item(as_object(value), param)


def _check_item(item: dict[str, Any], param: str) -> None:
    kind = item.get("type") or "message"
    if kind == "message":
        role = item.get("role")
        message = f"'{param}.role' must be one of {', '.join(_ROLES)}."
        ensure(role in _ROLES, f"{param}.role", message, "invalid_value")
        _check_content(item.get("content"), f"{param}.content", media=role == "user")
    elif kind == "function_call":
        _ensure_string(item.get("call_id"), f"{param}.call_id")
        _ensure_string(item.get("name"), f"{param}.name")
        arguments = f"{param}.arguments"
        ensure(isinstance(item.get("arguments"), str), arguments, f"'{arguments}' must be a string.")
    elif kind == "function_call_output":
        _ensure_string(item.get("call_id"), f"{param}.call_id")
        _check_content(item.get("output"), f"{param}.output", media=True)
    elif kind == "reasoning":
        for name in ("summary", "content"):
            where = f"{param}.{name}"
            ensure(isinstance(item.get(name) or [], list), where, f"'{where}' must be an array.")
    else:
        message = (
            f"Input items of type {shown(kind)} are not supported; this gateway takes message, "
            "function_call, function_call_output and reasoning items."
        )
        ensure(False, f"{param}.type", message, "invalid_value")


def _check_content(content: object, param: str, *, media: bool) -> None:
    """A string or content parts; images and files only where chat carries them (user, tool results)."""
    if isinstance(content, str):
        return
    ensure(isinstance(content, list), param, f"'{param}' must be a string or an array of content parts.")
    assert isinstance(content, list)
    for index, value in enumerate(content):
        where = f"{param}[{index}]"
        ensure(isinstance(value, dict), where, f"'{where}' must be an object.")
        part = as_object(value)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "refusal"):
            name = "refusal" if kind == "refusal" else "text"
            ensure(isinstance(part.get(name), str), f"{where}.{name}", f"'{where}.{name}' must be a string.")
        elif kind == "input_image" and media:
            message = (
                "Give images as 'image_url' (a URL or a data URL); uploaded files ('file_id') are not "
                "available through this gateway."
            )
            ensure(bool(as_text(part.get("image_url"))), f"{where}.image_url", message, "invalid_value")
        elif kind == "input_file" and media:
            message = "Give files inline as 'file_data'; 'file_id' and 'file_url' are not available here."
            ensure(bool(as_text(part.get("file_data"))), f"{where}.file_data", message, "invalid_value")
        else:
            place = "here" if media else "a message of this role, which takes text only"
            message = f"Content parts of type {shown(kind)} are not supported in {place}."
            ensure(False, f"{where}.type", message, "invalid_value")


def _check_tool(value: object, param: str) -> None:
    tool = as_object(value)
    ensure(isinstance(tool.get("type"), str), param, f"'{param}' must be an object with a 'type'.")
    if tool["type"] != "function":
        return
    _ensure_string(tool.get("name"), f"{param}.name")
    for name, expected, described in (
        ("parameters", dict, "an object"),
        ("description", str, "a string"),
        ("strict", bool, "a boolean"),
    ):
        where = f"{param}.{name}"
        ensure(
            tool.get(name) is None or isinstance(tool[name], expected),
            where,
            f"'{where}' must be {described}.",
        )


def _check_tool_choice(choice: object) -> None:
    if isinstance(choice, str):
        message = "'tool_choice' must be auto, none, required or an object."
        ensure(choice in ("auto", "none", "required"), "tool_choice", message, "invalid_value")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    ensure(isinstance(kind, str), "tool_choice.type", "'tool_choice.type' must be a string.")
    if kind == "function":
        _ensure_string(choice.get("name"), "tool_choice.name")
    elif kind == "allowed_tools":
        message = "'tool_choice.mode' must be auto or required."
        ensure(choice.get("mode") in ("auto", "required"), "tool_choice.mode", message, "invalid_value")
        tools = choice.get("tools")
        ensure(isinstance(tools, list), "tool_choice.tools", "'tool_choice.tools' must be an array.")


def _check_text_format(fmt: object) -> None:
    if fmt is None:
        return
    message = f"'text.format.type' must be one of {', '.join(_TEXT_FORMATS)}."
    ensure(as_object(fmt).get("type") in _TEXT_FORMATS, "text.format.type", message, "invalid_value")
    if as_object(fmt)["type"] == "json_schema":
        _ensure_string(as_object(fmt).get("name"), "text.format.name")
        schema = as_object(fmt).get("schema")
        ensure(isinstance(schema, dict), "text.format.schema", "'text.format.schema' must be an object.")
