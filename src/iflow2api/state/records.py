"""What the gateway keeps between requests and restarts, as plain frozen records.

Every store (``state.store.StateStore``) holds exactly these; nothing else crosses its boundary.
Secrets live in ``AccountRecord.secret`` and ``AccountRecord.oauth`` only; a client key is kept as a
SHA-256 hash, never as itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

AccountKind = Literal["iflow-oauth", "iflow-key", "openai-compatible"]
#: An account made by an iFlow login. The iFlow CLI's files spell such a login the other way round
#: (``auth.iflow_files.OAUTH_AUTH_TYPE``); the store, the management API and the page use this.
OAUTH_KIND: Final = "iflow-oauth"
HealthState = Literal["ok", "cooling", "quarantined"]


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One upstream account the pool may send requests to."""

    #: Stable and short, e.g. ``acc-3f9a1c``; shown on the page and in the CLI.
    id: str
    #: What people call it: a name given when added, or the email/phone of an OAuth login.
    label: str
    kind: AccountKind
    base_url: str
    #: The key sent upstream (iFlow ``sk-…`` key, or the OpenAI-compatible provider's key).
    secret: str
    #: Models it serves (openai-compatible: empty means "ask its /models"). Unused for iFlow.
    models: tuple[str, ...] = ()
    enabled: bool = True
    #: For ``iflow-oauth``: the iFlow CLI's ``oauth_creds.json`` shape (access_token,
    #: refresh_token, expiry_date in ms, apiKey, userId, email, ...), kept whole.
    oauth: dict[str, Any] | None = field(default=None, compare=False)
    #: Requests in flight at once; None: the kind's default (iFlow 1, others unlimited).
    concurrency: int | None = None
    created_at: float = 0.0
    #: The provider profile it is spoken to with (``iflow2api.providers``); None: by its base URL's host.
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """Whether an account may be used now, and why not."""

    state: HealthState = "ok"
    #: Epoch seconds when a cooldown ends (``cooling`` only).
    until: float = 0.0
    #: Upstream failures in a row up to this cooldown; each one makes the next rest of the gateway's
    #: own choosing longer. A success clears them; the client's own errors leave them as they are.
    strikes: int = 0
    reason: str | None = None
    #: Epoch seconds when this state began.
    since: float = 0.0
    #: For a quarantine: a fingerprint of the key it was for, so a new key (a new login, an edited
    #: settings.json) lifts it by itself.
    key_fingerprint: str | None = None
    #: For a cooldown: the upstream asked for it (its ``Retry-After``), so it is waited out, never
    #: probed. A rest the gateway chose itself (False) only steers requests to other accounts.
    upstream_asked: bool = False
    #: For a quarantine: the error code clients get while no other account can serve them
    #: (``account_blocked``, ``invalid_api_key``, ``api_key_expired``).
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ClientKeyRecord:
    """A named key clients present to the gateway; only its hash is stored."""

    id: str
    name: str
    #: ``sha256(key).hexdigest()``
    key_hash: str
    #: The first characters of the key, enough to recognise it (``sk-i2a-AbCd…``).
    prefix: str
    created_at: float
    #: May open the page and its management API.
    admin: bool = False
    #: Requests per minute; None: no limit.
    rpm: int | None = None
    #: Prompt + completion tokens per UTC day; None: no limit.
    tokens_per_day: int | None = None
    #: Shell-style model patterns this key may use; empty: all.
    models: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One request, as the usage table and the dashboard see it."""

    #: Epoch seconds when the request arrived.
    at: float
    #: The client key's name; None when the gateway has no keys (or the page/CLI made it).
    key: str | None
    #: The account label the request was finally served by; None if it never reached one.
    account: str | None
    model: str
    #: ``chat``, ``anthropic`` or ``responses``.
    dialect: str
    stream: bool
    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    #: Milliseconds from arrival to the last byte sent.
    latency_ms: float = 0.0
    #: Milliseconds from arrival to the first content byte sent; None if none was.
    ttft_ms: float | None = None
    #: Upstream attempts made (1 unless it failed over).
    attempts: int = 1
    #: The error code shown to the client (``rate_limit_exceeded``...), None on success.
    error: str | None = None
    #: Whether the token counts are our own estimate: the upstream sent no usage at all.
    estimated: bool = False
    #: Prompt tokens the upstream read from its prompt cache (part of ``prompt_tokens``). Last of
    #: the fields, so the CSV export's earlier columns keep their places.
    cached_tokens: int = 0


def account_kind(text: str) -> AccountKind:
    """A stored kind, read with either spelling of the OAuth one; kinds are written as ``OAUTH_KIND``.

    >>> account_kind("oauth-iflow"), account_kind("iflow-key")
    ('iflow-oauth', 'iflow-key')
    """
    return OAUTH_KIND if text == "oauth-iflow" else cast(AccountKind, text)
