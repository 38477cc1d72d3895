"""``GET /health``: is the gateway up, and is it serving (an enabled account can take a request)?"""

from __future__ import annotations

import time
from collections import Counter

from iflow2api import __version__
from iflow2api.asgi import Send, send_json
from iflow2api.auth.credentials import CredentialSource
from iflow2api.auth.refresher import Refresher
from iflow2api.pool.directory import provider_choice
from iflow2api.services.membership import Membership
from iflow2api.services.serving import named_states, serving


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
        named = named_states(members)
        states = Counter(state for _, state in named)
        profiles = Counter(name for name, _ in named)
        ready = serving(named)
        await send_json(
            send,
            200,
            {
                "status": "ok",
                "version": __version__,
                # Whether any account can take a request now, whatever its provider (services.serving).
                "serving": ready.serving,
                "serving_accounts": ready.accounts,
                "serving_providers": list(ready.providers),
                "summary": ready.summary(),
                # Only about the iFlow CLI's own files (settings.json), not about "ready": see serving.
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
