"""What the page's JSON API asks of every request body (``routes/web.py`` and ``routes/manage.py``)."""

from __future__ import annotations

from typing import Any

import orjson

from iflow2api.asgi import Receive, Scope, header, read_body
from iflow2api.errors import InvalidRequest

#: Small JSON bodies only: a login code, a mode, a key's limits.
MAX_API_BODY = 16 * 1024


async def json_body(scope: Scope, receive: Receive) -> dict[str, Any]:
    """The request's JSON object; anything else (another content type, bad JSON) is refused."""
    # A JSON content type cannot be sent cross-site without a CORS preflight, which we never grant
    # with credentials: that is what keeps another site from driving these endpoints.
    content_type = header(scope, b"content-type") or b""
    if not content_type.startswith(b"application/json"):
        raise InvalidRequest("Send JSON (content-type: application/json).")
    body = await read_body(scope, receive, MAX_API_BODY)
    try:
        payload = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload
