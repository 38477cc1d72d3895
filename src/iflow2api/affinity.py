"""Which conversation a request belongs to, for session affinity.

A client that names its session says so in a header (Codex sends ``session_id``; others
``x-session-id`` or ``conversation_id``). Otherwise a conversation is recognised by how it began:
its system prompt and first user message, which every later turn repeats. Every dialect is
translated to Chat Completions first, so this one function serves all three.

>>> a = session_key({"headers": []}, {"messages": [{"role": "user", "content": "Hi"}]})
>>> b = session_key({"headers": []}, {"messages": [{"role": "user", "content": "Hi"},
...     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "More"}]})
>>> a == b
True
"""

from __future__ import annotations

import hashlib
from typing import Any

from iflow2api.asgi import Scope, header
from iflow2api.dialects.openai_chat.request import content_text

_SESSION_HEADERS = (b"session_id", b"x-session-id", b"conversation_id", b"x-conversation-id")


def session_key(scope: Scope, request: dict[str, Any]) -> str | None:
    for name in _SESSION_HEADERS:
        value = header(scope, name)
        if value:
            return "h:" + hashlib.sha256(value).hexdigest()[:32]
    opening: list[str] = []
    for message in request.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            opening.append(content_text(message.get("content")))
        elif role == "user":
            opening.append(content_text(message.get("content")))
            break
    if not opening:
        return None
    return "m:" + hashlib.sha256("\x00".join(opening).encode()).hexdigest()[:32]
