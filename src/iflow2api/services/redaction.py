"""An account's secrets never leave in an error: not to the pool, the log, nor a client.

An upstream may quote the key it was sent, whatever its shape; every error made from its words
loses it here (``Redacting`` wraps the speaker, so errors found inside a started stream lose it too).
"""

from __future__ import annotations

from typing import Any

from iflow2api.auth.credentials import Account
from iflow2api.errors import GatewayError
from iflow2api.redact import redact
from iflow2api.upstream.speakers import Outgoing, Speaker


def redacted(error: GatewayError, secrets: tuple[str, ...]) -> GatewayError:
    """``error`` with every one of ``secrets`` masked, wherever the upstream's words went."""
    error.message = redact(error.message, secrets)
    error.args = (error.message,)
    if error.param:  # an upstream's own words too, on openai-compatible errors
        error.param = redact(error.param, secrets)
    if error.code and any(secret in error.code for secret in secrets):
        error.code = redact(error.code, secrets)
    return error


class Redacting:
    """A speaker whose errors never carry the account's secrets."""

    __slots__ = ("_secrets", "_speaker")

    def __init__(self, speaker: Speaker, secrets: tuple[str, ...]) -> None:
        self._speaker = speaker
        self._secrets = secrets

    def prepare(self, account: Account, request: dict[str, Any]) -> Outgoing:
        return self._speaker.prepare(account, request)

    def business_error(self, payload: object) -> GatewayError | None:
        error = self._speaker.business_error(payload)
        return None if error is None else redacted(error, self._secrets)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return redacted(self._speaker.http_error(status, body, trace_id, retry_after), self._secrets)
