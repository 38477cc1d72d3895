"""What the gateway answers, validated against OpenAI's published shapes.

The shapes are written down in the repo (``tests/openai_shapes.py``, from OpenAI's API reference;
``tests/openapi_schema.py`` turns them into validators), so this module always runs; where the
OpenAI SDK has a type for the same shape (generated from OpenAI's own OpenAPI document), the body
must pass it too, strictly. Every body is
checked against ``#/components/schemas/<name>``: a failure lists each field that breaks a rule and
where that rule is in the document. Extra fields (``reasoning_content``, a model's ``name``) are
fine: as in OpenAI's reference, no schema says ``additionalProperties: false``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess
from tests.fake_iflow import BusinessError, Completion, FakeIflow, JsonOnStream, Reply
from tests.openapi_schema import OpenApiSchemas, load

CHAT: dict[str, Any] = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
WEATHER_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
WITH_TOOLS: dict[str, Any] = {**CHAT, "tools": TOOLS}


@pytest.fixture(scope="session")
def openapi() -> OpenApiSchemas:
    return load()


def post(gateway: GatewayProcess, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
    url = gateway.url + "/v1/chat/completions"
    if content is not None:
        return httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=20)
    return httpx.post(url, json=body, timeout=20)


def json_body(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


def stream_chunks(gateway: GatewayProcess, body: dict[str, Any]) -> list[Any]:
    """The JSON of every ``data:`` event of a streamed answer; it must end with ``[DONE]``."""
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, timeout=20) as response:
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data:") :].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert events and events[-1] == "[DONE]", events
    return [json.loads(event) for event in events[:-1]]


# --- the validator itself ----------------------------------------------------------------------

VALID_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1_700_000_000,
    "model": "glm-4.7",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
}
VALID_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "glm-4.7",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi", "refusal": None, "reasoning_content": "hm"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def test_the_validator_accepts_openai_shaped_bodies(openapi: OpenApiSchemas) -> None:
    """``finish_reason: null`` is legal on a chunk (the ``anyOf`` with null); extra fields pass."""
    assert openapi.problems("CreateChatCompletionStreamResponse", VALID_CHUNK) == []
    assert openapi.problems("CreateChatCompletionResponse", VALID_COMPLETION) == []


@pytest.mark.parametrize(
    ("name", "body", "rule"),
    [
        pytest.param(
            "CreateChatCompletionStreamResponse",
            {**VALID_CHUNK, "choices": [{**VALID_CHUNK["choices"][0], "finish_reason": "done"}]},
            "finish_reason/anyOf/0/enum",
            id="chunk-finish-reason",
        ),
        pytest.param(
            "CreateChatCompletionStreamResponse",
            {**VALID_CHUNK, "usage": {"prompt_tokens": 1}},
            "#/components/schemas/CompletionUsage/required",
            id="chunk-usage-via-ref",
        ),
        pytest.param(
            "CreateChatCompletionResponse",
            {
                **VALID_COMPLETION,
                "choices": [{**VALID_COMPLETION["choices"][0], "message": {"role": "user"}}],
            },
            "#/components/schemas/ChatCompletionResponseMessage/properties/role/enum",
            id="completion-message-via-ref",
        ),
        pytest.param(
            "ListModelsResponse", {"object": "list", "data": [{"id": "m"}]}, "Model/required", id="model"
        ),
        pytest.param(
            "ErrorResponse", {"error": {"message": "x", "type": "y"}}, "Error/required", id="error-no-code"
        ),
    ],
)
def test_the_validator_rejects_what_breaks_the_schema(
    openapi: OpenApiSchemas, name: str, body: dict[str, Any], rule: str
) -> None:
    problems = openapi.problems(name, body)
    assert problems and any(rule in problem for problem in problems), problems


# --- 1. chat.completion ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "request_body"),
    [
        pytest.param(Completion(content="Hi there"), CHAT, id="text"),
        pytest.param(Completion(content="4", reasoning="2 plus 2 is 4"), CHAT, id="reasoning"),
        pytest.param(
            Completion(content="", tool_calls=[WEATHER_CALL], finish_reason="tool_calls"),
            WITH_TOOLS,
            id="tool-calls",
        ),
    ],
)
def test_chat_completion_conforms(
    gateway: GatewayProcess,
    fake: FakeIflow,
    openapi: OpenApiSchemas,
    reply: Completion,
    request_body: dict[str, Any],
) -> None:
    fake.enqueue(reply)
    body = json_body(post(gateway, request_body), 200)
    openapi.assert_conforms("CreateChatCompletionResponse", body)
    # The case really carries what it is named for.
    choice = body["choices"][0]
    if reply.reasoning is not None:
        assert choice["message"]["reasoning_content"] == reply.reasoning
    if reply.tool_calls:
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


# --- 2. chat.completion.chunk ------------------------------------------------------------------


EVERYTHING = Completion(
    content="Let me check",
    reasoning="The user wants the weather",
    tool_calls=[WEATHER_CALL],
    finish_reason="tool_calls",
)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(EVERYTHING, id="relayed-sse"),
        # iFlow answering a stream with one JSON body: these chunks are the gateway's own making.
        pytest.param(JsonOnStream(EVERYTHING), id="made-from-json"),
    ],
)
def test_every_stream_chunk_conforms(
    gateway: GatewayProcess, fake: FakeIflow, openapi: OpenApiSchemas, reply: Reply
) -> None:
    fake.enqueue(reply)
    request = {**WITH_TOOLS, "stream": True, "stream_options": {"include_usage": True}}
    chunks = stream_chunks(gateway, request)
    problems = [
        f"chunk {number}: {problem}"
        for number, chunk in enumerate(chunks)
        for problem in openapi.problems("CreateChatCompletionStreamResponse", chunk)
    ]
    assert not problems, "chunks that break OpenAI's CreateChatCompletionStreamResponse:\n  " + "\n  ".join(
        problems + [f"chunk {n}: {json.dumps(c)}" for n, c in enumerate(chunks)]
    )
    # The stream really had every kind of chunk.
    deltas = [choice["delta"] for chunk in chunks for choice in chunk["choices"]]
    assert any(delta.get("reasoning_content") for delta in deltas)
    assert any(delta.get("content") for delta in deltas)
    assert any(delta.get("tool_calls") for delta in deltas)
    assert [c["finish_reason"] for k in chunks for c in k["choices"] if c["finish_reason"]] == ["tool_calls"]
    assert any(chunk.get("usage") for chunk in chunks)


# --- 3. models ---------------------------------------------------------------------------------


def test_model_list_conforms(gateway: GatewayProcess, openapi: OpenApiSchemas) -> None:
    body = json_body(httpx.get(gateway.url + "/v1/models", timeout=20), 200)
    openapi.assert_conforms("ListModelsResponse", body)
    assert any(model["id"] == "glm-4.7" for model in body["data"])


def test_model_conforms(gateway: GatewayProcess, openapi: OpenApiSchemas) -> None:
    body = json_body(httpx.get(gateway.url + "/v1/models/glm-4.7", timeout=20), 200)
    openapi.assert_conforms("Model", body)
    assert body["id"] == "glm-4.7"


# --- 4. errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(json.dumps({"model": "glm-4.7"}).encode(), id="no-messages"),
        pytest.param(json.dumps({**CHAT, "max_tokens": "10"}).encode(), id="max-tokens-string"),
    ],
)
def test_bad_input_error_conforms(
    gateway: GatewayProcess, fake: FakeIflow, openapi: OpenApiSchemas, content: bytes
) -> None:
    body = json_body(post(gateway, content=content), 400)
    openapi.assert_conforms("ErrorResponse", body)
    assert fake.received == []


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        pytest.param(BusinessError(status="435", msg="Model not support"), 404, id="404-unknown-model"),
        pytest.param(BusinessError(status="449", msg="busy"), 429, id="429-busy"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_error_conforms(
    gateway: GatewayProcess, fake: FakeIflow, openapi: OpenApiSchemas, reply: Reply, status: int, stream: bool
) -> None:
    fake.enqueue(reply)
    body = json_body(post(gateway, {**CHAT, "stream": stream}), status)
    openapi.assert_conforms("ErrorResponse", body)


def test_no_credentials_error_conforms(start_gateway: Any, openapi: OpenApiSchemas) -> None:
    gateway = start_gateway(None)
    openapi.assert_conforms("ErrorResponse", json_body(post(gateway, CHAT), 401), "the chat 401")
    models = json_body(httpx.get(gateway.url + "/v1/models", timeout=20), 401)
    openapi.assert_conforms("ErrorResponse", models, "the models 401")
