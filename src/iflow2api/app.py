"""The gateway as an ASGI application: ``create_app(settings)`` builds everything it owns.

Routing is a dict lookup on the exact path; the OpenAI paths are served with and without ``/v1``
because clients differ on whether the base URL includes it.
"""

from __future__ import annotations

import hmac
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from iflow2api.addresses import is_loopback_host
from iflow2api.asgi import (
    CORS_HEADERS,
    Message,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_bytes,
    send_json,
)
from iflow2api.auth.credentials import Account, CredentialSource
from iflow2api.auth.login import LoginFlow
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import Refresher
from iflow2api.concurrency import Gates
from iflow2api.dialects import anthropic
from iflow2api.dialects.openai_chat import error_body
from iflow2api.disconnects import ClientGone, DisconnectWatch
from iflow2api.errors import (
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    NotLoggedIn,
    RouteNotFound,
    UpstreamAuthError,
)
from iflow2api.reasoning import ReasoningStore
from iflow2api.routes import web
from iflow2api.routes.chat import chat_completions
from iflow2api.routes.health import health
from iflow2api.routes.messages import count_tokens, messages
from iflow2api.routes.models import list_models, retrieve_model
from iflow2api.routes.responses import ResponseMemory, create_response
from iflow2api.settings import Settings
from iflow2api.upstream.client import UpstreamClient
from iflow2api.upstream.models import ModelDirectory
from iflow2api.upstream.speakers import IflowSpeaker, OpenAICompatibleSpeaker, Speaker

log = logging.getLogger("iflow2api")

Dialect = Literal["openai", "anthropic"]
Handler = Callable[["Gateway", Scope, Receive, "Call"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str]
    handler: Handler
    #: Whether the client must present one of the configured client API keys.
    protected: bool = True
    #: The page and its API: same-origin only (no CORS), and only for this gateway's own host name.
    web: bool = False
    #: Whose error shape failures are shown in.
    dialect: Dialect = "openai"


class Call:
    """One request's ``send``, remembering how far the response got."""

    __slots__ = ("_send", "dialect", "finished", "same_origin_only", "started", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.finished = False
        self.status = 0
        self.same_origin_only = False
        self.dialect: Dialect = "openai"

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            if self.same_origin_only:
                # Other sites' scripts must not read the page's API (it shows who is logged in).
                message["headers"] = [
                    (k, v) for k, v in message["headers"] if not k.startswith(b"access-control-")
                ]
        elif not message.get("more_body"):
            self.finished = True
        await self._send(message)


async def _health(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await health(gateway, call.send)


async def _models(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await list_models(gateway, call.send)


def _upstream(run: Callable[[Gateway, bytes, Send], Awaitable[None]]) -> Handler:
    """A route that sends a request upstream: bounded body, cancelled if the client leaves."""

    async def handler(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
        body = await read_body(scope, receive, gateway.settings.max_body_bytes)
        with gateway.disconnects.watching(receive, lambda: call.finished):
            await run(gateway, body, call.send)

    return handler


_chat = _upstream(chat_completions)
_messages = _upstream(messages)
_responses = _upstream(create_response)


async def _count_tokens(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    body = await read_body(scope, receive, gateway.settings.max_body_bytes)
    await count_tokens(gateway, body, call.send)


async def _page(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await web.asset(gateway, scope["path"], call.send)


async def _status(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await web.api_status(gateway, call.send)


async def _login(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await web.api_login(gateway, scope, receive, call.send)


async def _login_code(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await web.api_login_code(gateway, scope, receive, call.send)


async def _logout(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await web.api_logout(gateway, scope, receive, call.send)


async def _callback(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await web.oauth_callback(gateway, scope, call.send)


GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})
ROUTES: dict[str, Route] = {
    "/": Route(GET, _page, protected=False, web=True),
    "/static/app.js": Route(GET, _page, protected=False, web=True),
    "/static/style.css": Route(GET, _page, protected=False, web=True),
    "/api/status": Route(GET, _status, web=True),
    "/api/login": Route(POST, _login, web=True),
    "/api/login/code": Route(POST, _login_code, web=True),
    "/api/logout": Route(POST, _logout, web=True),
    # Protected by the login's state instead: iFlow's redirect carries no key.
    "/oauth2callback": Route(GET, _callback, protected=False, web=True),
    "/health": Route(GET, _health, protected=False),
    "/v1/models": Route(GET, _models),
    "/models": Route(GET, _models),
    "/v1/chat/completions": Route(POST, _chat),
    "/chat/completions": Route(POST, _chat),
    "/v1/responses": Route(POST, _responses),
    "/responses": Route(POST, _responses),
    "/v1/messages": Route(POST, _messages, dialect="anthropic"),
    "/messages": Route(POST, _messages, dialect="anthropic"),
    "/v1/messages/count_tokens": Route(POST, _count_tokens, dialect="anthropic"),
    "/messages/count_tokens": Route(POST, _count_tokens, dialect="anthropic"),
}
MODEL_PREFIXES = ("/v1/models/", "/models/")


def not_logged_in_message(settings: Settings) -> str:
    where = settings.iflow_home / "settings.json"
    return (
        f"iflow2api found no iFlow credentials in {where}. Log in on this gateway's page (open its "
        "address in a browser), or run `iflow2api login` (`--no-browser` on a server), or log in "
        'with the iFlow CLI. For another OpenAI-compatible provider, put "selectedAuthType": '
        '"openai-compatible" with "baseUrl", "apiKey" and "modelName" in settings.json. No restart '
        "is needed."
    )


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = CredentialSource(settings.iflow_home, base_url_override=settings.upstream_base_url)
        self.client = UpstreamClient(
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.stream_idle_timeout,
        )
        self.gates = Gates(settings.queue_size, settings.queue_timeout)
        self.models = ModelDirectory(self.client, settings.models_cache_ttl)
        self._iflow = IflowSpeaker(thinking_default=settings.thinking_default)
        self._openai = OpenAICompatibleSpeaker()
        self._client_keys = tuple(key.encode() for key in settings.api_keys)
        self.disconnects = DisconnectWatch()
        self.reasoning = ReasoningStore()
        self.responses = ResponseMemory()
        self.oauth = OAuthClient(settings.oauth_base_url)
        self.login = LoginFlow(settings.iflow_home, self.oauth)
        self.refresher = Refresher(
            settings.iflow_home, self.oauth, lead=settings.refresh_lead, data_dir=settings.data_dir
        )
        self.assets = web.load_assets()
        self.started_at = time.time()

    # -- what the routes ask of the gateway -------------------------------------------------------

    def account(self) -> Account:
        account = self.credentials.current()
        if account is None:
            raise NotLoggedIn(not_logged_in_message(self.settings))
        return account

    async def fresh_account_after_auth_failure(self, used: Account) -> Account | None:
        """A different key to retry with after the upstream refused ``used``, or None.

        Either the login was refreshed a moment ago (the files already hold a new key), or this
        is an OAuth login whose key expired: then refresh it now, shared with any other request
        that saw the same.
        """
        self.credentials.invalidate()
        current = self.credentials.current()
        if current is not None and current.api_key != used.api_key:
            return current
        if self.refresher.status().state == "no-login" or not await self.refresher.refresh_now():
            return None
        self.credentials.invalidate()
        current = self.credentials.current()
        return current if current is not None and current.api_key != used.api_key else None

    def speaker(self, account: Account) -> Speaker:
        return self._iflow if account.kind == "iflow" else self._openai

    def concurrency_limit(self, account: Account) -> int | None:
        if self.settings.concurrency is not None:
            return self.settings.concurrency or None
        # iFlow serves one request at a time per account (protocol §8); others set their own limits.
        return 1 if account.kind == "iflow" else None

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        began = time.perf_counter()
        call = Call(send)
        path: str = scope["path"]
        try:
            await self._dispatch(scope, receive, call, path)
        except ClientGone:
            log.info("%s %s: the client went away; upstream request cancelled", scope["method"], path)
            return
        except GatewayError as error:
            await self._fail(call, error)
        except Exception:
            log.exception("%s %s failed", scope["method"], path)
            await self._fail(call, GatewayError("iflow2api hit an internal error; the log has the details."))
        if log.isEnabledFor(logging.INFO):
            elapsed = (time.perf_counter() - began) * 1000
            log.info("%s %s %s %.1f ms", scope["method"], path, call.status, elapsed)

    async def _dispatch(self, scope: Scope, receive: Receive, call: Call, path: str) -> None:
        method: str = scope["method"]
        route = ROUTES.get(path)
        if route is None and path.startswith(MODEL_PREFIXES):
            model_id = path.split("/models/", 1)[1]
            route = Route(GET, lambda g, s, r, c: retrieve_model(g, model_id, c.send))
        if route is None:
            raise RouteNotFound(f"There is no {path} here. See /v1/models and /v1/chat/completions.")
        call.dialect = route.dialect
        if route.web:
            call.same_origin_only = True
            self._check_browser_origin(scope, method)
        if method == "OPTIONS":
            if route.web:
                raise MethodNotAllowed("The page's API is same-origin only.")
            await self._preflight(scope, call, route)
            return
        if method not in route.methods:
            allowed = ", ".join(sorted(route.methods))
            raise MethodNotAllowed(
                f"{path} accepts {allowed}, not {method}.", headers=[(b"allow", allowed.encode())]
            )
        if route.protected and self._client_keys:
            self._check_client_key(scope)
        await route.handler(self, scope, receive, call)

    def _check_browser_origin(self, scope: Scope, method: str) -> None:
        """Refuse the page and its API to other sites, and to DNS-rebound host names.

        Without client keys the gateway only listens on loopback; a page on some other site
        could still reach it through a host name of its own that resolves to 127.0.0.1, so the
        Host header must then name loopback itself.
        """
        host = (header(scope, b"host") or b"").decode("latin-1")
        if not self._client_keys and not is_loopback_host(host):
            raise Forbidden(f"This page answers only on a loopback address, not on {host!r}.")
        origin = header(scope, b"origin")
        writes = method not in ("GET", "HEAD")
        if writes and origin is not None and urllib.parse.urlsplit(origin.decode("latin-1")).netloc != host:
            raise Forbidden("Requests from other sites are refused.")

    def _check_client_key(self, scope: Scope) -> None:
        offered = header(scope, b"x-api-key") or b""
        authorization = header(scope, b"authorization") or b""
        if authorization[:7].lower() == b"bearer ":
            offered = authorization[7:].strip()
        # compare_digest on every key: the time taken says nothing about which key came close.
        if not any(hmac.compare_digest(offered, key) for key in self._client_keys):
            raise UpstreamAuthError(
                "Missing or wrong API key for this gateway. Send one of its client keys as "
                "'Authorization: Bearer <key>'.",
                code="invalid_api_key",
            )

    async def _preflight(self, scope: Scope, call: Call, route: Route) -> None:
        requested = header(scope, b"access-control-request-headers") or b"authorization, content-type"
        headers = [
            *CORS_HEADERS,
            (b"access-control-allow-methods", ", ".join(sorted(route.methods)).encode()),
            (b"access-control-allow-headers", requested),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        await call.send({"type": "http.response.start", "status": 204, "headers": headers})
        await call.send({"type": "http.response.body", "body": b""})

    async def _fail(self, call: Call, error: GatewayError) -> None:
        if call.started:
            # Too late for a status code; the stream relay already wrote an error event if it could.
            log.warning("error after the response had started: %s", error.message)
            return
        log.log(
            logging.WARNING if error.status >= 500 else logging.INFO, "%s %s", error.status, error.message
        )
        if call.dialect == "anthropic":
            status, body = anthropic.error_status(error), anthropic.error_body(error)
        else:
            status, body = error.status, error_body(error)
        await send_bytes(call.send, status, body, extra=error.headers())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.client.start()
                    self.disconnects.start()
                    self.refresher.start()
                except Exception as exc:  # pragma: no cover - start() only builds objects
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.disconnects.stop()
                await self.refresher.stop()
                await self.oauth.close()
                await self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> Gateway:
    return Gateway(settings)


__all__ = ["Gateway", "create_app", "send_json"]
