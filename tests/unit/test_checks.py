"""The request checks the dialects share, and what hostile input makes of each dialect's parser."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pytest

from iflow2api.dialects.anthropic.request import parse_request as parse_messages
from iflow2api.dialects.checks import MAX_DEPTH, MAX_MODEL_LENGTH, load_object, too_deep
from iflow2api.dialects.openai_chat import request as chat_request
from iflow2api.dialects.responses.request import parse_request as parse_responses
from iflow2api.errors import InvalidRequest

Parser = Callable[[bytes], Mapping[str, Any]]
CHAT: dict[str, Any] = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES: dict[str, Any] = {**CHAT, "max_tokens": 5}
RESPONSES: dict[str, Any] = {"model": "glm-4.7", "input": "hi"}
PARSERS = [
    pytest.param(chat_request.parse_request, CHAT, id="chat"),
    pytest.param(parse_messages, MESSAGES, id="messages"),
    pytest.param(parse_responses, RESPONSES, id="responses"),
]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def refusal(parse: Parser, body: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    return caught.value


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "The request body is not valid JSON."),
        (b"", "The request body is not valid JSON."),
        (b"[1]", "The request body must be a JSON object."),
        (nested(MAX_DEPTH + 1), f"The request body nests deeper than {MAX_DEPTH} levels."),
        (nested(2000), f"The request body nests deeper than {MAX_DEPTH} levels."),
    ],
)
def test_load_object_refuses(body: bytes, message: str) -> None:
    assert refusal(load_object, body).message == message


def test_load_object_takes_the_deepest_allowed_body() -> None:
    body = b'{"a":' + nested(MAX_DEPTH - 1) + b"}"
    assert load_object(body) == orjson.loads(body)


def test_too_deep_counts_objects_and_arrays() -> None:
    value: Any = "leaf"
    for level in range(254):
        value = [value] if level % 2 else {"k": value}
    assert too_deep(value, 254) is False
    assert too_deep(value, 253) is True
    assert too_deep([value], 254) is True
    assert too_deep("scalar", 0) is False
    assert too_deep([], 0) is True


@pytest.mark.parametrize(("parse", "valid"), PARSERS)
@pytest.mark.parametrize("depth", [254, 300])
def test_every_dialect_refuses_bodies_orjson_could_not_write_back(
    parse: Parser, valid: dict[str, Any], depth: int
) -> None:
    body = orjson.dumps(valid)[:-1] + b',"extra":' + nested(depth) + b"}"
    assert refusal(parse, body).code == "too_deep"


@pytest.mark.parametrize(("parse", "valid"), PARSERS)
def test_every_dialect_bounds_the_model_name(parse: Parser, valid: dict[str, Any]) -> None:
    assert parse(orjson.dumps({**valid, "model": "m" * MAX_MODEL_LENGTH}))["model"] == "m" * MAX_MODEL_LENGTH
    error = refusal(parse, orjson.dumps({**valid, "model": "m" * 300_000}))
    assert (error.status, error.param, error.code) == (400, "model", "string_above_max_length")
    assert len(error.message) < 100


@pytest.mark.parametrize("role", [[], [[[]]], {}, {"a": 1}, 1, True])
def test_a_chat_role_of_any_json_type_is_refused(role: Any) -> None:
    body = orjson.dumps({**CHAT, "messages": [{"role": role, "content": "hi"}]})
    assert refusal(chat_request.parse_request, body).param == "messages[0].role"


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("thinking", {"type": []}, "thinking.type"),
        ("thinking", {"type": {}}, "thinking.type"),
        ("tool_choice", {"type": {}}, "tool_choice.type"),
        ("tool_choice", {"type": [[]]}, "tool_choice.type"),
        ("output_config", {"effort": ["low"]}, "output_config.effort"),
        ("output_config", {"effort": {}}, "output_config.effort"),
    ],
)
def test_anthropic_options_of_any_json_type_are_refused(field: str, value: Any, param: str) -> None:
    body = orjson.dumps({**MESSAGES, field: value})
    assert refusal(parse_messages, body).param == param


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        pytest.param(
            parse_messages,
            {**MESSAGES, "messages": [{"role": "user", "content": [{"type": "x" * 300_000}]}]},
            id="anthropic-block-type",
        ),
        pytest.param(
            parse_messages,
            {**MESSAGES, "tools": [{"name": "t", "type": "x" * 300_000, "input_schema": {}}]},
            id="anthropic-tool-type",
        ),
        pytest.param(
            parse_responses,
            {**RESPONSES, "input": [{"type": "x" * 300_000}]},
            id="responses-item-type",
        ),
        pytest.param(
            parse_responses,
            {**RESPONSES, "input": [{"role": "user", "content": [{"type": "x" * 300_000}]}]},
            id="responses-part-type",
        ),
        pytest.param(
            parse_responses,
            {**RESPONSES, "metadata": {"x" * 300_000: 1}},
            id="responses-metadata-key",
        ),
    ],
)
def test_refusals_quote_client_strings_cut_short(parse: Parser, body: dict[str, Any]) -> None:
    """Error messages are logged as well as returned: a client's string must not make them huge."""
    error = refusal(parse, orjson.dumps(body))
    assert len(error.message) < 300
    assert error.param is None or len(error.param) < 100
