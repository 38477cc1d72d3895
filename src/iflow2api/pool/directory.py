"""What the pool knows of its accounts beyond their live state, and where their changes are kept.

The pool receives this at construction (``router.AccountDirectory``): which models an account
serves (without asking anyone), and where health and affinity changes go (the state store, off
the request path). The account book reads back the last health of each account when it rebuilds
the membership. ``provider_choice`` says which provider profile an account is spoken to with, and
why, for every place that shows accounts (the page, ``/health``, the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

from iflow2api import catalogue, providers
from iflow2api.auth.credentials import Account
from iflow2api.pool.members import Member
from iflow2api.state.records import AccountHealth
from iflow2api.state.store import StateStore
from iflow2api.upstream.models import ModelDirectory

#: Runs a coroutine in the background (``Background.spawn``).
Spawn = Callable[[Awaitable[Any]], None]


class ProviderChoice(NamedTuple):
    """The profile an account is spoken to with, and whether its base URL's host chose it.

    >>> str(ProviderChoice("deepseek", by_host=True))
    'deepseek (by host)'
    """

    name: str
    #: True when the account names no provider and its host decided (``providers.for_host``).
    by_host: bool

    def __str__(self) -> str:
        return f"{self.name} (by host)" if self.by_host else self.name


def provider_choice(account: Account) -> ProviderChoice:
    """Which profile ``account`` gets: an iFlow account iFlow's, any other the one it names, else
    its host's (``providers.provider_of``, so what is shown is what is used)."""
    by_host = account.kind == "openai-compatible" and not account.provider
    return ProviderChoice(providers.provider_of(account), by_host)


def provider_names() -> list[str]:
    """The profiles an account may name: all but iFlow's, which goes with an account's kind."""
    return [name for name in providers.names() if name != providers.IFLOW]


def provider_list() -> list[dict[str, str]]:
    """``provider_names`` with what the page shows of each: its title and public base URL."""
    return [
        {"name": name, "title": providers.PROFILES[name].title, "base_url": providers.PROFILES[name].base_url}
        for name in provider_names()
    ]


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
