"""Errors in a Responses exchange: before a stream, the Chat Completions body; in a stream, the
``response.error`` of a failed Response."""

from __future__ import annotations

from iflow2api.dialects.openai_chat import errors as chat_errors
from iflow2api.dialects.responses.wire import ResponseError
from iflow2api.errors import ContextTooLong, GatewayError, InvalidRequest, RateLimited
from iflow2api.redact import redact


def error_body(error: GatewayError) -> bytes:
    """The body for a request that fails before a stream starts: the same as for chat."""
    return chat_errors.error_body(error)


def response_error(error: GatewayError) -> ResponseError:
    """``response.error`` with the codes Codex acts on: compact (``context_length_exceeded``, which
    OpenAI sends though its schema does not list it), wait, give up, or retry (``server_error``)."""
    message, code = redact(error.message), "server_error"
    if isinstance(error, ContextTooLong):
        code = "context_length_exceeded"
    elif isinstance(error, RateLimited):
        code = "rate_limit_exceeded"
        if error.retry_after is not None:  # the words Codex looks for to know how long to wait
            message += f" Please try again in {max(1, round(error.retry_after))}s."
    elif isinstance(error, InvalidRequest):
        code = "invalid_prompt"
    return {"code": code, "message": message}
