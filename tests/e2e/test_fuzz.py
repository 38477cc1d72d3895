"""Hostile client input on every POST route: wrong types, deep nesting, huge strings, non-JSON.

Whatever a client sends, the gateway answers within seconds, never with a 5xx of its own (the fake
upstream answers every request normally), and every refusal is in the route's dialect. The bodies
are a valid request per route with one part replaced by something hostile; Hypothesis picks which,
with a fixed seed (``derandomize``) so a failure is found again on the next run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iflow2api.routing import POST, ROUTES
from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import FakeIflow

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
ANTHROPIC_MESSAGES: list[Any] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": ""},
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "id": "tu_1", "name": "t", "input": {"a": "b"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "ok"}]}
        ],
    },
]
ANTHROPIC: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 16,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": ANTHROPIC_MESSAGES,
    "tools": [{"name": "t", "description": "a tool", "input_schema": SCHEMA}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "u"},
    "output_config": {"effort": "low"},
    "stop_sequences": ["STOP"],
    "temperature": 1,
    "stream": False,
}
CHAT: dict[str, Any] = {
    "model": "glm-4.7",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ],
    "tools": [{"type": "function", "function": {"name": "t", "parameters": SCHEMA}}],
    "tool_choice": "auto",
    "max_tokens": 16,
    "stop": ["STOP"],
    "stream": False,
    "reasoning_effort": "low",
}
RESPONSES: dict[str, Any] = {
    "model": "glm-4.7",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "t", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ],
    "tools": [{"type": "function", "name": "t", "parameters": SCHEMA}],
    "tool_choice": "auto",
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "text"}},
    "max_output_tokens": 16,
    "metadata": {"a": "b"},
    "stream": False,
}
COUNT_TOKENS = {k: v for k, v in ANTHROPIC.items() if k not in ("max_tokens", "stream")}

#: A valid body for each POST route a client may call, and whose error shape it answers in.
BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "/v1/chat/completions": (CHAT, "openai"),
    "/v1/responses": (RESPONSES, "openai"),
    "/v1/messages": (ANTHROPIC, "anthropic"),
    "/v1/messages/count_tokens": (COUNT_TOKENS, "anthropic"),
}


class RawJSON(bytes):
    """JSON text to send as it is (a value nested deeper than any encoder would write)."""


def nested(depth: int) -> RawJSON:
    opening = b"".join(b"[" if level % 2 else b'{"k":' for level in range(depth))
    closing = b"".join(b"]" if level % 2 else b"}" for level in reversed(range(depth)))
    return RawJSON(opening + b'"x"' + closing)


HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**64,
    -(10**400),
    1e308,
    "",
    " ",
    [],
    {},
    [[[]]],
    {"type": []},
    {"type": {}},
    ["😀"],
    "😀",
    "\u0000",
    "\udbff",
    "x" * 300_000,
    ["x" * 300_000],
    nested(100),
    nested(253),
    nested(254),
    nested(255),
    nested(600),
]
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    JSON_LEAVES,
    st.recursive(
        JSON_LEAVES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    ),
)
#: Keys worth adding where they are not (a role or type where the schema has none, etc.).
EXTRA_KEYS = ["type", "role", "content", "required", "name", "input_schema", "model", "text", "source"]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``value`` a hostile value could go, including keys it does not have yet."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
        for key in EXTRA_KEYS:
            if key not in value:
                yield (*prefix, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def replaced(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def encoded(value: Any) -> bytes:
    """JSON as a client could send it, even where orjson would refuse to write it (too deep,
    lone surrogates)."""
    if isinstance(value, RawJSON):
        return value
    if isinstance(value, dict):
        return b"{" + b",".join(encoded(str(k)) + b":" + encoded(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encoded(item) for item in value) + b"]"
    if isinstance(value, str):
        return orjson.dumps(value.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()  # JSON has no limit on integers; orjson's writer has
    return orjson.dumps(value)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, bytes]:
    route = draw(st.sampled_from(sorted(BODIES)))
    body = BODIES[route][0]
    kind = draw(st.sampled_from(["replace", "replace", "replace", "raw", "truncated"]))
    if kind == "raw":
        raw = draw(
            st.one_of(
                st.binary(max_size=64),
                st.sampled_from([b"", b"null", b"[]", b'"x"', b"{", b"\xff\xfe", b"[" * 300 + b"]" * 300]),
            )
        )
        return route, raw
    whole = encoded(body)
    if kind == "truncated":
        return route, whole[: draw(st.integers(0, len(whole) - 1))]
    path = draw(st.sampled_from(list(paths(body))))
    return route, encoded(replaced(body, path, draw(HOSTILE)))


def assert_dialect_error(response: httpx.Response, dialect: str) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.text
    payload = response.json()
    if dialect == "anthropic":
        assert payload["type"] == "error", payload
        error = payload["error"]
        assert isinstance(error["type"], str) and error["type"]
    else:
        error = payload["error"]
        assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]


def test_every_post_route_is_fuzzed() -> None:
    """A new POST route under /v1 must join the fuzzing."""
    client_routes = {
        path
        for path, route in ROUTES.items()
        if route.methods == POST and not route.web and path.startswith("/v1/")
    }
    assert client_routes == set(BODIES)


@pytest.fixture(scope="module", params=["iflow", "openai-compatible"])
def client(
    request: pytest.FixtureRequest,
    gateway_process: GatewayProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:
    """A client of a gateway in each upstream mode (their request preparation differs)."""
    if request.param == "iflow":
        yield from _client_of(gateway_process)
        return
    with FakeIflow(mode="openai", models=["glm-4.7"]) as plain:
        home = tmp_path_factory.mktemp("fuzz-home")
        write_settings(home, {**iflow_settings(plain), "selectedAuthType": "openai-compatible"})
        process = GatewayProcess(home, tmp_path_factory.mktemp("fuzz-data"))
        try:
            process.wait_for_health()
            yield from _client_of(process)
        finally:
            process.stop()


def _client_of(process: GatewayProcess) -> Iterator[httpx.Client]:
    # A few seconds is the promise; a gateway stuck on a body makes this raise ReadTimeout.
    with httpx.Client(base_url=process.url, timeout=10) as http:
        yield http


@pytest.mark.parametrize("route", sorted(BODIES))
def test_the_valid_bodies_are_served(client: httpx.Client, route: str) -> None:
    """The bodies the fuzzing starts from are valid: refusals below come from what was changed."""
    response = client.post(route, content=encoded(BODIES[route][0]))
    assert response.status_code == 200, response.text


@settings(
    derandomize=True,
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(case=cases())
def test_hostile_bodies(client: httpx.Client, case: tuple[str, bytes]) -> None:
    route, body = case
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, (route, body[:300], response.text[:500])
    if response.status_code >= 400:
        assert_dialect_error(response, BODIES[route][1])


# The probes that found 500s and a hang, each kept as a case of its own.
ROLE_LIST = replaced(CHAT, ("messages", 1, "role"), [])
ROLE_NESTED = replaced(CHAT, ("messages", 1, "role"), [[[]]])
THINKING_TYPE = replaced(ANTHROPIC, ("thinking", "type"), [])
TOOL_CHOICE_TYPE = replaced(ANTHROPIC, ("tool_choice", "type"), {})
EFFORT_LIST = replaced(ANTHROPIC, ("output_config", "effort"), ["low"])
EMOJI_REQUIRED = replaced(ANTHROPIC, ("tools", 0, "input_schema", "required"), ["😀", "ключ"])
KNOWN_CASES = [
    pytest.param("/v1/chat/completions", encoded(ROLE_LIST), 400, id="chat-role-list"),
    pytest.param("/v1/chat/completions", encoded(ROLE_NESTED), 400, id="chat-role-nested"),
    pytest.param("/v1/messages", encoded(THINKING_TYPE), 400, id="messages-thinking-type"),
    pytest.param("/v1/messages", encoded(TOOL_CHOICE_TYPE), 400, id="messages-tool-choice-type"),
    pytest.param("/v1/messages", encoded(EFFORT_LIST), 400, id="messages-effort-list"),
    pytest.param("/v1/messages/count_tokens", encoded(TOOL_CHOICE_TYPE), 400, id="count-tool-choice-type"),
    pytest.param("/v1/messages", encoded(EMOJI_REQUIRED), 200, id="messages-emoji-required"),
    pytest.param("/v1/messages/count_tokens", b"not json", 400, id="count-not-json"),
    pytest.param("/v1/messages/count_tokens", b"", 400, id="count-empty"),
    *(
        pytest.param(route, encoded(replaced(body, ("extra",), nested(depth))), 400, id=f"{route}-{depth}")
        for route, (body, _) in BODIES.items()
        for depth in (254, 1100)
    ),
    *(
        pytest.param(route, encoded(replaced(body, ("model",), "a" * 300_000)), 400, id=f"{route}-long-model")
        for route, (body, _) in BODIES.items()
    ),
    pytest.param(
        "/v1/responses",
        encoded(replaced(BODIES["/v1/responses"][0], ("previous_response_id",), "r" * 4_000_000)),
        400,
        id="responses-long-previous-id",
    ),
]


@pytest.mark.parametrize(("route", "body", "status"), KNOWN_CASES)
def test_known_hostile_bodies(client: httpx.Client, route: str, body: bytes, status: int) -> None:
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text[:500]
    assert len(response.content) < 10_000  # a client's huge string is never echoed back whole
    if status >= 400:
        assert_dialect_error(response, BODIES[route][1])


def test_a_long_model_id_in_the_path_is_a_short_404(client: httpx.Client) -> None:
    response = client.get("/v1/models/" + "m" * 50_000)
    assert response.status_code == 404
    assert len(response.json()["error"]["message"]) < 1_000
