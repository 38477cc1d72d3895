"""The Responses ⇄ Chat Completions translation, over golden literals.

Every Response and every stream event is checked twice: against OpenAI's published shapes
(``tests/openai_shapes.py``, through ``tests/openapi_schema.py``) and against the ``openai`` SDK's own
types. Streams are also replayed through the SDK's real client (over an in-memory ``httpx2``
transport: httpx2 is the SDK's HTTP library), which accumulates the events the way applications see
them and refuses ones out of order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx2
import orjson
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from iflow2api.dialects.openai_chat import errors as chat_errors
from iflow2api.dialects.responses.answer import from_chat_completion, history_messages
from iflow2api.dialects.responses.errors import error_body
from iflow2api.dialects.responses.request import parse_request
from iflow2api.dialects.responses.stream import StreamTranslator
from iflow2api.dialects.responses.to_chat import to_chat_request
from iflow2api.dialects.responses.wire import ResponsesRequest
from iflow2api.errors import ContextTooLong, GatewayError, InvalidRequest, UpstreamError, UpstreamRateLimited
from tests.openapi_schema import OpenApiSchemas, load

MODEL = "glm-4.7"
STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="session")
def openapi() -> OpenApiSchemas:
    return load()


def request(**fields: Any) -> ResponsesRequest:
    return parse_request(orjson.dumps({"model": MODEL, **fields}))


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def chat_call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def output(call_id: str, result: Any = "18C") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": result}


def text(kind: str, value: str) -> dict[str, Any]:
    return {"type": kind, "text": value}


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
WEATHER_CHAT = {
    "type": "function",
    "function": {k: v for k, v in WEATHER.items() if k != "type"},
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}
TIME_CHAT = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


# --- parse_request ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"not json", None, None),
        (b"[]", None, None),
        ({"input": "hi"}, "model", "missing_required_parameter"),
        ({"model": " ", "input": "hi"}, "model", "invalid_type"),
        ({"model": MODEL}, "input", "missing_required_parameter"),
        ({"model": MODEL, "input": 5}, "input", "invalid_type"),
        ({"model": MODEL, "input": []}, "input", "empty_array"),
        ({"model": MODEL, "input": ["hi"]}, "input[0]", "invalid_type"),
        (
            {"model": MODEL, "input": [{"type": "item_reference", "id": "msg_1"}]},
            "input[0].type",
            "invalid_value",
        ),
        ({"model": MODEL, "input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({"model": MODEL, "input": [{"role": "user", "content": 5}]}, "input[0].content", "invalid_type"),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
            "invalid_type",
        ),
        (
            {
                "model": MODEL,
                "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}],
            },
            "input[0].content[0].type",
            "invalid_value",
        ),
        (
            {
                "model": MODEL,
                "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}],
            },
            "input[0].content[0].image_url",
            "invalid_value",
        ),
        (
            {
                "model": MODEL,
                "input": [{"role": "user", "content": [{"type": "input_file", "file_url": "u"}]}],
            },
            "input[0].content[0].file_data",
            "invalid_value",
        ),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
            "invalid_value",
        ),
        ({"model": MODEL, "input": [{**call("c"), "call_id": ""}]}, "input[0].call_id", "invalid_type"),
        (
            {"model": MODEL, "input": [{**call("c"), "arguments": {"city": "Paris"}}]},
            "input[0].arguments",
            "invalid_type",
        ),
        (
            {"model": MODEL, "input": [{"type": "function_call_output", "call_id": "c"}]},
            "input[0].output",
            "invalid_type",
        ),
        (
            {"model": MODEL, "input": [{"type": "reasoning", "summary": "x"}]},
            "input[0].summary",
            "invalid_type",
        ),
        ({"model": MODEL, "input": "hi", "tools": [5]}, "tools[0]", "invalid_type"),
        ({"model": MODEL, "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name", "invalid_type"),
        (
            {"model": MODEL, "input": "hi", "tools": [{**TIME, "parameters": "{}"}]},
            "tools[0].parameters",
            "invalid_type",
        ),
        ({"model": MODEL, "input": "hi", "tool_choice": "any"}, "tool_choice", "invalid_value"),
        ({"model": MODEL, "input": "hi", "tool_choice": 1}, "tool_choice", "invalid_type"),
        (
            {"model": MODEL, "input": "hi", "tool_choice": {"type": "function"}},
            "tool_choice.name",
            "invalid_type",
        ),
        (
            {
                "model": MODEL,
                "input": "hi",
                "tool_choice": {"type": "allowed_tools", "mode": "none", "tools": []},
            },
            "tool_choice.mode",
            "invalid_value",
        ),
        ({"model": MODEL, "input": "hi", "max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
        ({"model": MODEL, "input": "hi", "max_output_tokens": "5"}, "max_output_tokens", "invalid_type"),
        ({"model": MODEL, "input": "hi", "max_output_tokens": True}, "max_output_tokens", "invalid_type"),
        (
            {"model": MODEL, "input": "hi", "reasoning": {"effort": "extreme"}},
            "reasoning.effort",
            "invalid_value",
        ),
        (
            {"model": MODEL, "input": "hi", "text": {"format": {"type": "yaml"}}},
            "text.format.type",
            "invalid_value",
        ),
        (
            {"model": MODEL, "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "invalid_type",
        ),
        ({"model": MODEL, "input": "hi", "stream": "yes"}, "stream", "invalid_type"),
        ({"model": MODEL, "input": "hi", "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": MODEL, "input": "hi", "instructions": ["be brief"]}, "instructions", "invalid_type"),
        ({"model": MODEL, "input": "hi", "metadata": {"run": 1}}, "metadata.run", "invalid_type"),
    ],
)
def test_bad_requests_name_the_parameter(body: Any, param: str | None, code: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body if isinstance(body, bytes) else orjson.dumps(body))
    assert (caught.value.param, caught.value.code, caught.value.status) == (param, code, 400)


def test_a_codex_request_is_accepted_as_it_is() -> None:
    body = {
        "model": MODEL,
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [text("input_text", "<permissions/>")]},
            {"type": "message", "role": "user", "content": [text("input_text", "fix the bug")]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "content": None, "encrypted_content": None},
            call("call_1", "shell", '{"command":["ls"]}'),
            output("call_1", "README.md"),
        ],
        "tools": [
            {**TIME, "strict": False},
            {"type": "web_search"},
            {"type": "custom", "name": "apply_patch"},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a",
        "metadata": None,
    }
    assert parse_request(orjson.dumps(body)) == body


# --- to_chat_request --------------------------------------------------------------------------

CONVERSATIONS: list[tuple[str, dict[str, Any], list[dict[str, Any]] | None, list[dict[str, Any]]]] = [
    (
        "instructions and a string",
        {"instructions": "Be brief.", "input": "Hi"},
        None,
        [{"role": "system", "content": "Be brief."}, user("Hi")],
    ),
    (
        "user parts: text, image, file",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        text("input_text", "What is in these?"),
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": None},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,BBBB",
                            "filename": "a.pdf",
                        },
                    ],
                }
            ]
        },
        None,
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {
                        "type": "file",
                        "file": {"file_data": "data:application/pdf;base64,BBBB", "filename": "a.pdf"},
                    },
                ],
            }
        ],
    ),
    (
        "system and developer items that open the conversation join the instructions",
        {
            "instructions": "A",
            "input": [
                {
                    "type": "message",
                    "role": "developer",
                    "content": [text("input_text", "B1"), text("input_text", "B2")],
                },
                {"role": "system", "content": "C"},
                user("hi"),
            ],
        },
        None,
        [{"role": "system", "content": "A\n\nB1\n\nB2\n\nC"}, user("hi")],
    ),
    (
        "a developer message later on stays where it is; assistant parts are one text",
        {
            "input": [
                user("hi"),
                {"role": "assistant", "content": [text("output_text", "Hel"), text("output_text", "lo")]},
                {"role": "developer", "content": "Be formal from now on."},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
                user("why?"),
            ]
        },
        None,
        [
            user("hi"),
            {"role": "assistant", "content": "Hello"},
            {"role": "system", "content": "Be formal from now on."},
            {"role": "assistant", "content": "I can't."},
            user("why?"),
        ],
    ),
    (
        "history goes after the instructions, before the new input",
        {"instructions": "A", "input": "3"},
        [user("1"), {"role": "assistant", "content": "2", "reasoning_content": "r"}],
        [
            {"role": "system", "content": "A"},
            user("1"),
            {"role": "assistant", "content": "2", "reasoning_content": "r"},
            user("3"),
        ],
    ),
    (
        "one model turn (reasoning, text, two calls) is one assistant message",
        {
            "input": [
                user("Weather in Paris and Rome?"),
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [text("summary_text", "Two cities."), text("summary_text", "Call twice.")],
                    "encrypted_content": "gAAAA",
                },
                {"type": "message", "role": "assistant", "content": [text("output_text", "Checking.")]},
                call("call_a"),
                call("call_b", arguments='{"city":"Rome"}'),
                output("call_a"),
                output("call_b", "21C"),
                user("Thanks"),
            ]
        },
        None,
        [
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "Two cities.\n\nCall twice.",
                "tool_calls": [chat_call("call_a"), chat_call("call_b", arguments='{"city":"Rome"}')],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "21C"},
            user("Thanks"),
        ],
    ),
    (
        "reasoning text beats the summary; encrypted-only reasoning and reasoning before a user say nothing",
        {
            "input": [
                {"type": "reasoning", "summary": [text("summary_text", "lost")]},
                user("hi"),
                {
                    "type": "reasoning",
                    "summary": [text("summary_text", "short")],
                    "content": [text("reasoning_text", "long "), text("reasoning_text", "thoughts")],
                },
                call("call_a"),
                output("call_a"),
                {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
                {"role": "assistant", "content": "Done."},
            ]
        },
        None,
        [
            user("hi"),
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "long thoughts",
                "tool_calls": [chat_call("call_a")],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
            {"role": "assistant", "content": "Done."},
        ],
    ),
    (
        "images a tool returned follow all the tool results as a user message",
        {
            "input": [
                user("Look at both"),
                call("call_a", "view_image", '{"path":"a.png"}'),
                call("call_b", "view_image", '{"path":"b.png"}'),
                output(
                    "call_a",
                    [
                        text("input_text", "a.png:"),
                        {"type": "input_image", "image_url": "data:image/png;base64,AA"},
                    ],
                ),
                output("call_b", [text("input_text", "b.png")]),
                {"type": "message", "role": "user", "content": [text("input_text", "Compare them")]},
            ]
        },
        None,
        [
            user("Look at both"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    chat_call("call_a", "view_image", '{"path":"a.png"}'),
                    chat_call("call_b", "view_image", '{"path":"b.png"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "a.png:"},
            {"role": "tool", "tool_call_id": "call_b", "content": "b.png"},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}],
            },
            {"role": "user", "content": [{"type": "text", "text": "Compare them"}]},
        ],
    ),
]


@pytest.mark.parametrize(
    ("fields", "history", "messages"),
    [case[1:] for case in CONVERSATIONS],
    ids=[case[0] for case in CONVERSATIONS],
)
def test_conversations(
    fields: dict[str, Any], history: list[dict[str, Any]] | None, messages: list[dict[str, Any]]
) -> None:
    assert to_chat_request(request(**fields), history) == {"model": MODEL, "messages": messages}


def test_history_is_not_changed() -> None:
    history = [user("1"), {"role": "assistant", "content": "2", "tool_calls": [chat_call("call_a")]}]
    before = json.dumps(history)
    to_chat_request(request(input=[call("call_b"), output("call_b")]), history)
    assert json.dumps(history) == before


OPTIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "function tools, flat to nested; hosted and custom tools dropped",
        {
            "tools": [WEATHER, {"type": "web_search"}, {"type": "custom", "name": "apply_patch"}, TIME],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
        {"tools": [WEATHER_CHAT, TIME_CHAT], "tool_choice": "required", "parallel_tool_calls": False},
    ),
    ("no tool_choice: the upstream's default", {"tools": [TIME]}, {"tools": [TIME_CHAT]}),
    (
        "tool_choice none",
        {"tools": [TIME], "tool_choice": "none"},
        {"tools": [TIME_CHAT], "tool_choice": "none"},
    ),
    (
        "tool_choice naming a function",
        {"tools": [WEATHER, TIME], "tool_choice": {"type": "function", "name": "get_time"}},
        {
            "tools": [WEATHER_CHAT, TIME_CHAT],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
    ),
    (
        "allowed_tools: its mode, and only the functions it allows",
        {
            "tools": [WEATHER, TIME],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_time"}, {"type": "web_search"}],
            },
        },
        {"tools": [TIME_CHAT], "tool_choice": "required"},
    ),
    (
        "a tool_choice naming a hosted tool goes with it",
        {"tools": [TIME, {"type": "web_search_preview"}], "tool_choice": {"type": "web_search_preview"}},
        {"tools": [TIME_CHAT]},
    ),
    (
        "only hosted tools: no tools at all",
        {"tools": [{"type": "file_search"}], "tool_choice": "auto", "parallel_tool_calls": True},
        {},
    ),
    (
        "sampling, limits and effort",
        {
            "temperature": 0.2,
            "top_p": 0.9,
            "max_output_tokens": 256,
            "reasoning": {"effort": "high", "summary": "auto"},
        },
        {"temperature": 0.2, "top_p": 0.9, "max_tokens": 256, "reasoning_effort": "high"},
    ),
    ("a reasoning summary alone asks for nothing", {"reasoning": {"summary": "detailed"}}, {}),
    (
        "json_schema",
        {
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "city",
                    "schema": {"type": "object"},
                    "strict": True,
                },
                "verbosity": "low",
            }
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True},
            }
        },
    ),
    (
        "json_object",
        {"text": {"format": {"type": "json_object"}}},
        {"response_format": {"type": "json_object"}},
    ),
    ("plain text is chat's default", {"text": {"format": {"type": "text"}}}, {}),
    ("stream", {"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
    ("no stream", {"stream": False}, {}),
    (
        "the gateway's own fields stay here",
        {
            "store": True,
            "metadata": {"run": "1"},
            "user": "u1",
            "previous_response_id": "resp_0",
            "include": [],
        },
        {},
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [case[1:] for case in OPTIONS], ids=[case[0] for case in OPTIONS]
)
def test_options(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_chat_request(request(input="hi", **fields)) == {
        "model": MODEL,
        "messages": [user("hi")],
        **expected,
    }


# --- from_chat_completion ---------------------------------------------------------------------


def completion(message: dict[str, Any], finish_reason: str = "stop", usage: Any = None) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "glm-4.7",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def check_response(response: Mapping[str, Any], openapi: OpenApiSchemas) -> Response:
    openapi.assert_conforms("Response", response)
    return Response.model_validate(response)


def test_a_text_answer_in_full(openapi: OpenApiSchemas) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    answer = completion({"content": "Hello!"}, usage=usage)
    response = from_chat_completion(answer, request=request(input="Hi"), response_id="resp_abc")
    assert response == {
        "id": "resp_abc",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "metadata": {},
        "model": MODEL,
        "output": [
            {
                "id": "msg_abc_0",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "store": True,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        },
    }
    assert check_response(response, openapi).output_text == "Hello!"


def test_the_request_is_echoed(openapi: OpenApiSchemas) -> None:
    fields: dict[str, Any] = {
        "input": "hi",
        "instructions": "Be brief.",
        "tools": [WEATHER, {"type": "web_search"}, TIME],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "temperature": 0.5,
        "top_p": 0.8,
        "max_output_tokens": 100,
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {
            "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}
        },
        "previous_response_id": "resp_0",
        "store": False,
        "metadata": {"run": "7"},
        "user": "u1",
    }
    response = from_chat_completion(
        completion({"content": "{}"}), request=request(**fields), response_id="resp_1"
    )
    body: Mapping[str, Any] = response
    echoed = {name: body[name] for name in fields if name not in ("input", "tools")}
    assert echoed == {name: value for name, value in fields.items() if name not in ("input", "tools")}
    assert response["tools"] == [
        WEATHER,
        {
            "type": "function",
            "name": "get_time",
            "description": None,
            "parameters": {"type": "object"},
            "strict": None,
        },
    ]
    check_response(response, openapi)


REASONING = "The user greets me."
ANSWERS: list[tuple[str, dict[str, Any], str, str, list[dict[str, Any]], Any]] = [
    (
        "reasoning and text",
        {"content": "Hi!", "reasoning_content": REASONING},
        "stop",
        "completed",
        [
            {
                "id": "rs_1_0",
                "type": "reasoning",
                "summary": [text("summary_text", REASONING)],
                "status": "completed",
            },
            {
                "id": "msg_1_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hi!", "annotations": [], "logprobs": []}],
            },
        ],
        None,
    ),
    (
        "the 'reasoning' spelling, text and tool calls (one without an id)",
        {
            "content": "Checking.",
            "reasoning": "Two calls.",
            "tool_calls": [
                chat_call("call_a"),
                {"type": "function", "function": {"name": "get_time", "arguments": {"tz": "UTC"}}},
            ],
        },
        "tool_calls",
        "completed",
        [
            {
                "id": "rs_1_0",
                "type": "reasoning",
                "summary": [text("summary_text", "Two calls.")],
                "status": "completed",
            },
            {
                "id": "msg_1_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}],
            },
            {
                "id": "fc_1_2",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "id": "fc_1_3",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_1",
                "name": "get_time",
                "arguments": '{"tz":"UTC"}',
            },
        ],
        None,
    ),
    (
        "tool calls alone: no message item",
        {"content": None, "tool_calls": [chat_call("call_a")]},
        "tool_calls",
        "completed",
        [
            {
                "id": "fc_1_0",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            }
        ],
        None,
    ),
    (
        "cut off by max_tokens",
        {"content": "Once upon a", "reasoning_content": REASONING},
        "length",
        "incomplete",
        [
            {
                "id": "rs_1_0",
                "type": "reasoning",
                "summary": [text("summary_text", REASONING)],
                "status": "completed",
            },
            {
                "id": "msg_1_1",
                "type": "message",
                "role": "assistant",
                "status": "incomplete",
                "content": [
                    {"type": "output_text", "text": "Once upon a", "annotations": [], "logprobs": []}
                ],
            },
        ],
        {"reason": "max_output_tokens"},
    ),
    (
        "filtered, with nothing said: an empty message",
        {"content": ""},
        "content_filter",
        "incomplete",
        [
            {
                "id": "msg_1_0",
                "type": "message",
                "role": "assistant",
                "status": "incomplete",
                "content": [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}],
            }
        ],
        {"reason": "content_filter"},
    ),
]


@pytest.mark.parametrize(
    ("message", "finish_reason", "status", "items", "incomplete"),
    [case[1:] for case in ANSWERS],
    ids=[case[0] for case in ANSWERS],
)
def test_answers(
    message: dict[str, Any],
    finish_reason: str,
    status: str,
    items: list[dict[str, Any]],
    incomplete: Any,
    openapi: OpenApiSchemas,
) -> None:
    response = from_chat_completion(
        completion(message, finish_reason),
        request=request(input="hi", tools=[WEATHER, TIME]),
        response_id="resp_1",
    )
    assert (response["status"], response["output"], response["incomplete_details"]) == (
        status,
        items,
        incomplete,
    )
    check_response(response, openapi)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 80},
                "completion_tokens_details": {"reasoning_tokens": 12},
            },
            (100, 80, 0, 20, 12, 120),
        ),
        (
            # Anthropic-style cache counts, outside prompt_tokens: added in, as the iFlow CLI does.
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "cache_read_input_tokens": 90,
                "cache_creation_input_tokens": 30,
            },
            (130, 90, 30, 5, 0, 135),
        ),
        ({"prompt_tokens": 7, "completion_tokens": 2}, (7, 0, 0, 2, 0, 9)),
    ],
)
def test_usage(usage: dict[str, Any], expected: tuple[int, ...], openapi: OpenApiSchemas) -> None:
    response = from_chat_completion(
        completion({"content": "x"}, usage=usage), request=request(input="hi"), response_id="r"
    )
    got = response["usage"]
    assert (
        got["input_tokens"],
        got["input_tokens_details"]["cached_tokens"],
        got["input_tokens_details"]["cache_write_tokens"],
        got["output_tokens"],
        got["output_tokens_details"]["reasoning_tokens"],
        got["total_tokens"],
    ) == expected
    check_response(response, openapi)


@pytest.mark.parametrize("usage", [None, {}])
def test_no_usage_no_usage_field(usage: Any) -> None:
    response = from_chat_completion(
        completion({"content": "x"}, usage=usage), request=request(input="hi"), response_id="r"
    )
    assert "usage" not in response


def test_created_at_is_given_or_the_completions() -> None:
    answer = completion({"content": "x"})
    assert (
        from_chat_completion(answer, request=request(input="hi"), response_id="r", created_at=5)["created_at"]
        == 5
    )
    del answer["created"]
    assert (
        from_chat_completion(answer, request=request(input="hi"), response_id="r")["created_at"] > 1700000000
    )


# --- history_messages -------------------------------------------------------------------------


def test_history_is_the_conversation_without_system_plus_the_reply() -> None:
    responses_request = request(
        instructions="Be brief.", input=[{"role": "developer", "content": "x"}, user("Weather?")]
    )
    chat = to_chat_request(responses_request, [user("earlier"), {"role": "assistant", "content": "ok"}])
    answer = completion(
        {"content": "", "reasoning_content": "Call it.", "tool_calls": [chat_call("call_a")]}, "tool_calls"
    )
    assert history_messages(chat, answer) == [
        user("earlier"),
        {"role": "assistant", "content": "ok"},
        user("Weather?"),
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Call it.",
            "tool_calls": [chat_call("call_a")],
        },
    ]
    # ... which the next request of the chain continues.
    follow = to_chat_request(
        request(instructions="Be brief.", input=[output("call_a")]), history_messages(chat, answer)
    )
    assert follow["messages"][0] == {"role": "system", "content": "Be brief."}
    assert follow["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Call it.",
            "tool_calls": [chat_call("call_a")],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
    ]


def test_history_of_a_plain_answer() -> None:
    assert history_messages({"messages": [user("hi")]}, completion({"content": "Hello"}))[-1] == {
        "role": "assistant",
        "content": "Hello",
    }


def test_error_body_is_the_chat_one() -> None:
    error = InvalidRequest("bad", param="input", code="invalid_value")
    assert error_body(error) == chat_errors.error_body(error)
    assert json.loads(error_body(error)) == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "input",
            "code": "invalid_value",
        }
    }


# --- the stream -------------------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = (
        []
        if delta is None and finish_reason is None
        else [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        **extra,
    }


def fragment(
    index: int | None, call_id: str | None = None, name: str | None = None, arguments: str | None = None
) -> dict[str, Any]:
    piece: dict[str, Any] = {} if index is None else {"index": index}
    if call_id is not None:
        piece.update(id=call_id, type="function")
    function = {key: value for key, value in (("name", name), ("arguments", arguments)) if value is not None}
    return {**piece, "function": function}


USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 9,
    "total_tokens": 39,
    "completion_tokens_details": {"reasoning_tokens": 4},
}


def run(chunks: list[dict[str, Any]], **fields: Any) -> tuple[StreamTranslator, list[bytes]]:
    translator = StreamTranslator(
        request=request(input="hi", stream=True, **fields), response_id="resp_s", created_at=1700000000
    )
    frames: list[bytes] = []
    for piece in chunks:
        frames += translator.feed(piece)
    return translator, frames + translator.finish()


def decode(frames: list[bytes]) -> list[dict[str, Any]]:
    """Each frame is exactly ``event: <type>`` and one ``data:`` line with the same type."""
    events = []
    for frame in frames:
        head, _, data = frame.partition(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ") and data.endswith(b"\n\n"), frame
        assert data.count(b"\n") == 2, frame
        event = json.loads(data[len(b"data: ") :])
        assert event["type"] == head[len(b"event: ") :].decode()
        events.append(event)
    return events


def check_events(frames: list[bytes], openapi: OpenApiSchemas) -> list[dict[str, Any]]:
    events = decode(frames)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    for event in events:
        STREAM_EVENT.validate_python(event)
        openapi.assert_conforms("ResponseStreamEvent", event, f"the {event['type']} event")
    return events


def outline(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each event's type, the output index it is about, and its delta, where it has them."""
    return [
        tuple(event[key] for key in ("type", "output_index", "delta") if key in event) for event in events
    ]


def through_sdk(frames: list[bytes]) -> tuple[list[Any], Response | None]:
    """The frames as the OpenAI SDK's streaming client consumes them: its events, its final Response."""
    body = b"".join(frames)

    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    with (
        httpx2.Client(transport=httpx2.MockTransport(answer)) as http,
        OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", http_client=http) as client,
        client.responses.stream(model=MODEL, input="hi") as stream,
    ):
        events = list(stream)
        final = stream.get_final_response() if events[-1].type == "response.completed" else None
    return events, final


REASONING_THEN_TEXT = [
    chunk({"role": "assistant", "content": "", "reasoning_content": "The user"}),
    chunk({"reasoning_content": " greets me."}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo!"}),
    chunk({}, "stop"),
    chunk(usage=USAGE),
]


def test_reasoning_then_text(openapi: OpenApiSchemas) -> None:
    translator, frames = run(REASONING_THEN_TEXT)
    events = check_events(frames, openapi)
    assert outline(events) == [
        ("response.created",),
        ("response.in_progress",),
        ("response.output_item.added", 0),
        ("response.reasoning_summary_part.added", 0),
        ("response.reasoning_summary_text.delta", 0, "The user"),
        ("response.reasoning_summary_text.delta", 0, " greets me."),
        ("response.reasoning_summary_text.done", 0),
        ("response.reasoning_summary_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.content_part.added", 1),
        ("response.output_text.delta", 1, "Hel"),
        ("response.output_text.delta", 1, "lo!"),
        ("response.output_text.done", 1),
        ("response.content_part.done", 1),
        ("response.output_item.done", 1),
        ("response.completed",),
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[2]["item"] == {"id": "rs_s_0", "type": "reasoning", "summary": [], "status": "in_progress"}
    assert events[6]["text"] == "The user greets me."
    assert events[9]["item"] == {
        "id": "msg_s_1",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    assert events[13]["text"] == "Hello!"
    # The streamed answer is the same Response as the whole one.
    whole = completion({"content": "Hello!", "reasoning_content": "The user greets me."}, usage=USAGE)
    expected = from_chat_completion(whole, request=translator.request, response_id="resp_s")
    assert events[-1]["response"] == translator.completed_response() == expected
    check_response(expected, openapi)
    sdk_events, final = through_sdk(frames)
    assert [event.type for event in sdk_events][-1] == "response.completed"
    assert (
        final is not None and final.output_text == "Hello!" and final.usage and final.usage.total_tokens == 39
    )


TEXT_THEN_TWO_CALLS = [
    chunk({"role": "assistant", "content": "Let me check both."}),
    chunk({"tool_calls": [fragment(0, "call_a", "get_weather", "")]}),
    chunk({"tool_calls": [fragment(0, arguments='{"ci')]}),
    chunk({"tool_calls": [fragment(0, arguments='ty":"Paris"}')]}),
    chunk({"tool_calls": [fragment(1, "call_b", "get_weather", '{"city":')]}),
    chunk({"tool_calls": [fragment(1, arguments='"Rome"}')]}),
    chunk({}, "tool_calls"),
    chunk(usage=USAGE),
]


def test_text_then_two_parallel_calls(openapi: OpenApiSchemas) -> None:
    translator, frames = run(TEXT_THEN_TWO_CALLS, tools=[WEATHER])
    events = check_events(frames, openapi)
    assert outline(events) == [
        ("response.created",),
        ("response.in_progress",),
        ("response.output_item.added", 0),
        ("response.content_part.added", 0),
        ("response.output_text.delta", 0, "Let me check both."),
        ("response.output_text.done", 0),
        ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.function_call_arguments.delta", 1, '{"ci'),
        ("response.function_call_arguments.delta", 1, 'ty":"Paris"}'),
        ("response.function_call_arguments.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.function_call_arguments.delta", 2, '{"city":'),
        ("response.function_call_arguments.delta", 2, '"Rome"}'),
        ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2),
        ("response.completed",),
    ]
    assert events[8]["item"] == {
        "id": "fc_s_1",
        "type": "function_call",
        "status": "in_progress",
        "call_id": "call_a",
        "name": "get_weather",
        "arguments": "",
    }
    assert events[11] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": 11,
        "item_id": "fc_s_1",
        "output_index": 1,
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    whole = completion(
        {
            "content": "Let me check both.",
            "tool_calls": [chat_call("call_a"), chat_call("call_b", arguments='{"city":"Rome"}')],
        },
        "tool_calls",
        usage=USAGE,
    )
    assert translator.completed_response() == from_chat_completion(
        whole, request=translator.request, response_id="resp_s"
    )
    _, final = through_sdk(frames)
    assert final is not None
    assert [(item.type, getattr(item, "call_id", None)) for item in final.output] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call", "call_b"),
    ]
    # What the store keeps for previous_response_id is what the whole answer would give.
    chat = to_chat_request(translator.request)
    assert history_messages(chat, translator.completion()) == history_messages(chat, whole)


def test_fragments_without_index_follow_the_last_call_and_a_late_name_delays_the_item(
    openapi: OpenApiSchemas,
) -> None:
    # iFlow's CLI keys fragments by id, or by the last id seen when a fragment has none.
    _, frames = run(
        [
            chunk({"tool_calls": [fragment(None, "call_a")]}),
            chunk({"tool_calls": [fragment(None, arguments='{"city"')]}),
            chunk({"tool_calls": [fragment(None, name="get_weather", arguments=':"Paris"}')]}),
            chunk({"tool_calls": [fragment(None, "call_b", "get_time", "{}")]}),
            # Two calls at the same index with different ids (as some upstreams send) are two calls.
            chunk({"tool_calls": [fragment(0, "call_c", "get_time", "")]}),
            chunk({"tool_calls": [fragment(0, "call_d", "get_time", "{}")]}),
            chunk({}, "tool_calls"),
        ],
        tools=[WEATHER, TIME],
    )
    events = check_events(frames, openapi)
    assert outline(events)[2:5] == [
        ("response.output_item.added", 0),
        ("response.function_call_arguments.delta", 0, '{"city":"Paris"}'),
        ("response.function_call_arguments.done", 0),
    ]
    done = [event["item"] for event in events if event["type"] == "response.output_item.done"]
    assert [(item["call_id"], item["name"], item["arguments"]) for item in done] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", "{}"),
        ("call_c", "get_time", ""),
        ("call_d", "get_time", "{}"),
    ]
    through_sdk(frames)


def test_a_call_without_id_or_name_is_still_one_item(openapi: OpenApiSchemas) -> None:
    _, frames = run([chunk({"tool_calls": [fragment(0, arguments="{}")]}), chunk({}, "tool_calls")])
    events = check_events(frames, openapi)
    assert outline(events)[2:6] == [
        ("response.output_item.added", 0),
        ("response.function_call_arguments.delta", 0, "{}"),
        ("response.function_call_arguments.done", 0),
        ("response.output_item.done", 0),
    ]
    assert events[-1]["response"]["output"][0]["call_id"] == "call_0"


def test_cut_off_by_max_tokens(openapi: OpenApiSchemas) -> None:
    translator, frames = run(
        [chunk({"reasoning_content": "Hmm"}), chunk({"content": "Once upon a"}), chunk({}, "length")],
        max_output_tokens=16,
    )
    events = check_events(frames, openapi)
    assert [event["type"] for event in events][-2:] == ["response.output_item.done", "response.incomplete"]
    final = events[-1]["response"]
    assert (final["status"], final["incomplete_details"], final["max_output_tokens"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
        16,
    )
    assert [item["status"] for item in final["output"]] == ["completed", "incomplete"]
    whole = completion({"content": "Once upon a", "reasoning_content": "Hmm"}, "length")
    assert final == from_chat_completion(whole, request=translator.request, response_id="resp_s")
    check_response(final, openapi)
    sdk_events, _ = through_sdk(frames)
    assert sdk_events[-1].type == "response.incomplete"


def test_an_empty_answer_is_an_empty_message(openapi: OpenApiSchemas) -> None:
    _, frames = run([chunk({"role": "assistant", "content": ""}), chunk({}, "stop")])
    events = check_events(frames, openapi)
    assert [event["type"] for event in events[2:]] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    _, final = through_sdk(frames)
    assert final is not None and final.output_text == ""


def test_an_error_mid_stream_fails_the_response(openapi: OpenApiSchemas) -> None:
    translator = StreamTranslator(request=request(input="hi"), response_id="resp_e", created_at=1)
    frames = translator.feed(chunk({"content": "Hal"}))  # feed opens the response itself
    frames += translator.error(UpstreamError("The upstream stream broke off before it was complete."))
    events = check_events(frames, openapi)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "error",
        "response.failed",
    ]
    assert events[-2] == {
        "type": "error",
        "sequence_number": 5,
        "code": "upstream_error",
        "message": "The upstream stream broke off before it was complete.",
        "param": None,
    }
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "server_error",
        "message": "The upstream stream broke off before it was complete.",
    }
    assert failed["output"] == [
        {
            "id": "msg_e_0",
            "type": "message",
            "role": "assistant",
            "status": "incomplete",
            "content": [{"type": "output_text", "text": "Hal", "annotations": [], "logprobs": []}],
        }
    ]
    assert translator.completed_response() == failed
    check_response(failed, openapi)
    assert (
        translator.feed(chunk({"content": "x"}))
        == translator.finish()
        == translator.error(UpstreamError("again"))
        == []
    )
    sdk_events, _ = through_sdk(frames)
    assert [event.type for event in sdk_events][-2:] == ["error", "response.failed"]


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            UpstreamRateLimited("Rate limited.", retry_after=7.4),
            "rate_limit_exceeded",
            "Rate limited. Please try again in 7s.",
        ),
        (InvalidRequest("Bad tool."), "invalid_prompt", "Bad tool."),
        # Outside the schema's list, but what OpenAI sends and Codex compacts its context on.
        (ContextTooLong("Too long."), "context_length_exceeded", "Too long."),
    ],
)
def test_failure_codes_clients_act_on(error: GatewayError, code: str, message: str) -> None:
    translator = StreamTranslator(request=request(input="hi"), response_id="resp_e", created_at=1)
    events = decode(translator.error(error))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]
    assert events[-1]["response"]["error"] == {"code": code, "message": message}
    assert events[-1]["response"]["output"] == []


def test_start_once_and_chunks_without_choices() -> None:
    translator = StreamTranslator(request=request(input="hi"), response_id="resp_x", created_at=1)
    # The first feed opens the response (and this chunk adds nothing to it); no later call again.
    opening = translator.feed(chunk(usage={}))
    assert [event["type"] for event in decode(opening)] == ["response.created", "response.in_progress"]
    assert translator.feed(chunk(usage={})) == []
    assert translator.feed({"choices": [{"index": 1, "delta": {"content": "other choice"}}]}) == []
    assert translator.completed_response()["status"] == "in_progress"


def test_a_whole_response_through_the_sdk() -> None:
    body = orjson.dumps(
        from_chat_completion(
            completion(
                {"content": "Hi!", "reasoning_content": REASONING, "tool_calls": [chat_call("call_a")]},
                "tool_calls",
                USAGE,
            ),
            request=request(input="hi", tools=[WEATHER]),
            response_id="resp_w",
        )
    )

    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    with (
        httpx2.Client(transport=httpx2.MockTransport(answer)) as http,
        OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", http_client=http) as client,
    ):
        response = client.responses.create(model=MODEL, input="hi")
    assert response.output_text == "Hi!"
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
