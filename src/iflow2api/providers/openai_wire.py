"""A plain OpenAI-compatible upstream, as the iFlow CLI's ``openai-compatible`` mode uses one.

It gets the client's request as it came (none of iFlow's headers or body rules), and its errors are
already in OpenAI's shape, so mapping them is mostly a matter of keeping the status.
"""

from __future__ import annotations

from typing import Any

import orjson

from iflow2api import __version__
from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
)
from iflow2api.redact import redact


def build_headers(api_key: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "authorization": f"Bearer {api_key}",
        "user-agent": f"iflow2api/{__version__}",
    }


def build_body(request: dict[str, Any]) -> dict[str, Any]:
    """The client's request as it came, except that a stream always asks for its usage: the
    gateway records it and counts it against key limits whether or not the client wants to see it
    (it is taken out again on the way back)."""
    if request.get("stream") is not True:
        return request
    options = request.get("stream_options")
    return {
        **request,
        "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True},
    }


def _upstream_error(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    return {}


def http_error(
    status: int, body: bytes, *, retry_after: float | None = None, prefix: str | None = None
) -> GatewayError:
    error = _http_error(status, body, retry_after, prefix)
    if retry_after is not None and status in (429, 503):
        error.asked_to_wait(retry_after)  # the upstream's own word on when to come back
    return error


def _http_error(status: int, body: bytes, retry_after: float | None, prefix: str | None) -> GatewayError:
    error = _upstream_error(body)
    # Masked: an upstream may quote back the key it was sent ("Incorrect API key provided: ...").
    message = redact(str(error.get("message") or body[:300].decode("utf-8", "replace") or f"HTTP {status}"))
    code = redact(error["code"]) if isinstance(error.get("code"), str) else None
    param = redact(error["param"]) if isinstance(error.get("param"), str) else error.get("param")
    prefix = f"Upstream answered {status}: " if prefix is None else prefix
    if status == 401:
        return UpstreamAuthError(prefix + message + " Check the apiKey in the iFlow settings.")
    if status == 403:
        return AccountBlocked(prefix + message, code="permission_denied")
    if status == 404 and code == "model_not_found":
        return ModelNotFound(prefix + message)
    if status == 429:
        # Without the upstream's own hint, the iFlow CLI's first retry delay (protocol §7.3 D).
        return UpstreamRateLimited(prefix + message, retry_after=10.0 if retry_after is None else retry_after)
    if code == "context_length_exceeded":
        return ContextTooLong(prefix + message)
    if status == 404:
        return UpstreamError(prefix + message + " Check baseUrl in the iFlow settings.")
    if 400 <= status < 500:
        return InvalidRequest(prefix + message, code=code, param=param, status=status)
    return UpstreamError(prefix + message)


# The HTTP status an error object sent inside a 200 (a stream's chunk) stands for, by its code or
# type: OpenAI's names, and Anthropic's where a server borrowed them.
_STATUS_OF = {
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "too_many_requests": 429,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_denied": 403,
    "permission_error": 403,
    "model_not_found": 404,
    "not_found_error": 404,
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
    "overloaded_error": 503,
    "server_error": 500,
    "api_error": 500,
}


def business_error(payload: object) -> GatewayError | None:
    """The error an OpenAI-style ``{"error": {...}}`` sent with a 200 (a whole answer or a stream
    chunk) stands for, classified like the HTTP error it would have been (a rate limit cools the
    account, as a 429 does). A body with choices is an answer, whatever else it carries.

    >>> type(business_error({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})).__name__
    'UpstreamRateLimited'
    """
    if (
        not isinstance(payload, dict)
        or "choices" in payload
        or not isinstance(payload.get("error"), dict | str)
        or not payload["error"]
    ):
        return None
    error = _upstream_error(orjson.dumps(payload))
    status = 500
    for name in ("code", "type", "status"):
        value = error.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            status = value
            break
        if isinstance(value, str) and value.isdigit() and 400 <= int(value) <= 599:
            status = int(value)
            break
        if isinstance(value, str) and value in _STATUS_OF:
            status = _STATUS_OF[value]
            break
    return http_error(status, orjson.dumps(payload), prefix="The upstream reported an error in its answer: ")


def model_ids(payload: object) -> list[str] | None:
    """Ids from an OpenAI ``/models`` answer, or None when it is not one."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return None
    return [item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
