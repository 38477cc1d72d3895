"""Where the pool's accounts come from, and how they are added, changed and removed.

Three sources, in this order: the iFlow CLI's own login (``~/.iflow``, always one of them, re-read
when its files change), the config file's ``[[accounts]]`` (read-only here) and the accounts added
from the page or the CLI (the state store). A change made by another process (``iflow2api
accounts add`` while the gateway runs) is seen within a second through ``StateStore.generation``.

Each OAuth account refreshes on its own schedule, with the rules of ``auth.refresher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from iflow2api.auth import iflow_files, oauth
from iflow2api.auth.credentials import IFLOW_BASE_URL, Account, CredentialSource
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import Refresher, usable_creds
from iflow2api.background import Background
from iflow2api.coordination import Coordinator
from iflow2api.pool.directory import Directory
from iflow2api.pool.members import CLI_ACCOUNT_ID, Member, Renewal, Source, account_for
from iflow2api.pool.router import Pool
from iflow2api.settings import Settings
from iflow2api.state.records import AccountHealth, AccountKind, AccountRecord
from iflow2api.state.store import StateStore
from iflow2api.upstream.models import ModelDirectory

log = logging.getLogger("iflow2api.accounts")

#: The store setting listing accounts (of the CLI or the config file) switched off on the page.
DISABLED_SETTING = "disabled_accounts"
#: The store setting a check made outside the gateway (``iflow2api accounts test``) writes the
#: time of, so that a running gateway reloads the health it found.
CHECKED_SETTING = "accounts_checked_at"
#: How often another process's changes to the store are looked for, in seconds.
WATCH_SECONDS = 1.0


def new_account_id() -> str:
    return "acc-" + secrets.token_hex(3)


def oauth_creds(
    tokens: oauth.Tokens, user: oauth.UserInfo, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A login in ``oauth_creds.json``'s shape (protocol §5), on top of what was there."""
    creds = dict(previous or {})
    creds.update(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token or creds.get("refresh_token", ""),
            "expiry_date": int(tokens.expires_at * 1000),
            "token_type": tokens.token_type,
            "scope": tokens.scope,
            "apiKey": user.api_key,
            "userId": user.user_id,
            "userName": user.user_name,
            "email": user.email,
            "phone": user.phone,
        }
    )
    return creds


def same_user(creds: dict[str, Any] | None, user: oauth.UserInfo) -> bool:
    if not creds:
        return False
    return bool(
        (user.user_id and creds.get("userId") == user.user_id)
        or (user.email and creds.get("email") == user.email)
    )


class StoredLogin:
    """An extra OAuth account's login, kept in the state store (``auth.refresher.LoginStorage``)."""

    def __init__(self, book: AccountBook, account_id: str) -> None:
        self._book = book
        self._id = account_id

    def read(self) -> dict[str, Any] | None:
        record = self._book.record(self._id)
        return usable_creds(record.oauth) if record is not None else None

    async def reread(self) -> dict[str, Any] | None:
        """The login as the store holds it now (another instance may have refreshed it); the book
        reloads when it differs from what this instance uses."""
        kept = next((r for r in await self._book.store.accounts() if r.id == self._id), None)
        used = self._book.record(self._id)
        # ``oauth`` is left out of records' equality: a refreshed login differs only there.
        if kept != used or (kept is not None and used is not None and kept.oauth != used.oauth):
            await self._book.load()
        return usable_creds(kept.oauth) if kept is not None else None

    async def save_refreshed(
        self, tokens: oauth.Tokens, api_key: str | None, *, previous_refresh_token: str
    ) -> bool:
        record = self._book.record(self._id)
        if record is None:
            return False
        creds = dict(record.oauth or {})
        creds.update(
            {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token or previous_refresh_token,
                "expiry_date": int(tokens.expires_at * 1000),
                "token_type": tokens.token_type,
                "scope": tokens.scope,
            }
        )
        if api_key:
            creds["apiKey"] = api_key
        # Checked where it is kept, not here: another instance may have written it since.
        changed = replace(record, oauth=creds, secret=api_key or record.secret)
        return await self._book.save_login(changed, previous_refresh_token=previous_refresh_token)

    async def record_rejection(self, refresh_token: str, reason: str) -> None:
        """Nothing to write: the refresher's own state shows the account as needing a login."""


class AccountBook:
    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        pool: Pool,
        directory: Directory,
        credentials: CredentialSource,
        cli_refresher: Refresher,
        oauth_client: OAuthClient,
        background: Background,
        on_change: Callable[[], None] = lambda: None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.directory = directory
        self.models: ModelDirectory = directory.models
        self.credentials = credentials
        self.cli_refresher = cli_refresher
        self.oauth_client = oauth_client
        self._spawn = background.spawn
        self._records: dict[str, AccountRecord] = {}
        self._refreshers: dict[str, Refresher] = {}
        self._disabled: frozenset[str] = frozenset()
        self._cli_account: Account | None = None
        self._generation: int | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._changing = asyncio.Lock()
        #: Called after the accounts changed (the client keys live in the same store).
        self._on_change = on_change
        #: Several instances: one refresher per OAuth account among them.
        self._coordinator = coordinator

    # -- reading -----------------------------------------------------------------------------------

    def record(self, account_id: str) -> AccountRecord | None:
        return self._records.get(account_id)

    def issued(self, account_id: str, tokens: oauth.Tokens) -> None:
        """A login made here was saved as ``account_id``: its refresher learns the tokens' lifetime."""
        refresher = self.cli_refresher if account_id == CLI_ACCOUNT_ID else self._refreshers.get(account_id)
        if refresher is not None:
            refresher.issued(tokens)

    def sync_cli(self) -> None:
        """Follow the iFlow CLI's files (cheap: they are looked at most every 50 ms)."""
        if self._cli_account is None:
            # Without a login, look every time: the one just made must serve the very next request.
            self.credentials.invalidate()
        account = self.credentials.current()
        if account is not self._cli_account:
            self._cli_account = account
            self.cli_refresher.files_changed()
            self._rebuild()

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.load()
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for refresher in self._refreshers.values():
            await refresher.stop()

    async def load(self) -> None:
        # One at a time with save(): a reload that read the records just before a refresh saved
        # new tokens must not put the old ones back.
        async with self._changing:
            self._generation = await self.store.generation()
            records = await self.store.accounts()
            self._records = {r.id: r for r in sorted(records, key=lambda r: (r.created_at, r.id))}
            self.directory.restore_health(await self.store.health())
            self._disabled = frozenset(await disabled_accounts(self.store))
        self._sync_refreshers()
        self._cli_account = self.credentials.current()
        self._rebuild()
        self._on_change()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                if await self.store.generation() != self._generation:
                    await self.load()
            except Exception:  # a locked or broken store must not end the watch
                log.exception("could not reload the accounts from the state store")

    def _sync_refreshers(self) -> None:
        for account_id in list(self._refreshers):
            record = self._records.get(account_id)
            if record is None or record.kind != "iflow-oauth":
                refresher = self._refreshers.pop(account_id)
                self._spawn(refresher.stop())
        for account_id, record in self._records.items():
            if record.kind == "iflow-oauth" and account_id not in self._refreshers:
                refresher = Refresher(
                    StoredLogin(self, account_id),
                    self.oauth_client,
                    lead=self.settings.refresh_lead,
                    name=f"the iFlow login of {record.label}",
                    coordinator=self._coordinator,
                    account_id=account_id,
                )
                self._refreshers[account_id] = refresher
                with contextlib.suppress(RuntimeError):  # no loop yet: started with the gateway
                    asyncio.get_running_loop()
                    refresher.start()

    # -- building the pool -------------------------------------------------------------------------

    def _limit(self, kind: str, configured: int | None) -> int | None:
        if configured is not None:
            return configured or None
        if self.settings.concurrency is not None:
            return self.settings.concurrency or None
        # iFlow serves one request at a time per account (protocol §8); others set their own limits.
        return 1 if kind != "openai-compatible" else None

    def _member(self, record: AccountRecord, source: Source) -> Member:
        default_url = self.settings.upstream_base_url or IFLOW_BASE_URL
        member = Member(
            id=record.id,
            label=record.label,
            kind=record.kind,
            source=source,
            account=account_for(record, default_url),
            limit=self._limit(record.kind, record.concurrency),
            models=record.models,
            enabled=record.enabled and record.id not in self._disabled,
            health=self.directory.health(record.id),
        )
        refresher = self._refreshers.get(record.id)
        if refresher is not None:
            member.refresher = refresher
            member.renew = functools.partial(self._renew_stored, member)
        return member

    def _rebuild(self) -> None:
        members: list[Member] = []
        cli = self._cli_account
        if cli is not None:
            kind: AccountKind = "openai-compatible"
            if cli.kind == "iflow":
                kind = "iflow-oauth" if self.cli_refresher.status().state != "no-login" else "iflow-key"
            member = Member(
                id=CLI_ACCOUNT_ID,
                label=cli.label or "iFlow CLI settings",
                kind=kind,
                source="iflow-cli",
                account=cli,
                limit=self._limit(kind, None),
                models=(),
                enabled=CLI_ACCOUNT_ID not in self._disabled,
                health=self.directory.health(CLI_ACCOUNT_ID),
                refresher=self.cli_refresher if kind == "iflow-oauth" else None,
            )
            member.renew = functools.partial(self._renew_cli, member)
            members.append(member)
        members += [self._member(record, "config") for record in self.settings.accounts]
        members += [self._member(record, "store") for record in self._records.values()]
        self.pool.set_members(members)
        self.directory.restore_health({m.id: m.health for m in self.pool.members()})
        for member in members:
            if member.kind == "openai-compatible" and not member.models:
                self._warm_models(member.account)

    def _warm_models(self, account: Account) -> None:
        """Ask an openai-compatible upstream for its models now, so routing knows them."""
        if self.models.cached(account) is not None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._spawn(self.models.models(account))

    # -- renewing a refused key ----------------------------------------------------------------------

    async def _renew_cli(self, member: Member) -> Renewal:
        used = member.account.api_key
        self.credentials.invalidate()
        current = self.credentials.current()
        if current is not None and current.api_key != used:
            self.sync_cli()
            return "renewed"
        if self.cli_refresher.status().state == "no-login":
            return "impossible"
        if await self.cli_refresher.refresh_now():
            self.credentials.invalidate()
            self.sync_cli()
            fresh = self.credentials.current()
            return "renewed" if fresh is not None and fresh.api_key != used else "impossible"
        return "impossible" if self.cli_refresher.status().state == "needs-login" else "temporary"

    async def _renew_stored(self, member: Member) -> Renewal:
        refresher = member.refresher
        if refresher is None:
            return "impossible"
        used = member.account.api_key
        if await refresher.refresh_now():
            fresh = self.pool.get(member.id)
            return "renewed" if fresh is not None and fresh.account.api_key != used else "impossible"
        return "impossible" if refresher.status().state == "needs-login" else "temporary"

    # -- changing --------------------------------------------------------------------------------------

    async def save(self, record: AccountRecord) -> None:
        """Add or replace a stored account, and use it at once."""
        await self._write(record, lambda: self.store.put_account(record))

    async def save_login(self, record: AccountRecord, *, previous_refresh_token: str) -> bool:
        """Keep a refreshed login, only if the stored one still has ``previous_refresh_token``
        (checked by the store in one transaction); False, and the stored one loaded, otherwise."""
        return await self._write(
            record, lambda: self.store.put_login(record, previous_refresh_token=previous_refresh_token)
        )

    async def _write(self, record: AccountRecord, put: Callable[[], Awaitable[bool | None]]) -> bool:
        async with self._changing:
            before = await self.store.generation()
            written = await put() is not False
            after = await self.store.generation()
            # Our write moves the generation by one. More (or a change not loaded yet) means
            # another instance changed something too: only a reload takes that in.
            current = written and before == self._generation and after == before + 1
            if current:
                self._records[record.id] = record
                self._generation = after
        if not current:
            await self.load()
            return written
        self._sync_refreshers()
        self._rebuild()
        self._on_change()
        return True

    async def remove(self, account_id: str) -> bool:
        if account_id not in self._records:
            return False
        await self.store.delete_account(account_id)
        await self.load()
        return True

    async def set_enabled(self, account_id: str, enabled: bool) -> bool:
        if self.pool.get(account_id) is None:
            return False
        await set_account_enabled(self.store, account_id, enabled)
        await self.load()
        return True


async def disabled_accounts(store: StateStore) -> set[str]:
    """The accounts of the iFlow CLI and the config file switched off (stored ones say so themselves)."""
    text = await store.get_setting(DISABLED_SETTING)
    return set(orjson.loads(text)) if text else set()


async def set_account_enabled(store: StateStore, account_id: str, enabled: bool) -> None:
    """Switch an account on or off, from the page or the CLI. Switching on is also how a person
    lifts a quarantine or cuts a cooldown short."""
    record = next((r for r in await store.accounts() if r.id == account_id), None)
    if record is not None:
        await store.put_account(replace(record, enabled=enabled))
    else:
        disabled = await disabled_accounts(store)
        (disabled.discard if enabled else disabled.add)(account_id)
        await store.put_setting(DISABLED_SETTING, orjson.dumps(sorted(disabled)).decode())
    if enabled:
        await store.put_health(account_id, AccountHealth(since=time.time()))


async def save_checked_health(store: StateStore, account_id: str, health: AccountHealth) -> None:
    """Keep the health a check in another process found; a running gateway takes it within a
    second (health alone does not change the store's generation, which its watch follows)."""
    await store.put_health(account_id, health)
    await store.put_setting(CHECKED_SETTING, repr(time.time()))


def stored_oauth_record(
    tokens: oauth.Tokens, user: oauth.UserInfo, existing: AccountRecord | None
) -> AccountRecord:
    """An extra iFlow OAuth account for the store, or ``existing`` brought up to date."""
    if existing is not None:
        return replace(existing, secret=user.api_key, oauth=oauth_creds(tokens, user, existing.oauth))
    return AccountRecord(
        id=new_account_id(),
        label=user.label or user.user_id or "iFlow login",
        kind="iflow-oauth",
        base_url="",
        secret=user.api_key,
        oauth=oauth_creds(tokens, user),
        created_at=time.time(),
    )


async def save_login(iflow_home: Path, store: StateStore, tokens: oauth.Tokens, user: oauth.UserInfo) -> str:
    """Keep a finished iFlow login; returns the id of the account it is now.

    Into the iFlow CLI's own files while they hold no OAuth login, or hold this same user's (as
    the iFlow CLI's own login would); otherwise it is another account, kept in the state store (and
    updated, if this user logged in before).
    """
    creds = usable_creds(await asyncio.to_thread(_read_cli_creds, iflow_home))
    if creds is None or same_user(creds, user):
        await asyncio.to_thread(
            iflow_files.save_oauth_login, iflow_home, tokens, user, base_url=IFLOW_BASE_URL
        )
        # The same user as an extra account too would share one iFlow slot with two refreshers.
        for record in await store.accounts():
            if record.kind == "iflow-oauth" and same_user(record.oauth, user):
                await store.delete_account(record.id)
        return CLI_ACCOUNT_ID
    existing = next(
        (r for r in await store.accounts() if r.kind == "iflow-oauth" and same_user(r.oauth, user)), None
    )
    record = stored_oauth_record(tokens, user, existing)
    await store.put_account(record)
    return record.id


def _read_cli_creds(iflow_home: Path) -> dict[str, Any] | None:
    try:
        return iflow_files.read_json_object(iflow_home / iflow_files.OAUTH_CREDS_FILE)
    except (OSError, ValueError):
        return None
