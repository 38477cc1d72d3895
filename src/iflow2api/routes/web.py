"""The page (``GET /``), its assets, and the small JSON API behind it: status, login, logout.

Every asset ships in the package (no CDN); they are read once, at start.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from iflow2api import __version__, catalogue
from iflow2api.asgi import Receive, Scope, header, send_bytes, send_json
from iflow2api.auth import iflow_files, oauth
from iflow2api.auth.credentials import CredentialSource, mask_secret
from iflow2api.auth.login import LoginFlow
from iflow2api.auth.refresher import Refresher
from iflow2api.calls import Call
from iflow2api.errors import (
    Forbidden,
    GatewayError,
    InvalidRequest,
    RouteNotFound,
)
from iflow2api.pool.directory import provider_list
from iflow2api.services.access import Access
from iflow2api.services.serving import Serving
from iflow2api.web.api import json_body

#: The page's files in ``iflow2api/web``: the HTML, its style sheet, its ES modules (``app.js`` is
#: the entry the HTML loads; it imports the rest) and its catalogs of words, English and Chinese
#: (``i18n.js`` fetches them). Only these are served, each at a fixed path, so no part of a
#: request's path ever reaches the file system.
PAGE_FILES = (
    "index.html",
    "style.css",
    "app.js",
    "page.js",
    "dom.js",
    "format.js",
    "api.js",
    "charts.js",
    "overview.js",
    "snippets.js",
    "accounts.js",
    "keys.js",
    "usage.js",
    "playground.js",
    "i18n.js",
    "phrase.js",
    "messages.en.json",
    "messages.zh-CN.json",
)
#: Where each of ``PAGE_FILES`` is served: ``index.html`` at ``/``, the others under ``/static/``.
PAGE_PATHS = tuple("/" if name == "index.html" else "/static/" + name for name in PAGE_FILES)
_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css",
    ".json": b"application/json",
}
_NO_STORE = [(b"cache-control", b"no-store")]
#: How long the status waits for the served models: a first look at an upstream's ``/models`` may
#: take up to its timeouts, and the page's status must not. The look goes on (shielded), so a later
#: status finds the list in ``ModelDirectory``'s cache.
SERVED_MODELS_WAIT = 2.0


def load_assets() -> dict[str, tuple[bytes, bytes]]:
    """Path → (content type, bytes) for every one of ``PAGE_FILES``; a missing file fails the start."""
    folder = importlib.resources.files("iflow2api.web")
    return {
        path: (_TYPES["." + name.rsplit(".", 1)[-1]], folder.joinpath(name).read_bytes())
        for path, name in zip(PAGE_PATHS, PAGE_FILES, strict=True)
    }


class PageRoutes:
    """The page, its assets and its login API, built (by ``Gateway``) with the services they use."""

    def __init__(
        self,
        access: Access,
        credentials: CredentialSource,
        login: LoginFlow,
        refresher: Refresher,
        *,
        serving: Callable[[], Serving],
        served_models: Callable[[], Awaitable[list[dict[str, Any]]]],
        iflow_home: Path,
        model_aliases: tuple[tuple[str, str], ...],
    ) -> None:
        self._access, self._credentials = access, credentials
        self._login, self._refresher = login, refresher
        self._serving = serving
        self._served_models = served_models
        self._iflow_home, self._aliases = iflow_home, model_aliases
        self._assets = load_assets()

    async def asset(self, scope: Scope, receive: Receive, call: Call) -> None:
        path: str = scope["path"]
        found = self._assets.get(path)
        if found is None:
            raise RouteNotFound(f"There is no {path} here.")
        await send_bytes(call.send, 200, found[1], found[0], _NO_STORE)

    def status_document(self, *, signed_in: bool = True, first_password: bool = False) -> dict[str, Any]:
        needs_admin = self._access.needs_keys()
        admin = {"required": needs_admin, "signed_in": needs_admin and signed_in}
        # Offered only to a visitor who cannot sign in yet (see Access.offers_first_password).
        admin["first_password"] = needs_admin and not signed_in and first_password
        head: dict[str, Any] = {"version": __version__, "admin": admin}
        if needs_admin and not signed_in:
            return head  # who is logged in, and where, is for the admin only
        account = self._credentials.current()
        login = self._refresher.status()
        if account is not None and account.kind == "iflow":
            models = [catalogue.model_object(m.id, "iflow") for m in catalogue.IFLOW_MODELS if not m.hidden]
        else:
            models = []
        ready = self._serving()
        return {
            **head,
            # "Ready" is serving, whatever the provider; logged_in is only the iFlow CLI's own files.
            "serving": ready.serving,
            "serving_accounts": ready.accounts,
            "serving_providers": list(ready.providers),
            # With serving_*, what the page needs to say the summary in its own language.
            "connected_accounts": ready.connected,
            "summary": ready.summary(),
            # What "Connect a provider" offers: the same list as the accounts API's.
            "providers": provider_list(),
            "logged_in": account is not None,
            "account": account.label if account else None,
            "auth_type": account.auth_type if account else None,
            "oauth_login": login.state != "no-login",
            "upstream": account.kind if account else None,
            "base_url": account.base_url if account else None,
            "api_key": mask_secret(account.api_key) if account else None,
            "key_note": "iFlow API keys last 7 days; a login refreshes its key"
            if account and account.kind == "iflow"
            else None,
            "login": {
                "state": login.state,
                "token_expires_at": login.token_expires_at,
                "next_refresh_at": login.next_refresh_at,
                "last_refresh_at": login.last_refresh_at,
                "last_error": login.last_error,
            },
            "needs_client_key": needs_admin,
            "models": models,
            "aliases": dict(self._aliases),
        }

    async def status(self, scope: Scope, receive: Receive, call: Call) -> None:
        document = self.status_document(
            signed_in=self._access.is_admin(scope), first_password=self._access.offers_first_password(scope)
        )
        if "serving" in document:
            document["served_models"] = await self.served_models()
        await send_json(call.send, 200, document)

    async def served_models(self) -> list[dict[str, Any]]:
        return await served_within(self._served_models, SERVED_MODELS_WAIT)

    async def start_login(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        mode = payload.get("mode", "browser")
        if mode not in ("browser", "code"):
            raise InvalidRequest("'mode' must be 'browser' or 'code'.", param="mode")
        pending = self._login.start(callback_uri(scope) if mode == "browser" else None)
        await send_json(call.send, 200, {"url": pending.url, "state": pending.state})

    async def _finish(self, code_or_text: str, state: str | None, *, pasted: bool) -> oauth.UserInfo:
        # A failed login raises a LoginError, which shows itself (400 login_failed or 502 login_unavailable).
        if pasted:
            user = await self._login.finish_pasted(code_or_text, state)
        else:
            user = await self._login.finish(code_or_text, state)
        self._refresher.files_changed()
        return user

    async def login_code(self, scope: Scope, receive: Receive, call: Call) -> None:
        payload = await json_body(scope, receive)
        text, state = payload.get("text"), payload.get("state")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest("Paste the code the iFlow page showed.", param="text")
        user = await self._finish(text, state if isinstance(state, str) else None, pasted=True)
        await send_json(call.send, 200, {"ok": True, "account": user.label})

    async def oauth_callback(self, scope: Scope, receive: Receive, call: Call) -> None:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        code, state, error = (query.get(name, [""])[0] for name in ("code", "state", "error"))
        if error or not code:
            # Only a login started here may put a message on the page.
            if not self._login.cancel(state):
                raise Forbidden("This login was not started from this gateway's page.")
            message = (
                "You declined access on the iFlow page." if error == "access_denied" else "No code came back."
            )
            target = "/?" + urllib.parse.urlencode({"login": "error", "message": message})
        else:
            try:
                user = await self._finish(code, state, pasted=False)
            except GatewayError as exc:
                target = "/?" + urllib.parse.urlencode({"login": "error", "message": exc.message})
            else:
                target = "/?" + urllib.parse.urlencode({"login": "ok", "account": user.label or ""})
        await call.send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [(b"location", target.encode()), *_NO_STORE],
            }
        )
        await call.send({"type": "http.response.body", "body": b""})

    async def logout(self, scope: Scope, receive: Receive, call: Call) -> None:
        await json_body(scope, receive)
        await asyncio.to_thread(iflow_files.remove_oauth_login, self._iflow_home)
        self._refresher.files_changed()
        await send_json(call.send, 200, {"ok": True})


async def served_within(
    listing: Callable[[], Awaitable[list[dict[str, Any]]]], seconds: float
) -> list[dict[str, Any]]:
    """What ``listing`` (``ModelListing.available``, as ``/v1/models`` lists it) gives within
    ``seconds``, for the page's snippets and models table; empty while no account serves, or while
    the upstreams' lists take longer. The look goes on past ``seconds`` (shielded): a later call
    finds it in ``ModelDirectory``'s cache."""
    try:
        return await asyncio.wait_for(asyncio.shield(listing()), seconds)
    except (GatewayError, TimeoutError):
        return []


def callback_uri(scope: Scope) -> str:
    """Where iFlow sends the browser back: this gateway, as the browser addressed it."""
    host = (header(scope, b"host") or b"127.0.0.1").decode("latin-1")
    scheme = "https" if scope.get("scheme") == "https" else "http"
    return f"{scheme}://{host}/oauth2callback"
