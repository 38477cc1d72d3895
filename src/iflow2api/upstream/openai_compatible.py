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
    return request


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


def http_error(status: int, body: bytes, *, retry_after: float | None = None) -> GatewayError:
    error = _upstream_error(body)
    # Masked: an upstream may quote back the key it was sent ("Incorrect API key provided: ...").
    message = redact(str(error.get("message") or body[:300].decode("utf-8", "replace") or f"HTTP {status}"))
    code = redact(error["code"]) if isinstance(error.get("code"), str) else None
    param = redact(error["param"]) if isinstance(error.get("param"), str) else error.get("param")
    prefix = f"Upstream answered {status}: "
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


def business_error(payload: object) -> GatewayError | None:
    """An error object where a completion should be (some servers answer 200 with one)."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict | str):
        message = str(_upstream_error(orjson.dumps(payload)).get("message"))
        return UpstreamError("Upstream error: " + redact(message))
    return None


def model_ids(payload: object) -> list[str] | None:
    """Ids from an OpenAI ``/models`` answer, or None when it is not one."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return None
    return [item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
