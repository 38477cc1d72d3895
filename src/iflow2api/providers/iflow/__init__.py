"""The ``iflow`` profile: iFlow exactly as the iFlow CLI 0.5.19 spoke it (``docs/protocol/iflow.md``).

iFlow shut down on 2026-04-17; the profile stays for the accounts and the protocol the original
project served. Its body rules and error table are in ``rules``, the thinking fields of each model
family in ``thinking``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from iflow2api import catalogue, written
from iflow2api.dialects.intent import Intent
from iflow2api.errors import GatewayError
from iflow2api.providers.base import Account, Outgoing, Prepared, Profile
from iflow2api.providers.iflow import rules


def uuid4() -> str:
    """A random UUID v4 as text, like ``str(uuid.uuid4())`` at a third of the cost."""
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iflow_model_ids() -> list[str]:
    return [model.id for model in catalogue.IFLOW_MODELS if not model.hidden]


class Iflow(Profile):
    """Speaks exactly what the iFlow CLI speaks (protocol §2, §3, §7)."""

    name: ClassVar[str] = "iflow"
    title: ClassVar[str] = "iFlow (shut down on 2026-04-17)"
    base_url: ClassVar[str] = "https://apis.iflow.cn/v1"  # auth.credentials.IFLOW_BASE_URL
    hosts: ClassVar[tuple[str, ...]] = ("apis.iflow.cn",)

    def __init__(
        self, *, thinking_default: bool | None = None, options: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(thinking_default=thinking_default, options=options)
        # The CLI keeps one session id for its whole run, and so do we for the gateway's.
        self.session_id = rules.new_session_id()
        self._models = iflow_model_ids()

    def prepare(self, account: Account, request: dict[str, Any], intent: Intent | None = None) -> Outgoing:
        # iFlow reads the client's reasoning_effort itself (its model families, §3.3); with none,
        # the CLI's default is to think.
        prepared = self.build_body(request, intent)
        body = prepared.body
        # A new conversation id per request, as the CLI's interactive mode sets one per prompt.
        headers = rules.build_headers(account.api_key, self.session_id, uuid4(), int(time.time() * 1000))
        return Outgoing(
            account.base_url + "/chat/completions",
            headers,
            written.dumps(body),
            bool(body.get("stream")),
            prepared.thinking,
        )

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        thinking_default = True if self.thinking_default is None else self.thinking_default
        return Prepared(rules.build_body(request, thinking_default=thinking_default))

    def business_error(self, payload: object) -> GatewayError | None:
        # iFlow's own codes first: its table knows blocked, expired and busy accounts.
        return rules.business_error(payload, available_models=self._models)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return rules.http_error(
            status, body, trace_id, available_models=self._models, retry_after=retry_after
        )


PROFILE = Iflow
