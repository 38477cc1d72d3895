"""``GET /health``: is the gateway up, and can it serve (credentials found)?"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from iflow2api import __version__
from iflow2api.asgi import Send, send_json

if TYPE_CHECKING:
    from iflow2api.app import Gateway


async def health(gateway: Gateway, send: Send) -> None:
    account = gateway.credentials.current()
    gateway.accounts.sync_cli()
    states = Counter(member.shown_state() for member in gateway.pool.members())
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
            # no-login, ok, refreshing, retrying, or needs-login (iFlow refused the saved login).
            "login": gateway.refresher.status().state,
            # Every account of the pool, by state: ok, cooling, quarantined, disabled, needs-login.
            "accounts": dict(states),
            "uptime_seconds": round(time.time() - gateway.started_at, 1),
        },
    )
