"""``iflow2api accounts …``, ``iflow2api keys …`` and ``iflow2api admin-password``.

They work on the state store directly, so they work with or without a running gateway; a running
one sees the change within a second, and a new client key at its first use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from iflow2api import admin, clientkeys
from iflow2api.auth.credentials import mask_secret
from iflow2api.cli.status import current_account
from iflow2api.errors import GatewayError, InvalidRequest
from iflow2api.pool.book import disabled_accounts, set_account_enabled
from iflow2api.pool.directory import provider_choice
from iflow2api.pool.members import CLI_ACCOUNT_ID, account_for, shown_state
from iflow2api.routes.manage import account_record
from iflow2api.settings import Settings
from iflow2api.state import AccountHealth, ClientKeyRecord, StateFileError, StateStore, open_store

T = TypeVar("T")


def run(settings: Settings, work: Callable[[StateStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = open_store(settings.data_dir)
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
            # Spent credit waits for a person: say why, as the page does.
            return f"{shown} ({known.reason})" if shown == "out-of-credit" and known.reason else shown

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


def add_account(settings: Settings, fields: dict[str, Any]) -> None:
    try:
        record = account_record(fields)
    except InvalidRequest as exc:
        raise click.UsageError(exc.message) from None

    async def work(store: StateStore) -> None:
        await store.put_account(record)

    run(settings, work)
    kind = f"{record.kind}, {record.provider}" if record.provider else record.kind
    where = f"{kind} at {record.base_url}"
    click.echo(f"Added {record.label} as {record.id} ({where}, key {mask_secret(record.secret)}).")


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
                return f"Revoked {record.name} ({record.id}); a running gateway refuses it within a second."
        raise click.ClickException(f"There is no key {name_or_id!r} (see `iflow2api keys list`).")

    click.echo(run(settings, work))


def set_admin_password(settings: Settings, password: str) -> None:
    async def work(store: StateStore) -> None:
        await store.put_setting(admin.ADMIN_PASSWORD_SETTING, admin.hash_password(password))

    run(settings, work)
    click.echo("Admin password set.")
