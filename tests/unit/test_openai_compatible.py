"""The openai-compatible upstream: what is sent, and what an error inside a 200 stands for."""

from __future__ import annotations

from typing import Any

import pytest

from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
)
from iflow2api.providers.openai_wire import build_body, business_error

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_a_stream_always_asks_for_usage() -> None:
    assert build_body({**CHAT, "stream": True}) == {
        **CHAT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    options = {"include_usage": False, "include_obfuscation": False}
    asked = build_body({**CHAT, "stream": True, "stream_options": options})
    assert asked["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert options["include_usage"] is False  # the client's request is left as it was


def test_a_request_without_stream_is_sent_as_it_came() -> None:
    assert build_body(CHAT) is CHAT
    assert build_body({**CHAT, "stream": False}) == {**CHAT, "stream": False}


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (
            {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"},
            UpstreamRateLimited,
            429,
        ),
        ({"message": "quota", "type": "insufficient_quota"}, UpstreamRateLimited, 429),
        ({"message": "slow down", "code": 429}, UpstreamRateLimited, 429),
        ({"message": "who?", "code": "invalid_api_key"}, UpstreamAuthError, 401),
        ({"message": "no", "type": "permission_error"}, AccountBlocked, 403),
        ({"message": "long", "code": "context_length_exceeded"}, ContextTooLong, 400),
        ({"message": "bad", "type": "invalid_request_error"}, InvalidRequest, 400),
        ({"message": "oops", "type": "server_error"}, UpstreamError, 502),
        ({"message": "busy", "type": "overloaded_error"}, UpstreamError, 502),
        ("just text", UpstreamError, 502),
    ],
)
def test_an_error_inside_a_200_is_classified_like_its_http_error(
    error: Any, kind: type[GatewayError], status: int
) -> None:
    classified = business_error({"error": error})
    assert type(classified) is kind and classified.status == status
    text = error if isinstance(error, str) else error["message"]
    assert classified.message.startswith("The upstream reported an error in its answer: " + text)


@pytest.mark.parametrize(
    "payload", [{"choices": []}, {"choices": [], "error": "x"}, {"error": None}, {"error": ""}, [1], "x"]
)
def test_anything_else_is_no_error(payload: object) -> None:
    assert business_error(payload) is None
