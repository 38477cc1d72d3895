"""``iflow2api accounts …``, ``iflow2api keys …`` and ``iflow2api admin-password``.

They work on the state store directly, so they work with or without a running gateway; a running
one sees the change within a second, and a new client key at its first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from iflow2api import admin, clientkeys
from iflow2api.auth.credentials import Account, mask_secret
from iflow2api.cli.status import current_account
from iflow2api.errors import GatewayError, InvalidRequest
from iflow2api.pool.book import disabled_accounts, save_checked_health, set_account_enabled
from iflow2api.pool.directory import provider_choice
from iflow2api.pool.members import CLI_ACCOUNT_ID, account_for, shown_state
from iflow2api.providers import Profiles
from iflow2api.routes.manage import account_record
from iflow2api.services.account_check import AccountCheck, CheckResult, health_after, is_checked
from iflow2api.settings import Settings
from iflow2api.state import AccountHealth, ClientKeyRecord, StateFileError, StateStore, open_store
from iflow2api.upstream.client import UpstreamClient

if TYPE_CHECKING:
    from iflow2api.coordination.redis import RedisCoordinator

T = TypeVar("T")


def run(settings: Settings, work: Callable[[StateStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = open_store(settings.data_dir, database_url=settings.database_url)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except StateFileError as exc:
        raise click.ClickException(str(exc)) from None
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# -- accounts ----------------------------------------------------------------------------------------------


def list_accounts(settings: Settings) -> None:
    async def work(store: StateStore) -> None:
        disabled = await disabled_accounts(store)
        health = await store.health()
        rows = [["ID", "LABEL", "KIND", "PROVIDER", "SOURCE", "KEY", "STATE", "MODELS"]]

        def state(account_id: str, enabled: bool) -> str:
            known = health.get(account_id, AccountHealth())
            shown = shown_state(enabled and account_id not in disabled, known)
            # Spent credit and a failed check wait for a person: say why, as the page does.
            failing = shown in ("out-of-credit", "failing") and known.reason
            return f"{shown} ({known.reason})" if failing else shown

        cli = current_account(settings)
        if cli is not None:
            kind = "openai-compatible" if cli.kind == "openai-compatible" else cli.auth_type
            rows.append(
                [CLI_ACCOUNT_ID, cli.label or "iFlow CLI settings", kind, str(provider_choice(cli)),
                 "iflow-cli", mask_secret(cli.api_key), state(CLI_ACCOUNT_ID, True), cli.model_name or ""]
            )  # fmt: skip
        for source, records in (
            ("config", settings.accounts),
            ("store", sorted(await store.accounts(), key=lambda r: r.created_at)),
        ):
            for record in records:
                rows.append(
                    [record.id, record.label, record.kind, str(provider_choice(account_for(record))),
                     source, mask_secret(record.secret), state(record.id, record.enabled),
                     ",".join(record.models)]
                )  # fmt: skip
        if len(rows) == 1:
            click.echo("No accounts yet: `iflow2api login`, or `iflow2api accounts add`.")
            return
        _table(rows)

    run(settings, work)


async def check_accounts(settings: Settings, accounts: list[Account]) -> list[CheckResult]:
    """Check each account in turn, with the gateway's timeouts and provider profiles."""
    client = UpstreamClient(
        connect_timeout=settings.connect_timeout,
        first_byte_timeout=settings.first_byte_timeout,
        idle_timeout=settings.stream_idle_timeout,
        max_body=settings.max_upstream_body,
    )
    checks = AccountCheck(
        client, Profiles(thinking_default=settings.thinking_default, options=settings.provider_options)
    )
    try:
        return [await checks.run(account) for account in accounts]
    finally:
        await client.close()


def add_account(settings: Settings, fields: dict[str, Any], *, check: bool = True) -> None:
    """Save a new account, after checking it (``services.account_check``): saved even when the
    check fails, then shown as failing until a check passes."""
    try:
        record = account_record(fields)
    except InvalidRequest as exc:
        raise click.UsageError(exc.message) from None
    account = account_for(record)

    async def work(store: StateStore) -> CheckResult | None:
        result = None
        if check and is_checked(account):
            [result] = await check_accounts(settings, [account])
            # Before the account: a running gateway reloads both when the account appears.
            await store.put_health(record.id, health_after(result, account.api_key, time.time()))
        await store.put_account(record)
        return result

    result = run(settings, work)
    kind = f"{record.kind}, {record.provider}" if record.provider else record.kind
    where = f"{kind} at {record.base_url}"
    click.echo(f"Added {record.label} as {record.id} ({where}, key {mask_secret(record.secret)}).")
    if result is not None:
        click.echo(f"Check: {result.words}")
        if not result.ok:
            click.echo(
                f"It is saved and shown as failing until a check passes: fix it, then run "
                f"`iflow2api accounts test {record.id}`."
            )


def test_accounts(settings: Settings, label: str | None) -> bool:
    """Check the OpenAI-compatible accounts (those named ``label``, by label or id; else all),
    keeping what each check found as its health. True when every one works."""

    async def work(store: StateStore) -> bool:
        found: list[tuple[str, str, Account]] = []
        cli = current_account(settings)
        if cli is not None:
            found.append((CLI_ACCOUNT_ID, cli.label or "iFlow CLI settings", cli))
        for record in [*settings.accounts, *sorted(await store.accounts(), key=lambda r: r.created_at)]:
            found.append((record.id, record.label, account_for(record)))
        chosen = [item for item in found if label is None or label in (item[0], item[1])]
        if label is not None and not chosen:
            raise click.ClickException(f"There is no account {label!r} (see `iflow2api accounts list`).")
        for account_id, name, account in chosen:
            if not is_checked(account):
                click.echo(f"{name} ({account_id}): not tested (only OpenAI-compatible accounts are)")
        tested = [item for item in chosen if is_checked(item[2])]
        if not tested:
            if label is None:
                click.echo("No OpenAI-compatible accounts to test: add one with `iflow2api accounts add`.")
            return label is None
        results = await check_accounts(settings, [account for _, _, account in tested])
        for (account_id, name, account), result in zip(tested, results, strict=True):
            health = health_after(result, account.api_key, time.time())
            await save_checked_health(store, account_id, health)
            if settings.redis_url:  # a passing check is a reset, as on the page
                await share_health(settings.redis_url, account_id, health, reset=result.ok)
            click.echo(f"{name} ({account_id}): {result.words}")
        return all(result.ok for result in results)

    return run(settings, work)


def change_account(settings: Settings, account_id: str, action: str) -> None:
    async def work(store: StateStore) -> str:
        records = {r.id: r for r in await store.accounts()}
        record = records.get(account_id)
        known = account_id == CLI_ACCOUNT_ID or any(r.id == account_id for r in settings.accounts)
        if record is None and not known:
            raise click.ClickException(f"There is no account {account_id!r} (see `iflow2api accounts list`).")
        if action == "remove":
            if record is None:
                raise click.ClickException(
                    "That account comes from the iFlow CLI's files or the config file: remove it there, "
                    "or disable it."
                )
            await store.delete_account(account_id)
            return f"Removed {record.label} ({account_id})."
        enabled = action == "enable"
        await set_account_enabled(store, account_id, enabled)
        if enabled and settings.redis_url:
            # A quarantine the instances share lives in Redis too, and only a reset ends it there.
            await share_health(settings.redis_url, account_id, AccountHealth(since=time.time()), reset=True)
        return f"{'Enabled' if enabled else 'Disabled'} {account_id}."

    click.echo(run(settings, work))


# -- keys ------------------------------------------------------------------------------------------------


def create_key(
    settings: Settings,
    name: str,
    *,
    admin_key: bool,
    rpm: int | None,
    tokens_per_day: int | None,
    models: str,
) -> None:
    async def work(store: StateStore) -> tuple[str, ClientKeyRecord]:
        return await clientkeys.create(
            store,
            name,
            admin=admin_key,
            rpm=rpm,
            tokens_per_day=tokens_per_day,
            models=[m.strip() for m in models.split(",") if m.strip()],
        )

    key, record = run(settings, work)
    click.echo(f"Created the key {name!r} ({record.id}). It is shown this once; keep it now:\n")
    click.echo(f"  {key}\n")


def list_keys(settings: Settings) -> None:
    async def work(store: StateStore) -> None:
        records = await store.client_keys()
        if not records:
            click.echo(
                "No client keys: the gateway serves loopback only. Create one with `iflow2api keys create`."
            )
            return
        rows = [["ID", "NAME", "KEY", "ADMIN", "RPM", "TOKENS/DAY", "MODELS", "CREATED"]]
        for r in sorted(records, key=lambda r: r.created_at):
            rows.append(
                [r.id, r.name, r.prefix, "yes" if r.admin else "", str(r.rpm or ""),
                 str(r.tokens_per_day or ""), ",".join(r.models),
                 time.strftime("%Y-%m-%d", time.gmtime(r.created_at))]
            )  # fmt: skip
        _table(rows)

    run(settings, work)


def revoke_key(settings: Settings, name_or_id: str) -> None:
    async def work(store: StateStore) -> str:
        for record in await store.client_keys():
            if name_or_id in (record.id, record.name):
                await store.delete_client_key(record.id)
                if settings.redis_url:
                    await revoke_everywhere(settings.redis_url, record.id)
                    return f"Revoked {record.name} ({record.id}); every gateway instance refuses it now."
                return f"Revoked {record.name} ({record.id}); a running gateway refuses it within a second."
        raise click.ClickException(f"There is no key {name_or_id!r} (see `iflow2api keys list`).")

    click.echo(run(settings, work))


async def revoke_everywhere(redis_url: str, key_id: str) -> None:
    """Tell the running instances at once (they also see the store change, a second later)."""
    from iflow2api.keylimits import SharedLimits

    async with _instances(redis_url) as coordinator:
        await SharedLimits(coordinator).revoke(key_id)


async def share_health(redis_url: str, account_id: str, health: AccountHealth, *, reset: bool) -> None:
    """An account's health as a person or a check set it, for every running instance at once."""
    from iflow2api.coordination import CoordinationDown

    async with _instances(redis_url) as coordinator:
        try:
            await coordinator.share_health(account_id, health, reset=reset)
        except CoordinationDown as exc:
            click.echo(f"Saved, but the running instances were not told at once: {exc}", err=True)


@contextlib.asynccontextmanager
async def _instances(redis_url: str) -> AsyncIterator[RedisCoordinator]:
    """The running instances' coordination store, for one short visit of this command."""
    import os

    from iflow2api.coordination.redis import RedisCoordinator

    coordinator = RedisCoordinator(redis_url, instance=f"cli-{os.getpid()}")
    try:
        yield coordinator
    finally:
        await coordinator.close()


def set_admin_password(settings: Settings, password: str) -> None:
    async def work(store: StateStore) -> None:
        await store.put_setting(admin.ADMIN_PASSWORD_SETTING, admin.hash_password(password))

    run(settings, work)
    click.echo("Admin password set.")
