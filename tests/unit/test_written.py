"""A conversation written once: the upstream gets the same bytes whether a request's arrays were
spliced in from the client's JSON (``written.WrittenList``) or written again, and a change to an
array always reaches the upstream."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from iflow2api.auth.credentials import Account
from iflow2api.dialects.openai_chat.request import parse_request
from iflow2api.providers.base import Profile
from iflow2api.providers.generic import Generic
from iflow2api.providers.iflow import Iflow
from iflow2api.written import WrittenList, dumps

CONVERSATION: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": 'Be brief. \u00e9\u4e2d\U0001f600 "quoted" \\ back'},
        {"role": "user", "content": [{"type": "text", "text": "Look at this"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"p": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "x" * 5000},
        {"role": "user", "content": "and now?"},
    ],
    "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}],
    "stop": ["END"],
    "max_tokens": 100,
    "temperature": 0.5,
}

SPEAKERS: dict[str, tuple[Profile, Account]] = {
    "iflow": (
        Iflow(thinking_default=True),
        Account("iflow", "api-key", "http://up", "sk-iflow-0123456789"),
    ),
    "openai-compatible": (
        Generic(),
        Account("openai-compatible", "openai-compatible", "http://up", "sk-oc-0123456789"),
    ),
}
MODELS = ["glm-4.7", "glm-5", "deepseek-v3.2", "kimi-k2.5", "qwen3-coder-plus", "minimax-m2"]


def parsed(model: str, **extra: Any) -> dict[str, Any]:
    return parse_request(orjson.dumps({**CONVERSATION, "model": model, **extra}))


def plain(request: dict[str, Any]) -> dict[str, Any]:
    """The same request with every array a plain list: nothing to splice."""
    result: dict[str, Any] = orjson.loads(orjson.dumps(request))
    return result


def test_the_parsed_arrays_keep_their_json() -> None:
    request = parsed("glm-4.7")
    for name in ("messages", "tools", "stop"):
        assert isinstance(request[name], WrittenList)
        assert request[name].json == orjson.dumps(request[name])


@pytest.mark.parametrize("kind", sorted(SPEAKERS))
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_spliced_and_written_bodies_are_the_same_bytes(kind: str, model: str, stream: bool) -> None:
    speaker, account = SPEAKERS[kind]
    request = parsed(model, stream=stream)
    spliced = speaker.prepare(account, request).body
    written = speaker.prepare(account, plain(request)).body
    # The iFlow body carries nothing random, so the two must match to the byte.
    assert spliced == written


MUTATIONS: dict[str, Callable[[list[Any]], object]] = {
    "append": lambda items: items.append({"role": "user", "content": "more"}),
    "extend": lambda items: items.extend([{"role": "user", "content": "more"}]),
    "insert": lambda items: items.insert(0, {"role": "system", "content": "first"}),
    "setitem": lambda items: items.__setitem__(-1, {"role": "user", "content": "changed"}),
    "slice": lambda items: items.__setitem__(slice(0, 1), []),
    "delitem": lambda items: items.__delitem__(0),
    "pop": lambda items: items.pop(),
    "remove": lambda items: items.remove(items[0]),
    "reverse": lambda items: items.reverse(),
    "sort": lambda items: items.sort(key=lambda message: message["role"]),
    "iadd": lambda items: items.__iadd__([{"role": "user", "content": "more"}]),
    "imul": lambda items: items.__imul__(2),
    "clear": lambda items: items.clear(),
}


@pytest.mark.parametrize("how", sorted(MUTATIONS))
def test_an_array_changed_in_place_is_written_as_it_is_now(how: str) -> None:
    request = parsed("glm-4.7")
    expected = copy.deepcopy(list(request["messages"]))
    MUTATIONS[how](expected)
    MUTATIONS[how](request["messages"])
    assert request["messages"].json is None
    assert orjson.loads(dumps(request))["messages"] == expected


def test_a_replaced_array_is_written_as_it_is_now() -> None:
    request = parsed("glm-4.7")
    restored = [*request["messages"][:2], {**request["messages"][2], "reasoning_content": "why"}]
    body = orjson.loads(dumps({**request, "messages": restored}))
    assert body["messages"][2]["reasoning_content"] == "why"
