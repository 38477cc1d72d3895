"""One account in the pool, as the router sees it: how to reach it, how busy and how healthy it is."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from iflow2api.auth.credentials import IFLOW_BASE_URL, Account
from iflow2api.auth.iflow_files import OAUTH_AUTH_TYPE
from iflow2api.auth.refresher import Refresher
from iflow2api.errors import OutOfCredit
from iflow2api.state.records import AccountHealth, AccountKind, AccountRecord

Source = Literal["iflow-cli", "config", "store"]
Renewal = Literal["renewed", "temporary", "impossible"]
#: What the page shows: the health state, or why the account is out of rotation otherwise.
ShownState = Literal["ok", "cooling", "quarantined", "out-of-credit", "failing", "disabled", "needs-login"]

#: The code of ``errors.OutOfCredit``: an account resting with it is shown as out of credit.
OUT_OF_CREDIT_CODE = OutOfCredit.code
#: The code of a quarantine a failed check (``services.account_check``) set: shown as failing, and
#: ended by a check that passes, a new key or a person.
CHECK_FAILED = "account_check_failed"

#: The id of the account the iFlow CLI's own files describe (~/.iflow); always one of the pool.
CLI_ACCOUNT_ID = "iflow-cli"


def key_fingerprint(secret: str) -> str:
    """Tells keys apart without keeping them (for quarantines, which a new key lifts)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def account_for(record: AccountRecord, default_iflow_url: str = IFLOW_BASE_URL) -> Account:
    """The speakers' view of a stored or configured account (an iFlow one without a URL: iFlow's)."""
    if record.kind == "openai-compatible":
        model = record.models[0] if record.models else None
        return Account(
            "openai-compatible",
            "openai-compatible",
            record.base_url,
            record.secret,
            model,
            record.label,
            provider=record.provider,
        )
    base_url = record.base_url or default_iflow_url
    if record.kind == "iflow-oauth":
        oauth = record.oauth or {}
        api_key = oauth.get("apiKey") if isinstance(oauth.get("apiKey"), str) else None
        expiry = oauth.get("expiry_date")
        expires_at = expiry / 1000 if isinstance(expiry, int | float) else None
        return Account(
            "iflow", OAUTH_AUTH_TYPE, base_url, api_key or record.secret, None, record.label, expires_at
        )
    return Account("iflow", "api-key", base_url, record.secret, None, record.label)


def shown_state(
    enabled: bool, health: AccountHealth, *, needs_login: bool = False, now: float | None = None
) -> ShownState:
    """Whether an account is in rotation, and if not, why (a cooldown that ended counts as ok)."""
    if not enabled:
        return "disabled"
    if needs_login:
        return "needs-login"
    if health.state == "quarantined":
        if health.code == CHECK_FAILED:
            return "failing"
        return "out-of-credit" if health.code == OUT_OF_CREDIT_CODE else "quarantined"
    if health.state == "cooling" and health.until > (time.time() if now is None else now):
        return "out-of-credit" if health.code == OUT_OF_CREDIT_CODE else "cooling"
    return "ok"


@dataclass(slots=True)
class Member:
    id: str
    label: str
    kind: AccountKind
    source: Source
    account: Account
    #: Requests in flight at once; None: unlimited.
    limit: int | None
    #: Models it was configured to serve (openai-compatible); empty: whatever its /models says.
    models: tuple[str, ...] = ()
    enabled: bool = True
    health: AccountHealth = field(default_factory=AccountHealth)
    refresher: Refresher | None = None
    #: Gets a new key after the upstream refused this one (None: nothing can renew it).
    renew: Callable[[], Awaitable[Renewal]] | None = None
    in_flight: int = 0
    #: A request is trying it through a rest of the gateway's own choosing (at most one at a time).
    #: On an account that takes several requests at once, the first of them to finish ends it: at
    #: worst one probe more, which is cheaper than tracking each request's lease.
    probing: bool = False
    requests: int = 0
    errors: int = 0
    last_used: float = 0.0
    #: Slots other gateway instances hold (as last learnt from the coordination store; always 0
    #: for one process alone): counted as busy here too, so the line waits instead of asking.
    elsewhere: int = 0

    def shown_state(self, now: float | None = None) -> ShownState:
        needs_login = self.refresher is not None and self.refresher.needs_login
        return shown_state(self.enabled, self.current_health(), needs_login=needs_login, now=now)

    def current_health(self) -> AccountHealth:
        """The health, with a quarantine for an older key forgotten: a new key lifts it."""
        health = self.health
        if (
            health.state == "quarantined"
            and health.key_fingerprint is not None
            and health.key_fingerprint != key_fingerprint(self.account.api_key)
        ):
            self.health = health = AccountHealth()
        return health

    def has_room(self) -> bool:
        return self.limit is None or self.in_flight + self.elsewhere < self.limit
