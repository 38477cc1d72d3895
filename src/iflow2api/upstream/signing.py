"""The ``x-iflow-signature`` the iFlow CLI puts on every chat request (protocol §2).

HMAC-SHA256 over ``"<user-agent>:<session-id>:<timestamp-ms>"``, keyed by the API key, as lowercase
hex (the CLI's ``Bln``)::

    >>> sign("iFlow-Cli", "session-00000000-0000-4000-8000-000000000000", 1700000000000,
    ...      "sk-0123456789abcdef0123456789abcdef")
    '1d5a5e8d4f42711197dfd53c8c3440921c8edb2bffaffa2535f5809ffff513c1'
"""

from __future__ import annotations

import hashlib
import hmac

#: The CLI's literal user agent; it is also the first part of the signed string (§2).
USER_AGENT = "iFlow-Cli"


def sign(user_agent: str, session_id: str, timestamp_ms: int, api_key: str) -> str:
    message = f"{user_agent}:{session_id}:{timestamp_ms}"
    return hmac.new(api_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
