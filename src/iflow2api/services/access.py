"""Who may call the gateway: its client keys, the admin password, and the page's sessions.

Clients must show a key when any exists, and always when the gateway listens beyond loopback.
The keys live in the state store beside the accounts; a key made by another process (``iflow2api
keys create``) works on the very next request (``catch_up``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from iflow2api import admin, clientkeys
from iflow2api.addresses import is_loopback, is_loopback_host
from iflow2api.asgi import Scope, header
from iflow2api.clientkeys import KeyRing
from iflow2api.errors import ClientAuthError
from iflow2api.state.records import ClientKeyRecord
from iflow2api.state.store import StateStore

log = logging.getLogger("iflow2api")


def offered_key(scope: Scope) -> bytes:
    """The key a request shows (``Authorization: Bearer`` or ``x-api-key``); empty without one."""
    return clientkeys.offered_key(header(scope, b"authorization"), header(scope, b"x-api-key"))


def from_loopback(scope: Scope) -> bool:
    """Whether the connection comes from this machine, by the socket's peer address: never by a
    header such as ``X-Forwarded-For``, which any client may write (uvicorn runs with
    ``proxy_headers=False``, so ``client`` is the socket's own peer)."""
    client = scope.get("client")
    return client is None or is_loopback(str(client[0]))  # no address: a Unix socket, also local


def on_this_machine(scope: Scope) -> bool:
    """Whether both the connection and the address the browser used are loopback. The Host check
    keeps out a page elsewhere that rebinds its own host name to 127.0.0.1: its requests come from
    this machine's browser, but name that page's host."""
    return from_loopback(scope) and is_loopback_host((header(scope, b"host") or b"").decode("latin-1"))


class Access:
    def __init__(
        self,
        store: StateStore,
        keys: KeyRing,
        *,
        env_keys: list[ClientKeyRecord],
        beyond_loopback: bool,
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self._store, self._spawn = store, spawn
        self.keys, self._env_keys = keys, env_keys
        self.keys.load(env_keys)
        self.sessions = admin.Sessions()
        #: One password check at a time (see ``routes.manage.ConsoleRoutes.open_session``).
        self.password_checks = asyncio.Semaphore(1)
        self.beyond_loopback = beyond_loopback
        self._admin_hash: str | None = None
        #: The store's generation when the keys were last loaded (see ``catch_up``).
        self._generation: int | None = None

    async def reload(self) -> None:
        generation = await self._store.generation()
        self.keys.load([*self._env_keys, *await self._store.client_keys()])
        self._admin_hash = await self._store.get_setting(admin.ADMIN_PASSWORD_SETTING)
        self._generation = generation

    def reload_soon(self) -> None:
        """The store changed (the keys live beside the accounts): reload in the background."""
        self._spawn(self.reload())

    async def catch_up(self, offered: bytes) -> None:
        """Reload the keys if ``offered`` is unknown and the store changed since they were loaded.

        The account book notices changes within a second, but a key made with ``iflow2api keys
        create`` must work on the very next request: a key the ring does not know costs one cheap
        read of the store's generation before it is refused. Known keys cost nothing.
        """
        if not offered or self.keys.find(offered) is not None:
            return
        try:
            if await self._store.generation() == self._generation:
                return
            await self.reload()
        except Exception:  # the key is refused as unknown; the failure is for the log
            log.warning("could not look for new client keys in the state store", exc_info=True)

    def needs_keys(self) -> bool:
        """Whether clients must show a key: when any exists, and always beyond loopback (revoking
        the last key must not open a gateway that listens on the network)."""
        return self.beyond_loopback or bool(self.keys)

    def _credential_holds(self, credential: str) -> bool:
        kind, _, value = credential.partition(":")
        if kind == "key":
            return any(record.id == value and record.admin for record in self.keys.records)
        return kind == "password" and value == self._admin_hash

    def is_admin(self, scope: Scope) -> bool:
        """Whether this request may manage the gateway: always, when no keys are needed."""
        if not self.needs_keys():
            return True
        if self.sessions.valid(admin.cookie_value(header(scope, b"cookie")), self._credential_holds):
            return True
        offered = offered_key(scope)
        record = self.keys.find(offered) if offered else None
        return record is not None and record.admin

    def offers_first_password(self, scope: Scope) -> bool:
        """Whether the page may offer this request to set the first admin password.

        Started without a terminal, the gateway shows no password (a service's log must not hold
        one), so once keys exist nobody could open the page without an admin key. A person on
        this machine is trusted as ``iflow2api admin-password`` trusts them: only from loopback,
        and only while no password exists.
        """
        return self.needs_keys() and self._admin_hash is None and on_this_machine(scope)

    def password_stored(self, stored: str) -> None:
        """A password was set here; sessions opened with it hold at once (no reload needed)."""
        self._admin_hash = stored

    def check_admin(self, scope: Scope) -> None:
        if not self.is_admin(scope):
            raise ClientAuthError(
                "Sign in on the page with the admin password, or send an admin key "
                "('Authorization: Bearer <key>').",
                code="admin_required",
            )
