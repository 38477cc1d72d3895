"""What the pool knows of its accounts beyond their live state, and where their changes are kept.

The pool receives this at construction (``router.AccountDirectory``): which models an account
serves (without asking anyone), and where health and affinity changes go (the state store, off
the request path). The account book reads back the last health of each account when it rebuilds
the membership.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from iflow2api import catalogue
from iflow2api.pool.members import Member
from iflow2api.state.records import AccountHealth
from iflow2api.state.store import StateStore
from iflow2api.upstream.models import ModelDirectory

#: Runs a coroutine in the background (``Background.spawn``).
Spawn = Callable[[Awaitable[Any]], None]


class Directory:
    def __init__(self, *, models: ModelDirectory, store: StateStore, spawn: Spawn) -> None:
        self.models = models
        self._store = store
        self._spawn = spawn
        self._health: dict[str, AccountHealth] = {}

    def serves(self, member: Member, model: str) -> bool | None:
        """Whether ``member`` serves ``model``: True, False, or None when it cannot be known."""
        if member.kind == "openai-compatible":
            if member.models:
                return model in member.models
            # An expired list still says where a model most likely is (it is asked again anyway).
            listing = self.models.cached(member.account, stale=True)
            if listing is not None and listing.complete:
                return model in listing.ids
            return None
        # iFlow: its catalogue for sure; other names go upstream, which has the last word (a 435).
        return True if catalogue.find(model) is not None else None

    def known_models(self, members: Iterable[Member]) -> list[str]:
        """The models the enabled ``members`` are known to serve, without asking anyone."""
        names: dict[str, None] = {}
        for member in members:
            if not member.enabled:
                continue
            listing = self.models.cached(member.account)
            names.update(dict.fromkeys(member.models or (listing.ids if listing is not None else ())))
        return list(names)

    def health(self, account_id: str) -> AccountHealth:
        """The last health known of an account (a fresh one when none is)."""
        return self._health.get(account_id, AccountHealth())

    def restore_health(self, health: dict[str, AccountHealth]) -> None:
        """Take the health of every account as the store or a rebuilt pool has it."""
        self._health = dict(health)

    def persist_health(self, account_id: str, health: AccountHealth) -> None:
        self._health[account_id] = health
        self._spawn(self._store.put_health(account_id, health))

    def persist_affinity(self, session: str, account_id: str) -> None:
        self._spawn(self._store.put_affinity(session, account_id, time.time()))
