"""An account's secrets never leave in an error: not to the pool, the log, nor a client.

An upstream may quote the key it was sent, whatever its shape; every error made from its words
loses it here (``Redacting`` wraps the profile, so errors found inside a started stream lose it too).
"""

from __future__ import annotations

from typing import Any

from iflow2api.dialects.intent import Intent
from iflow2api.errors import GatewayError
from iflow2api.providers.base import Account, ChunkRewriter, Outgoing, Profile
from iflow2api.redact import redact


def redacted(error: GatewayError, secrets: tuple[str, ...]) -> GatewayError:
    """``error`` with every one of ``secrets`` masked, wherever the upstream's words went."""
    error.message = redact(error.message, secrets)
    error.args = (error.message,)
    if error.param:  # an upstream's own words too, on openai-compatible errors
        error.param = redact(error.param, secrets)
    if error.code and any(secret in error.code for secret in secrets):
        error.code = redact(error.code, secrets)
    return error


class Redacting(Profile):
    """A profile whose errors never carry the account's secrets; everything else is the wrapped one's."""

    def __init__(self, profile: Profile, secrets: tuple[str, ...]) -> None:
        super().__init__(thinking_default=profile.thinking_default)
        self._profile = profile
        self._secrets = secrets

    def prepare(self, account: Account, request: dict[str, Any], intent: Intent | None = None) -> Outgoing:
        return self._profile.prepare(account, request, intent)

    def rewriter(self, request: dict[str, Any]) -> ChunkRewriter | None:
        return self._profile.rewriter(request)

    def normalize_completion(self, completion: dict[str, Any]) -> bool:
        return self._profile.normalize_completion(completion)

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self._profile.normalize_usage(usage)

    def business_error(self, payload: object) -> GatewayError | None:
        error = self._profile.business_error(payload)
        return None if error is None else redacted(error, self._secrets)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return redacted(self._profile.http_error(status, body, trace_id, retry_after), self._secrets)
