"""How to speak to each kind of upstream: what to send, and how to read what comes back.

A speaker is pure: it turns the client's request into bytes and headers, and upstream failures into
errors from ``iflow2api.errors``. Sending is ``upstream.client``'s job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from iflow2api import catalogue, written
from iflow2api.auth.credentials import Account
from iflow2api.errors import GatewayError
from iflow2api.upstream import iflow, openai_compatible


@dataclass(frozen=True, slots=True)
class Outgoing:
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool


class Speaker(Protocol):
    def prepare(self, account: Account, request: dict[str, Any]) -> Outgoing: ...

    def business_error(self, payload: object) -> GatewayError | None:
        """The error a 200 answer or stream chunk stands for, if it is one."""

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError: ...


def uuid4() -> str:
    """A random UUID v4 as text, like ``str(uuid.uuid4())`` at a third of the cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iflow_model_ids() -> list[str]:
    return [model.id for model in catalogue.IFLOW_MODELS if not model.hidden]


class IflowSpeaker:
    """Speaks exactly what the iFlow CLI speaks (protocol §2, §3, §7)."""

    def __init__(self, *, thinking_default: bool) -> None:
        self.thinking_default = thinking_default
        # The CLI keeps one session id for its whole run, and so do we for the gateway's.
        self.session_id = iflow.new_session_id()
        self._models = iflow_model_ids()

    def prepare(self, account: Account, request: dict[str, Any]) -> Outgoing:
        body = iflow.build_body(request, thinking_default=self.thinking_default)
        # A new conversation id per request, as the CLI's interactive mode sets one per prompt.
        headers = iflow.build_headers(account.api_key, self.session_id, uuid4(), int(time.time() * 1000))
        return Outgoing(
            account.base_url + "/chat/completions", headers, written.dumps(body), bool(body.get("stream"))
        )

    def business_error(self, payload: object) -> GatewayError | None:
        # iFlow's own codes first: its table knows blocked, expired and busy accounts.
        return iflow.business_error(payload, available_models=self._models)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return iflow.http_error(
            status, body, trace_id, available_models=self._models, retry_after=retry_after
        )


class OpenAICompatibleSpeaker:
    """A plain OpenAI request with none of iFlow's headers; the client's body as it came."""

    def prepare(self, account: Account, request: dict[str, Any]) -> Outgoing:
        body = openai_compatible.build_body(request)
        return Outgoing(
            account.base_url + "/chat/completions",
            openai_compatible.build_headers(account.api_key),
            written.dumps(body),
            bool(body.get("stream")),
        )

    def business_error(self, payload: object) -> GatewayError | None:
        return openai_compatible.business_error(payload)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return openai_compatible.http_error(status, body, retry_after=retry_after)
