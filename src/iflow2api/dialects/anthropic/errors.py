"""Errors as Anthropic reports them: its status codes and ``error.type`` words."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import orjson

from iflow2api.dialects.anthropic.wire import ErrorBody, ErrorDetail
from iflow2api.errors import GatewayError, UpstreamError
from iflow2api.redact import redact

_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
)


def error_status(error: GatewayError) -> int:
    """Anthropic's status for ``error``: ours, except that server-side trouble is 500, 504 or 529.

    An upstream failure worth retrying (a busy model, no connection) is 529 ``overloaded_error``;
    a timeout stays 504 ``timeout_error``; anything else on our side or upstream is 500 ``api_error``.
    Client errors keep their status (405 too, as ``invalid_request_error``).
    """
    status = error.status
    if status < 500 or status == 504:
        return status
    return 529 if isinstance(error, UpstreamError) and error.retryable else 500


def error_detail(error: GatewayError) -> ErrorDetail:
    """The ``error`` object of a body or of a stream's ``error`` event."""
    status = error_status(error)
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": kind, "message": redact(error.message)}  # redact: the last line of defence


def error_body(error: GatewayError) -> bytes:
    body: ErrorBody = {"type": "error", "error": error_detail(error)}
    return orjson.dumps(body)
