"""Errors in Chat Completions' words: the JSON body, and the frame that ends a started stream."""

from __future__ import annotations

import orjson

from iflow2api.errors import GatewayError
from iflow2api.redact import redact
from iflow2api.sse import frame


def error_body(error: GatewayError) -> bytes:
    # redact: the last line of defence against an upstream's words that quote a key.
    message = redact(error.message)
    return orjson.dumps(
        {"error": {"message": message, "type": error.type, "param": error.param, "code": error.code}}
    )


def error_frame(error: GatewayError) -> bytes:
    return frame(error_body(error))
