"""``GET /health``: is the gateway up, and can it serve (credentials found)?"""

from __future__ import annotations

import time
from collections import Counter

from iflow2api import __version__
from iflow2api.asgi import Send, send_json
from iflow2api.auth.credentials import CredentialSource
from iflow2api.auth.refresher import Refresher
from iflow2api.pool.directory import provider_choice
from iflow2api.services.membership import Membership


class HealthRoute:
    def __init__(
        self,
        credentials: CredentialSource,
        membership: Membership,
        refresher: Refresher,
        *,
        started_at: float,
    ) -> None:
        self._credentials = credentials
        self._membership = membership
        self._refresher = refresher
        self._started_at = started_at

    async def __call__(self, send: Send) -> None:
        account = self._credentials.current()
        chosen = provider_choice(account) if account else None
        members = self._membership.members()
        states = Counter(member.shown_state() for member in members)
        profiles = Counter(provider_choice(member.account).name for member in members)
        await send_json(
            send,
            200,
            {
                "status": "ok",
                "version": __version__,
                "logged_in": account is not None,
                "upstream": account.kind if account else None,
                "auth_type": account.auth_type if account else None,
                "base_url": account.base_url if account else None,
                # The iFlow CLI's account's provider profile, and whether its host chose it.
                "provider": chosen.name if chosen else None,
                "provider_by_host": chosen.by_host if chosen else None,
                # no-login, ok, refreshing, retrying, or needs-login (iFlow refused the saved login).
                "login": self._refresher.status().state,
                # Every account of the pool, by state: ok, cooling, quarantined, disabled, needs-login.
                "accounts": dict(states),
                # Every account of the pool, by the provider profile it is spoken to with.
                "providers": dict(profiles),
                "uptime_seconds": round(time.time() - self._started_at, 1),
            },
        )
