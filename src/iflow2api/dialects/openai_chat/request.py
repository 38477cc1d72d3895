"""A client's Chat Completions request, checked enough to fail early and clearly."""

from __future__ import annotations

from typing import Any

from iflow2api.dialects.checks import check_model_length, check_types, load_object, one_of
from iflow2api.dialects.params import checked
from iflow2api.errors import InvalidRequest

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
