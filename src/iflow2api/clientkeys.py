"""Client API keys: who may use the gateway, under which name, and within which limits.

A key is ``sk-i2a-`` and 43 random URL-safe characters, shown once when created and stored only
as its SHA-256 hash: a stolen database gives nobody a working key. A slow password hash is not
needed for 256 random bits; it would only slow down every request.

Presented keys are compared with every stored hash in constant time (``hmac.compare_digest`` on
each), so response times say nothing about how close a guess came. Keys from
``IFLOW2API_API_KEYS`` (the older, unnamed way) are hashed on load and named ``env-1``, ``env-2``...
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable

from iflow2api.errors import ClientAuthError, InvalidRequest, KeyLimitReached, ModelNotAllowed
from iflow2api.keylimits import SharedLimits
from iflow2api.state.records import ClientKeyRecord
from iflow2api.state.store import StateStore

KEY_PREFIX = "sk-i2a-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str | bytes) -> str:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def new_record(
    name: str,
    key: str,
    *,
    admin: bool = False,
    rpm: int | None = None,
    tokens_per_day: int | None = None,
    models: Iterable[str] = (),
) -> ClientKeyRecord:
    return ClientKeyRecord(
        id="key-" + secrets.token_hex(4),
        name=name,
        key_hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 4] + "…",
        created_at=time.time(),
        admin=admin,
        rpm=rpm,
        tokens_per_day=tokens_per_day,
        models=tuple(models),
    )


async def create(
    store: StateStore,
    name: str,
    *,
    admin: bool = False,
    rpm: int | None = None,
    tokens_per_day: int | None = None,
    models: Iterable[str] = (),
) -> tuple[str, ClientKeyRecord]:
    """Make and store a named key (from the page or the CLI); the key itself is returned only here."""
    if any(record.name == name for record in await store.client_keys()):
        raise InvalidRequest(f"A key named '{name}' exists already.", param="name")
    key = new_key()
    record = new_record(name, key, admin=admin, rpm=rpm, tokens_per_day=tokens_per_day, models=models)
    await store.put_client_key(record)
    return key, record


def env_records(keys: Iterable[str]) -> list[ClientKeyRecord]:
    """Keys from ``IFLOW2API_API_KEYS``: unlimited, and admins (whoever set them runs the gateway)."""
    return [
        ClientKeyRecord(f"env-{n}", f"env-{n}", hash_key(key), key[:4] + "…", 0.0, admin=True)
        for n, key in enumerate(keys, 1)
    ]


def offered_key(authorization: bytes | None, x_api_key: bytes | None) -> bytes:
    """The key a client sent: ``Authorization: Bearer`` (OpenAI) or ``x-api-key`` (Anthropic)."""
    if authorization and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    return (x_api_key or b"").strip()


class KeyRing:
    def __init__(
        self, *, tokens_today: Callable[[str], int] = lambda _name: 0, shared: SharedLimits | None = None
    ) -> None:
        self._records: list[ClientKeyRecord] = []
        self._tokens_today = tokens_today
        self._recent: dict[str, deque[float]] = {}
        #: With several instances: the limits every instance counts together (``admit`` is then
        #: not used; ``shared.admit`` is, one round trip to the coordination store).
        self.shared = shared
        if shared is not None:
            shared.fallback = self.admit  # while the coordination store is down

    def __bool__(self) -> bool:
        return bool(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> list[ClientKeyRecord]:
        return list(self._records)

    def load(self, records: Iterable[ClientKeyRecord]) -> None:
        self._records = list(records)
        names = {record.name for record in self._records}
        self._recent = {name: seen for name, seen in self._recent.items() if name in names}

    def find(self, offered: bytes) -> ClientKeyRecord | None:
        digest = hash_key(offered).encode()
        found = None
        for record in self._records:
            # No early exit: every key is compared, whichever matches.
            if hmac.compare_digest(digest, record.key_hash.encode()):
                found = record
        return found

    def authenticate(self, offered: bytes) -> ClientKeyRecord:
        record = self.find(offered) if offered else None
        if record is None:
            raise ClientAuthError(
                "Missing or wrong API key for this gateway. Send one of its client keys as "
                "'Authorization: Bearer <key>' (or 'x-api-key: <key>').",
                code="invalid_api_key",
            )
        return record

    async def revoke_everywhere(self, key_id: str) -> None:
        """After ``key_id`` left the store: make the other instances refuse it at once too."""
        if self.shared is not None:
            await self.shared.revoke(key_id)

    def admit(self, record: ClientKeyRecord, now: float | None = None) -> None:
        """Count a request against the key's limits (this process's own count), or refuse it with a 429."""
        now = time.monotonic() if now is None else now
        if record.tokens_per_day is not None and self._tokens_today(record.name) >= record.tokens_per_day:
            seconds_to_midnight = 86_400 - time.time() % 86_400
            raise KeyLimitReached(
                f"The key '{record.name}' has used its {record.tokens_per_day:,} tokens for today (UTC).",
                retry_after=seconds_to_midnight,
            )
        if record.rpm is not None:
            seen = self._recent.setdefault(record.name, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= record.rpm:
                raise KeyLimitReached(
                    f"The key '{record.name}' allows {record.rpm} requests per minute.",
                    retry_after=seen[0] + 60 - now,
                )
            seen.append(now)

    @staticmethod
    def check_model(record: ClientKeyRecord | None, model: str) -> None:
        if record is None or not record.models:
            return
        if not any(fnmatch.fnmatchcase(model, pattern) for pattern in record.models):
            raise ModelNotAllowed(
                f"The key '{record.name}' may not use the model '{model}'. "
                f"It may use: {', '.join(record.models)}.",
                param="model",
            )
