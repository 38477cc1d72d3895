"""The page's management API: sign-in, accounts, client keys, usage, and ``/metrics``.

Same-origin JSON only (see ``web.api.json_body``). When client keys exist, everything here but
the sign-in needs an admin session or an admin key (``Access.check_admin``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.parse
from typing import Any

from iflow2api import admin, clientkeys, providers
from iflow2api.asgi import Receive, Scope, header, send_json
from iflow2api.auth.credentials import IFLOW_BASE_URL, mask_secret
from iflow2api.calls import Call
from iflow2api.errors import ClientAuthError, Forbidden, InvalidRequest, RouteNotFound
from iflow2api.pool.book import AccountBook
from iflow2api.pool.directory import provider_choice, provider_list, provider_names
from iflow2api.pool.members import Member, account_for
from iflow2api.pool.router import Pool
from iflow2api.services.access import Access, on_this_machine
from iflow2api.services.account_check import AccountCheck, CheckResult, health_after, is_checked
from iflow2api.state.records import AccountKind, AccountRecord, ClientKeyRecord
from iflow2api.state.store import StateStore
from iflow2api.upstream.models import ModelDirectory
from iflow2api.usage import stats
from iflow2api.usage.metrics import CONTENT_TYPE, AccountGauge, Metrics
from iflow2api.usage.recorder import UsageRecorder
from iflow2api.usage.summaries import UsageSummaries
from iflow2api.web.api import json_body

#: The shown states whose health says why (a rest, a quarantine, spent credit, a failed check).
REASONED = ("cooling", "quarantined", "out-of-credit", "failing")
#: Seconds a wrong admin password costs its sender.
WRONG_PASSWORD_DELAY = 0.5
#: The shortest admin password the page's first-visit form accepts.
MIN_PASSWORD_LENGTH = 8

# -- the forms' fields ---------------------------------------------------------------------------------


def _text_field(payload: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = payload.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f"'{name}' is required.", param=name)
    return value.strip()


def _optional_count(payload: dict[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"'{name}' must be a whole number of 0 or more.", param=name)
    return value


def _names(payload: dict[str, Any], name: str) -> tuple[str, ...]:
    value = payload.get(name) or []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"'{name}' must be a list of names.", param=name)
    return tuple(v.strip() for v in value if v.strip())


def _provider(payload: dict[str, Any]) -> str | None:
    name = payload.get("provider")
    if name is None or name == "":
        return None
    choices = provider_names()
    if name not in choices:
        raise InvalidRequest(f"'provider' must be one of: {', '.join(choices)}.", param="provider")
    return str(name)


def account_record(payload: dict[str, Any]) -> AccountRecord:
    """A new account from the page's form (or the CLI's flags), checked.

    A ``provider`` makes it an OpenAI-compatible account of that profile, at the profile's public
    base URL unless the payload gives one.
    """
    provider = _provider(payload)
    kind: AccountKind
    match payload.get("kind") or ("openai-compatible" if provider else None):
        case "iflow-key":
            kind = "iflow-key"
        case "openai-compatible":
            kind = "openai-compatible"
        case _:
            raise InvalidRequest("'kind' must be 'iflow-key' or 'openai-compatible'.", param="kind")
    if provider and kind != "openai-compatible":
        raise InvalidRequest("A provider is for OpenAI-compatible accounts.", param="provider")
    label = _text_field(payload, "label")
    api_key = _text_field(payload, "api_key")
    base_url = _text_field(payload, "base_url", required=False).rstrip("/")
    if provider and not base_url:
        base_url = providers.PROFILES[provider].base_url
    if kind == "openai-compatible" and not base_url:
        raise InvalidRequest(
            "An OpenAI-compatible account needs its base URL (or a provider that has a public one).",
            param="base_url",
        )
    if base_url and urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise InvalidRequest("The base URL must start with http:// or https://.", param="base_url")
    return AccountRecord(
        id="acc-" + secrets.token_hex(3),
        label=label,
        kind=kind,
        base_url=base_url or (IFLOW_BASE_URL if kind == "iflow-key" else ""),
        secret=api_key,
        models=_names(payload, "models"),
        concurrency=_optional_count(payload, "concurrency"),
        created_at=time.time(),
        provider=provider,
    )


def _days(scope: Scope) -> int:
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        days = int(query.get("days", ["7"])[0])
    except ValueError:
        raise InvalidRequest("'days' must be a whole number.", param="days") from None
    if not 1 <= days <= 366:
        raise InvalidRequest("'days' must be between 1 and 366.", param="days")
    return days


class ConsoleRoutes:
    """The management API, built (by ``Gateway``) with the services it uses."""

    def __init__(
        self,
        access: Access,
        accounts: AccountBook,
        pool: Pool,
        models: ModelDirectory,
        store: StateStore,
        usage: UsageRecorder,
        summaries: UsageSummaries,
        metrics: Metrics,
        checks: AccountCheck,
    ) -> None:
        self._access, self._store, self._checks = access, store, checks
        self._accounts, self._pool, self._models = accounts, pool, models
        self._usage, self._summaries, self._metrics = usage, summaries, metrics

    async def open_session(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        password, key = payload.get("password"), payload.get("key")
        credential = ""
        if isinstance(password, str) and password:
            stored = await self._store.get_setting(admin.ADMIN_PASSWORD_SETTING)
            # scrypt takes tens of milliseconds: off the event loop, one at a time, and a wrong guess
            # costs half a second more, so the page cannot be used to guess quickly or to stall the gateway.
            async with self._access.password_checks:
                if stored is not None and await asyncio.to_thread(admin.verify_password, password, stored):
                    credential = "password:" + stored
                else:
                    await asyncio.sleep(WRONG_PASSWORD_DELAY)
        elif isinstance(key, str) and key:
            record = self._access.keys.find(key.encode())
            if record is not None and record.admin:
                credential = "key:" + record.id
        if not credential:
            raise ClientAuthError("Wrong admin password or admin key.", code="admin_required")
        await self._send_session(scope, call, credential)

    async def first_password(self, scope: Scope, receive: Receive, call: Call) -> None:
        """Set the first admin password from the page, and sign in with it.

        Only from this machine (the socket's address and a loopback Host, see
        ``services.access.on_this_machine``) and only while none exists: the same trust as
        ``iflow2api admin-password``, which needs a shell here. Changing one stays with that command.
        """
        if not on_this_machine(scope):
            raise Forbidden(
                "The admin password can be set on the page only from this machine (http://127.0.0.1); "
                "elsewhere, use `iflow2api admin-password`."
            )
        payload = await json_body(scope, receive)
        password = payload.get("password")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequest(
                f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.", param="password"
            )
        if not self._access.needs_keys():
            raise Forbidden("This gateway has no client keys, so its page needs no password.")
        # One at a time, so two tabs racing cannot both set one.
        async with self._access.password_checks:
            if await self._store.get_setting(admin.ADMIN_PASSWORD_SETTING) is not None:
                raise Forbidden(
                    "An admin password is already set: sign in with it, or change it with "
                    "`iflow2api admin-password`."
                )
            stored = await asyncio.to_thread(admin.hash_password, password)
            await self._store.put_setting(admin.ADMIN_PASSWORD_SETTING, stored)
        self._access.password_stored(stored)
        await self._send_session(scope, call, "password:" + stored)

    async def _send_session(self, scope: Scope, call: Call, credential: str) -> None:
        token = self._access.sessions.open(credential)
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (
            f"{admin.COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={admin.SESSION_SECONDS}{secure}"
        )
        await send_json(call.send, 200, {"ok": True}, [(b"set-cookie", cookie.encode())])

    async def close_session(self, scope: Scope, receive: Receive, call: Call) -> None:
        await json_body(scope, receive)
        self._access.sessions.close(admin.cookie_value(header(scope, b"cookie")))
        cookie = f"{admin.COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        await send_json(call.send, 200, {"ok": True}, [(b"set-cookie", cookie.encode())])

    def _account_view(self, member: Member) -> dict[str, Any]:
        now = time.time()
        state = member.shown_state(now)
        health = member.current_health()
        login = None
        if member.refresher is not None:
            status = member.refresher.status()
            login = {
                "state": status.state,
                "token_expires_at": status.token_expires_at,
                "next_refresh_at": status.next_refresh_at,
                "last_refresh_at": status.last_refresh_at,
                "last_error": status.last_error,
            }
        listing = self._models.cached(member.account)
        models = list(member.models) or (list(listing.ids) if listing is not None else [])
        provider = provider_choice(member.account)
        return {
            "id": member.id,
            "label": member.label,
            "kind": member.kind,
            "source": member.source,
            "base_url": member.account.base_url,
            # The profile it is spoken to with; by_host: its base URL's host chose it, not its own setting.
            "provider": provider.name,
            "provider_by_host": provider.by_host,
            "secret": mask_secret(member.account.api_key),
            "models": models,
            "enabled": member.enabled,
            "state": state,
            "until": health.until if state == "cooling" else None,
            "reason": health.reason if state in REASONED else None,
            "in_flight": member.in_flight,
            "limit": member.limit,
            "waiting": self._pool.waiting_for(member),
            "requests": member.requests,
            "errors": member.errors,
            "login": login,
        }

    async def _list_accounts(self, scope: Scope, receive: Receive, call: Call) -> None:
        self._accounts.sync_cli()
        await send_json(
            call.send,
            200,
            {
                "strategy": self._pool.strategy,
                "affinity": self._pool.affinity,
                "accounts": [self._account_view(m) for m in self._pool.members()],
                # What the add-account form offers: name, title and public base URL of each.
                "providers": provider_list(),
            },
        )

    async def _add_account(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        record = account_record(payload)
        account = account_for(record)
        # Checked before it is saved, so that it never serves a request as "ok" before the verdict.
        wanted = is_checked(account) and payload.get("check") is not False
        result = await self._checks.run(account) if wanted else None
        await self._accounts.save(record)
        member = self._pool.get(record.id)
        assert member is not None
        if result is not None:
            self._pool.checked(member, health_after(result, account.api_key, time.time()))
        await send_json(call.send, 201, self._checked_view(member, result))

    def _checked_view(self, member: Member, result: CheckResult | None) -> dict[str, Any]:
        fresh = self._pool.get(member.id) or member
        return {"account": self._account_view(fresh), "check": result.view() if result is not None else None}

    async def test_account(self, scope: Scope, receive: Receive, call: Call) -> None:
        """The page's Test button: check one account again; a pass puts it back in rotation."""
        payload = await json_body(scope, receive)
        account_id = payload.get("id")
        member = self._pool.get(account_id) if isinstance(account_id, str) else None
        if member is None:
            raise RouteNotFound(f"There is no account {account_id!r}.")
        if not is_checked(member.account):
            raise InvalidRequest("Only OpenAI-compatible accounts are tested (iFlow has shut down).")
        result = await self._checks.run(member.account)
        self._pool.checked(member, health_after(result, member.account.api_key, time.time()))
        await send_json(call.send, 200, self._checked_view(member, result))

    async def account_action(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        account_id, action = payload.get("id"), payload.get("action")
        member = self._pool.get(account_id) if isinstance(account_id, str) else None
        if member is None:
            raise RouteNotFound(f"There is no account {account_id!r}.")
        if action in ("enable", "disable"):
            await self._accounts.set_enabled(member.id, action == "enable")
        elif action == "reset":
            self._pool.reset(member)
        elif action == "remove":
            if member.source != "store":
                where = (
                    "the config file"
                    if member.source == "config"
                    else "the iFlow CLI's files (log out instead)"
                )
                raise InvalidRequest(f"This account comes from {where}; remove it there, or disable it.")
            await self._accounts.remove(member.id)
        else:
            raise InvalidRequest("'action' must be enable, disable, reset or remove.", param="action")
        await send_json(call.send, 200, {"ok": True})

    def _key_view(self, record: ClientKeyRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": record.name,
            "prefix": record.prefix,
            "created_at": record.created_at,
            "admin": record.admin,
            "rpm": record.rpm,
            "tokens_per_day": record.tokens_per_day,
            "models": list(record.models),
            "requests_today": self._usage.requests_today(record.name),
            "tokens_today": self._usage.tokens_today(record.name),
        }

    async def _list_keys(self, scope: Scope, receive: Receive, call: Call) -> None:
        await send_json(call.send, 200, {"keys": [self._key_view(r) for r in self._access.keys.records]})

    async def _create_key(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        key, record = await clientkeys.create(
            self._store,
            _text_field(payload, "name"),
            admin=payload.get("admin") is True,
            rpm=_optional_count(payload, "rpm"),
            tokens_per_day=_optional_count(payload, "tokens_per_day"),
            models=_names(payload, "models"),
        )
        await self._access.reload()
        await send_json(call.send, 201, {"key": key, "record": self._key_view(record)})

    async def revoke_key(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        key_id = payload.get("id")
        last_key = len(self._access.keys) <= 1 and any(r.id == key_id for r in self._access.keys.records)
        if self._access.beyond_loopback and last_key:
            raise InvalidRequest(
                "This is the gateway's last key, and it listens beyond loopback: create another "
                "key first, so that the gateway is never left open."
            )
        if not isinstance(key_id, str) or not await self._store.delete_client_key(key_id):
            raise RouteNotFound(f"There is no key {key_id!r}.")
        await self._access.keys.revoke_everywhere(key_id)
        await self._access.reload()
        await send_json(call.send, 200, {"ok": True})

    async def usage_summary(self, scope: Scope, receive: Receive, call: Call) -> None:
        await send_json(call.send, 200, await self._summaries.summary(_days(scope)))

    async def usage_csv(self, scope: Scope, receive: Receive, call: Call) -> None:
        rows = await self._summaries.rows(_days(scope), time.time())
        stamp = time.strftime("%Y%m%d", time.gmtime())
        headers = [
            (b"content-type", b"text/csv; charset=utf-8"),
            (b"content-disposition", f'attachment; filename="iflow2api-usage-{stamp}.csv"'.encode()),
            (b"cache-control", b"no-store"),
        ]
        await call.send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in stats.csv_chunks(rows):
            await call.send({"type": "http.response.body", "body": chunk, "more_body": True})
        await call.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def metrics(self, scope: Scope, receive: Receive, call: Call) -> None:
        self._accounts.sync_cli()
        gauges = [
            AccountGauge(m.label, m.shown_state(), m.in_flight, self._pool.waiting_for(m))
            for m in self._pool.members()
        ]
        body = self._metrics.render(gauges, queue_depth=self._pool.waiting)
        headers = [
            (b"content-type", CONTENT_TYPE.encode()),
            (b"cache-control", b"no-store"),
        ]
        await call.send({"type": "http.response.start", "status": 200, "headers": headers})
        await call.send({"type": "http.response.body", "body": body})

    async def accounts(self, scope: Scope, receive: Receive, call: Call) -> None:
        if scope["method"] == "POST":
            await self._add_account(scope, receive, call)
        else:
            await self._list_accounts(scope, receive, call)

    async def keys(self, scope: Scope, receive: Receive, call: Call) -> None:
        if scope["method"] == "POST":
            await self._create_key(scope, receive, call)
        else:
            await self._list_keys(scope, receive, call)
