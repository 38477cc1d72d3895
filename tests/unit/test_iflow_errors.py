"""§7.3: what iFlow's failures become."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    UpstreamAuthError,
    UpstreamConcurrencyLimited,
    UpstreamError,
    UpstreamModelError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from iflow2api.providers.iflow import Iflow
from iflow2api.providers.iflow.rules import business_error, http_error

MODELS = ["glm-4.7", "glm-5", "kimi-k2.5"]
BLOCKED = "Access to the current AK has been blocked due to unauthorized requests"
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}

# §7.3 B: (id, 2xx JSON body, error class, error code, text the message must contain)
BUSINESS: list[tuple[str, dict[str, Any], type[GatewayError], str, str]] = [
    (
        "434 blocked (verbatim)",
        {"status": "434", "msg": BLOCKED, "body": None},
        AccountBlocked,
        "account_blocked",
        BLOCKED,
    ),
    (
        "438 blocked (verbatim)",
        {"status": "438", "msg": BLOCKED, "body": None},
        AccountBlocked,
        "account_blocked",
        BLOCKED,
    ),
    ("438 without the word", {"status": "438", "msg": "denied"}, AccountBlocked, "account_blocked", "denied"),
    (
        "434 as a string",
        {"status": "434", "msg": "bad key", "body": None},
        UpstreamAuthError,
        "invalid_api_key",
        "bad key",
    ),
    ("434 as a number", {"status": 434, "msg": "x"}, UpstreamAuthError, "invalid_api_key", "iFlow 434"),
    (
        "invalid apiKey in msg",
        {"msg": "invalid apiKey"},
        UpstreamAuthError,
        "invalid_api_key",
        "invalid apiKey",
    ),
    (
        "Invalid apiKey in msg",
        {"status": "500", "msg": "Invalid apiKey!"},
        UpstreamAuthError,
        "invalid_api_key",
        "Invalid apiKey!",
    ),
    ("439 status", {"status": "439", "msg": "token expired"}, UpstreamAuthError, "api_key_expired", "7 days"),
    ("439 error_code", {"error_code": 439}, UpstreamAuthError, "api_key_expired", "log in"),
    (
        "435",
        {"status": "435", "msg": "model not support"},
        ModelNotFound,
        "model_not_found",
        "glm-4.7, glm-5, kimi-k2.5",
    ),
    ("435 as a number", {"status": 435}, ModelNotFound, "model_not_found", "iFlow 435"),
    (
        "429 status",
        {"status": "429", "msg": "slow down"},
        UpstreamRateLimited,
        "rate_limit_exceeded",
        "slow down",
    ),
    ("429 error_code", {"error_code": 429}, UpstreamRateLimited, "rate_limit_exceeded", "iFlow 429"),
    ("8211 error_code", {"error_code": 8211}, UpstreamRateLimited, "rate_limit_exceeded", "iFlow 8211"),
    (
        "449 (verbatim)",
        {"status": "449", "msg": "You exceeded your current rate limit", "body": None},
        UpstreamConcurrencyLimited,
        "concurrency_limit_exceeded",
        "You exceeded your current rate limit",
    ),
    (
        "449 error_code",
        {"error_code": 449},
        UpstreamConcurrencyLimited,
        "concurrency_limit_exceeded",
        "one request",
    ),
    ("511 error_code", {"error_code": 511}, ContextTooLong, "context_length_exceeded", "context window"),
    ("413 error_code", {"error_code": 413}, ContextTooLong, "context_length_exceeded", "iFlow 413"),
    (
        "511 status",
        {"status": "511", "msg": "too long"},
        ContextTooLong,
        "context_length_exceeded",
        "too long",
    ),
    ("514 error_code", {"error_code": 514}, UpstreamModelError, "upstream_model_error", "model error"),
    (
        "other status",
        {"status": "500", "msg": "服务异常", "body": None},
        UpstreamError,
        "upstream_error",
        "服务异常",
    ),
    (
        "other error_code",
        {"error_code": "9999", "msg": "odd"},
        UpstreamError,
        "upstream_error",
        "iFlow 9999: odd",
    ),
    (
        "an OpenAI error object",
        {"error": {"message": "status 406", "type": "invalid_request_error"}},
        UpstreamError,
        "upstream_error",
        "status 406",
    ),
    # iFlow's own code decides, even when the object also carries an error field.
    (
        "434 with an error field",
        {"status": "434", "msg": "AK has been blocked", "error": "Forbidden"},
        AccountBlocked,
        "account_blocked",
        "blocked",
    ),
    (
        "439 with an error object",
        {"status": "439", "msg": "Your API Token has expired", "error": {"message": "expired"}},
        UpstreamAuthError,
        "api_key_expired",
        "expired",
    ),
    (
        "449 with an error field",
        {"status": "449", "msg": "busy", "error": "busy"},
        UpstreamConcurrencyLimited,
        "concurrency_limit_exceeded",
        "one request at a time",
    ),
    # An OpenAI-style rate limit inside a 200 is a rate limit, for the pool to cool the account.
    (
        "an OpenAI rate-limit object",
        {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
        UpstreamRateLimited,
        "rate_limit_exceeded",
        "slow down",
    ),
]


@pytest.mark.parametrize(
    ("payload", "cls", "code", "text"), [r[1:] for r in BUSINESS], ids=[r[0] for r in BUSINESS]
)
def test_business_errors(payload: dict[str, Any], cls: type[GatewayError], code: str, text: str) -> None:
    error = business_error(payload, available_models=MODELS)
    assert type(error) is cls
    assert error.code == code
    assert text.lower() in error.message.lower()


def test_concurrency_limit_asks_for_a_retry_in_a_second() -> None:
    error = business_error({"status": "449", "msg": "busy"}, available_models=MODELS)
    assert error is not None and error.retry_after == 1


def test_rate_limits_ask_for_the_clis_first_retry_delay() -> None:
    error = business_error({"error_code": 8211}, available_models=MODELS)
    assert error is not None and error.retry_after == 10


def test_model_not_found_names_the_parameter() -> None:
    error = business_error({"status": "435"}, available_models=MODELS)
    assert error is not None and error.param == "model"


NOT_ERRORS: list[tuple[str, object]] = [
    ("a completion", COMPLETION),
    (
        "a stream chunk",
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]},
    ),
    ("a usage-only chunk", {"object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 3}}),
    ("a completion with an odd status", {**COMPLETION, "status": "weird"}),
    ("success status", {"status": "200", "msg": "success"}),
    ("success number", {"status": 200}),
    ("zero error_code", {"error_code": 0, "choices": []}),
    ("null fields", {"status": None, "error_code": None, "msg": None, "error": None}),
    ("a list", [1, 2]),
    ("a string", "status 434"),
    ("null", None),
]


@pytest.mark.parametrize("payload", [r[1] for r in NOT_ERRORS], ids=[r[0] for r in NOT_ERRORS])
def test_normal_bodies_are_not_errors(payload: object) -> None:
    assert business_error(payload, available_models=MODELS) is None


def body(value: object) -> bytes:
    return orjson.dumps(value)


SPRING_404 = body(
    {
        "timestamp": "2025-11-18T13:47:40.084+00:00",
        "status": 404,
        "error": "Not Found",
        "path": "/v1/chat/completions/v1/messages",
    }
)

# §7.3 A: (id, HTTP status, body, error class, HTTP status shown, text the message must contain)
HTTP: list[tuple[str, int, bytes, type[GatewayError], int, str]] = [
    ("511", 511, b"", ContextTooLong, 400, "context window"),
    ("514", 514, b"", UpstreamModelError, 502, "model error"),
    ("429", 429, b"", UpstreamRateLimited, 429, "rate limit"),
    (
        "406 (verbatim)",
        406,
        body({"error": {"message": "status 406", "type": "invalid_request_error"}}),
        UpstreamRejected,
        502,
        "signature",
    ),
    ("401", 401, b"Unauthorized", UpstreamAuthError, 401, "Unauthorized"),
    (
        "403 (CPA-fork fixture)",
        403,
        body({"error": {"message": "status 403", "type": "invalid_request_error"}}),
        UpstreamAuthError,
        401,
        "status 403",
    ),
    ("404 Spring (verbatim)", 404, SPRING_404, UpstreamError, 502, "/v1/chat/completions/v1/messages"),
    ("413", 413, b"Request Entity Too Large", ContextTooLong, 400, "Too Large"),
    (
        "500 (CPA-fork fixture)",
        500,
        body({"error": {"message": "status 500", "type": "server_error"}}),
        UpstreamError,
        502,
        "status 500",
    ),
    (
        "502 page",
        502,
        b"<html>\n<h1>502 Bad Gateway</h1>\n</html>",
        UpstreamError,
        502,
        "<h1>502 Bad Gateway</h1>",
    ),
    (
        "400",
        400,
        body({"error": {"message": "messages must not be empty"}}),
        InvalidRequest,
        400,
        "must not be empty",
    ),
    ("422 text", 422, b"unprocessable", InvalidRequest, 422, "unprocessable"),
    (
        "400 business shape",
        400,
        body({"status": "400", "msg": "bad param"}),
        InvalidRequest,
        400,
        "bad param",
    ),
    (
        "business code first",
        500,
        body({"status": "449", "msg": "busy"}),
        UpstreamConcurrencyLimited,
        429,
        "busy",
    ),
    ("blocked on a 403", 403, body({"status": "434", "msg": BLOCKED}), AccountBlocked, 403, BLOCKED),
    ("expired on a 401", 401, body({"status": "439", "msg": "expired"}), UpstreamAuthError, 401, "7 days"),
    ("302", 302, b"", UpstreamError, 502, "HTTP 302"),
]


@pytest.mark.parametrize(
    ("status", "raw", "cls", "shown", "text"), [r[1:] for r in HTTP], ids=[r[0] for r in HTTP]
)
def test_http_errors(status: int, raw: bytes, cls: type[GatewayError], shown: int, text: str) -> None:
    error = http_error(status, raw, None, available_models=MODELS)
    assert type(error) is cls
    assert error.status == shown
    assert text in error.message
    assert "trace id" not in error.message


def test_404_says_the_base_url_is_wrong() -> None:
    error = http_error(404, SPRING_404, None, available_models=MODELS)
    assert "base URL" in error.message


def test_expired_key_keeps_its_own_code_on_http_errors() -> None:
    error = http_error(401, body({"status": "439"}), None, available_models=MODELS)
    assert error.code == "api_key_expired"


@pytest.mark.parametrize("status", [511, 514, 429, 406, 401, 404, 400, 500])
def test_trace_id_is_in_the_message(status: int) -> None:
    error = http_error(status, b"", "0b12abc", available_models=MODELS)
    assert "(trace id: 0b12abc)" in error.message


def test_trace_id_on_a_business_error() -> None:
    error = http_error(500, body({"status": "435"}), "0b12abc", available_models=MODELS)
    assert type(error) is ModelNotFound
    assert "(trace id: 0b12abc)" in error.message


@pytest.mark.parametrize(
    ("status", "raw", "given", "expected"),
    [
        (429, b"", 7.0, 7.0),
        (429, b"", None, 10.0),  # the CLI's first retry delay when iFlow gives no hint
        (503, body({"status": "429"}), None, 10.0),
        (429, body({"status": "449"}), 3.0, 3.0),
        (500, body({"status": "449"}), None, 1),
        (429, body({"error_code": 8211}), 5.0, 5.0),
    ],
)
def test_retry_hints(status: int, raw: bytes, given: float | None, expected: float | None) -> None:
    error = http_error(status, raw, None, available_models=MODELS, retry_after=given)
    assert error.retry_after == expected


def test_long_bodies_are_cut() -> None:
    error = http_error(500, b"x" * 5000, None, available_models=MODELS)
    assert len(error.message) < 500


@pytest.mark.parametrize(
    ("payload", "cls", "code", "text"), [r[1:] for r in BUSINESS], ids=[r[0] for r in BUSINESS]
)
def test_the_iflow_speaker_reads_answers_the_same_way(
    payload: dict[str, Any], cls: type[GatewayError], code: str, text: str
) -> None:
    error = Iflow(thinking_default=False).business_error(payload)
    assert type(error) is cls
    assert error.code == code
