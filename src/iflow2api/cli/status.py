"""``iflow2api status`` and ``iflow2api models``: what the gateway would use, read from the files."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Mapping

import click

from iflow2api import catalogue
from iflow2api.auth.credentials import Account, CredentialSource, file_problem, mask_secret
from iflow2api.auth.iflow_files import OAUTH_AUTH_TYPE
from iflow2api.auth.refresher import login_rejected
from iflow2api.pool.directory import provider_choice
from iflow2api.pool.members import CLI_ACCOUNT_ID, Member, Source, account_for, shown_state
from iflow2api.providers import PROFILES, provider_of
from iflow2api.providers.base import ModelInfo
from iflow2api.services.model_listing import model_info
from iflow2api.services.serving import Serving, named_states, next_step, serving
from iflow2api.settings import Settings
from iflow2api.state.records import AccountHealth, AccountRecord

#: Seconds ``models`` waits for a list at most: first_byte_timeout's default (600) is for a long
#: answer to start, and a list is ready at once or not at all.
LISTING_WAIT = 30.0


def current_account(settings: Settings) -> Account | None:
    """The account the iFlow CLI's files describe, as the gateway would see it."""
    return CredentialSource(
        settings.iflow_home,
        base_url_override=settings.upstream_base_url,
        provider=settings.upstream_provider,
    ).current()


def show_status(settings: Settings) -> None:
    """Print whether the gateway would serve, who is logged in and which upstream is used; exit 1
    when there is no account at all."""
    account = current_account(settings)
    ready = file_serving(settings, account)
    rows = [("Status", ready.summary())]
    if not ready.connected:
        rows.append(("Next step", next_step(page_address(settings))))
    elif not ready.serving:
        rows.append(("Next step", "see why in `iflow2api accounts list` (or on the page's Accounts tab)"))
    rows += [("iFlow folder", str(settings.iflow_home)), ("Data folder", str(settings.data_dir))]
    if account is None:
        rows.append(("Logged in", "no: no iFlow login or key in settings.json (other providers need none)"))
        trouble = file_problem(settings.iflow_home, base_url_override=settings.upstream_base_url)
        if trouble:
            rows.append(("Problem", trouble))
    else:
        rows += [
            ("Logged in", f"yes ({account.auth_type}{', ' + account.label if account.label else ''})"),
            ("Upstream", f"{account.kind} at {account.base_url}"),
            ("Provider", str(provider_choice(account))),
            ("API key", mask_secret(account.api_key)),
        ]
        if account.auth_type == OAUTH_AUTH_TYPE or account.token_expires_at:
            rows.append(("Token expires", when(account.token_expires_at)))
            rejected = login_rejected(settings.iflow_home, settings.data_dir)
            if rejected:
                rows.append(("Attention", f"iFlow refused this login ({rejected}); run `iflow2api login`"))
        if account.kind == "iflow":
            rows.append(
                ("Key expiry", "iFlow API keys last 7 days from issue; the issue date is not recorded")
            )
        if account.model_name:
            rows.append(("Default model", account.model_name))
    others = ready.connected - (account is not None)
    if others:
        rows.append(("Other accounts", f"{others} more in the pool (see `iflow2api accounts list`)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name.ljust(width)}  {value}")
    sys.exit(0 if ready.connected else 1)


def file_serving(settings: Settings, cli_account: Account | None) -> Serving:
    """Whether a gateway started on these files would serve: the iFlow CLI's account, the config
    file's and the stored ones, each with its saved switch and health (what the gateway restores)."""
    records, health, disabled = _stored(settings)
    sources: list[tuple[Source, Iterable[AccountRecord]]] = [("config", settings.accounts)]
    sources.append(("store", records))
    members = [
        Member(record.id, record.label, record.kind, source, account_for(record), None,
               enabled=record.enabled and record.id not in disabled,
               health=health.get(record.id, AccountHealth()))
        for source, group in sources
        for record in group
    ]  # fmt: skip
    named = named_states(members)
    if cli_account is not None:
        # The CLI's login needs a person when iFlow refused it (the gateway's refresher says so too).
        # An OpenAI-compatible settings.json serves with its key: a refused iFlow login beside it is not its.
        rejected = cli_account.kind == "iflow" and login_rejected(settings.iflow_home, settings.data_dir)
        enabled = CLI_ACCOUNT_ID not in disabled
        state = shown_state(enabled, health.get(CLI_ACCOUNT_ID, AccountHealth()), needs_login=bool(rejected))
        named.insert(0, (provider_choice(cli_account).name, state))
    return serving(named)


def page_address(settings: Settings) -> str | None:
    """The page of a gateway started with these settings (None: it listens on a port picked then)."""
    if not settings.port:
        return None
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/"


def list_models(settings: Settings) -> None:
    """Print the models the current upstream serves (iFlow's catalogue for iFlow)."""
    account = current_account(settings)
    if account is None or account.kind == "iflow":
        click.echo(f"{'id':<24} {'name':<22} {'context':>9} {'max out':>8}")
        for model in catalogue.IFLOW_MODELS:
            if not model.hidden:
                context = f"{model.context_window:,}" if model.context_window else "?"
                out = f"{model.max_output:,}" if model.max_output else "?"
                click.echo(f"{model.id:<24} {model.label:<22} {context:>9} {out:>8}")
        if account is None:
            click.echo(f"(the catalogue of iFlow, which shut down on 2026-04-17; {next_step()})", err=True)
        return
    ids = asyncio.run(upstream_models(settings, account))
    click.echo("\n".join(model_lines(ids, PROFILES[provider_of(account)].models)))


def model_lines(ids: list[str], known: Mapping[str, ModelInfo]) -> list[str]:
    """One line per model: its id alone, or a table with the limits its profile documents when it
    knows any (``Profile.models``).

    >>> for line in model_lines(["a", "b"], {"b": ModelInfo(131_072, 8_192)}):
    ...     print(line)
    id                         context  max out
    a                                ?        ?
    b                          131,072    8,192
    """
    infos = [model_info(known, model_id) for model_id in ids]
    if not any(infos):
        return ids  # nothing to add: ids alone, one a line, as scripts read them
    width = max(24, *(len(model_id) for model_id in ids))
    lines = [f"{'id':<{width}} {'context':>9} {'max out':>8}"]
    for model_id, info in zip(ids, infos, strict=True):
        context = f"{info.context_window:,}" if info and info.context_window else "?"
        out = f"{info.max_output:,}" if info and info.max_output else "?"
        lines.append(f"{model_id:<{width}} {context:>9} {out:>8}")
    return lines


def when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    left = epoch - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    if left <= 0:
        return f"{stamp} (expired)"
    days, rest = divmod(int(left), 86400)
    return f"{stamp} (in {days} d {rest // 3600} h)"


def _stored(settings: Settings) -> tuple[list[AccountRecord], dict[str, AccountHealth], set[str]]:
    """The store's accounts, every account's saved health, and the switched-off CLI and config ones."""
    from iflow2api.pool.book import disabled_accounts
    from iflow2api.state import StateFileError, open_store

    async def read() -> tuple[list[AccountRecord], dict[str, AccountHealth], set[str]]:
        store = open_store(settings.data_dir, database_url=settings.database_url)
        try:
            return await store.accounts(), await store.health(), await disabled_accounts(store)
        finally:
            await store.close()

    try:
        return asyncio.run(read())
    except StateFileError:
        return [], {}, set()


async def upstream_models(settings: Settings, account: Account) -> list[str]:
    """Its ``/models``; an upstream that does not answer within connect_timeout / first_byte_timeout
    (at most ``LISTING_WAIT``) is an error (exit 1), never a silent fallback: the person asked it."""
    from iflow2api.errors import GatewayError
    from iflow2api.upstream.client import UpstreamClient
    from iflow2api.upstream.models import ModelDirectory

    wait = min(settings.first_byte_timeout, LISTING_WAIT)
    client = UpstreamClient(
        connect_timeout=settings.connect_timeout, first_byte_timeout=wait, idle_timeout=wait
    )
    await client.start()
    try:
        listing = await ModelDirectory(client, settings.models_cache_ttl).ask(account)
    except GatewayError as exc:
        raise click.ClickException(f"{account.base_url}/models: {exc.message}") from None
    finally:
        await client.close()
    if not listing.complete:
        click.echo("(the upstream did not list its models; showing modelName from settings.json)", err=True)
    return list(listing.ids)
