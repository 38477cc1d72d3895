"""The gateway as an ASGI application: ``create_app(settings)`` builds everything it owns.

Routing is a dict lookup on the exact path; the OpenAI paths are served with and without ``/v1``
because clients differ on whether the base URL includes it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from iflow2api import admin, clientkeys, logs
from iflow2api.addresses import is_loopback, is_loopback_host
from iflow2api.asgi import (
    CORS_HEADERS,
    ReadDeadline,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_bytes,
    send_json,
)
from iflow2api.auth import iflow_files, oauth
from iflow2api.auth.credentials import Account, CredentialSource
from iflow2api.auth.login import LoginFlow
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import REJECTION_FILE, Refresher
from iflow2api.background import Background
from iflow2api.calls import Call, Dialect
from iflow2api.clientkeys import KeyRing
from iflow2api.dialects.anthropic import errors as anthropic_errors
from iflow2api.dialects.openai_chat import error_body
from iflow2api.disconnects import ClientGone, DisconnectWatch, shutting_down
from iflow2api.errors import (
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    NotLoggedIn,
    RouteNotFound,
    UpstreamAuthError,
)
from iflow2api.pool.book import AccountBook, save_login
from iflow2api.pool.outcomes import CooldownPolicy
from iflow2api.pool.router import Pool
from iflow2api.reasoning import ReasoningStore
from iflow2api.routes import manage, web
from iflow2api.routes.chat import chat_completions
from iflow2api.routes.health import health
from iflow2api.routes.messages import count_tokens, messages
from iflow2api.routes.models import list_models, retrieve_model
from iflow2api.routes.responses import ResponseMemory, create_response
from iflow2api.settings import Settings, SettingsError, load
from iflow2api.state import StateFileError, open_store
from iflow2api.state.store import StateStore
from iflow2api.upstream.client import UpstreamClient
from iflow2api.upstream.models import ModelDirectory
from iflow2api.upstream.speakers import IflowSpeaker, OpenAICompatibleSpeaker, Speaker
from iflow2api.usage.metrics import Metrics
from iflow2api.usage.recorder import UsageRecorder

log = logging.getLogger("iflow2api")

Handler = Callable[["Gateway", Scope, Receive, Call], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str]
    handler: Handler
    #: Who may call it when client keys exist: ``client`` (any key), ``admin`` (an admin key or
    #: the page's session), or ``open``.
    access: str = "client"
    #: The page and its API: same-origin only (no CORS), and only for this gateway's own host name.
    web: bool = False
    #: Whose error shape failures are shown in.
    dialect: Dialect = "openai"
    #: Requests to the upstream are recorded in the usage table, under this API's name.
    usage: str | None = None


async def _health(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await health(gateway, call.send)


async def _models(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
    await list_models(gateway, call.send)


def _upstream(run: Callable[[Gateway, Scope, bytes, Call], Awaitable[None]]) -> Handler:
    """A route that sends a request upstream: bounded body, cancelled if the client leaves."""

    async def handler(gateway: Gateway, scope: Scope, receive: Receive, call: Call) -> None:
        body = await read_body(scope, receive, gateway.settings.max_body_bytes)
        with gateway.disconnects.watching(receive, lambda: call.finished):
            await run(gateway, scope, body, call)

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
    await web.api_status(gateway, call.send, signed_in=gateway.is_admin(scope))


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
    **{path: Route(GET, _page, access="open", web=True) for path in web.PAGE_PATHS},
    "/api/status": Route(GET, _status, access="open", web=True),
    "/api/session": Route(POST, manage.open_session, access="open", web=True),
    "/api/session/end": Route(POST, manage.close_session, access="open", web=True),
    "/api/login": Route(POST, _login, access="admin", web=True),
    "/api/login/code": Route(POST, _login_code, access="admin", web=True),
    "/api/logout": Route(POST, _logout, access="admin", web=True),
    "/api/accounts": Route(frozenset({"GET", "POST"}), manage.accounts_route, access="admin", web=True),
    "/api/accounts/action": Route(POST, manage.account_action, access="admin", web=True),
    "/api/keys": Route(frozenset({"GET", "POST"}), manage.keys_route, access="admin", web=True),
    "/api/keys/revoke": Route(POST, manage.revoke_key, access="admin", web=True),
    "/api/usage": Route(GET, manage.usage_summary, access="admin", web=True),
    "/api/usage.csv": Route(GET, manage.usage_csv, access="admin", web=True),
    # Protected by the login's state instead: iFlow's redirect carries no key.
    "/oauth2callback": Route(GET, _callback, access="open", web=True),
    "/health": Route(GET, _health, access="open"),
    "/metrics": Route(GET, manage.metrics, access="admin"),
    "/v1/models": Route(GET, _models),
    "/models": Route(GET, _models),
    "/v1/chat/completions": Route(POST, _chat, usage="chat"),
    "/chat/completions": Route(POST, _chat, usage="chat"),
    "/v1/responses": Route(POST, _responses, usage="responses"),
    "/responses": Route(POST, _responses, usage="responses"),
    "/v1/messages": Route(POST, _messages, dialect="anthropic", usage="anthropic"),
    "/messages": Route(POST, _messages, dialect="anthropic", usage="anthropic"),
    "/v1/messages/count_tokens": Route(POST, _count_tokens, dialect="anthropic"),
    "/messages/count_tokens": Route(POST, _count_tokens, dialect="anthropic"),
}
MODEL_PREFIXES = ("/v1/models/", "/models/")


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    return client is None or is_loopback(str(client[0]))  # no address: a Unix socket, also local


def not_logged_in_message(settings: Settings) -> str:
    where = settings.iflow_home / "settings.json"
    return (
        f"iflow2api found no iFlow credentials in {where}. Log in on this gateway's page (open its "
        "address in a browser), or run `iflow2api login` (`--no-browser` on a server), or log in "
        'with the iFlow CLI. For another OpenAI-compatible provider, put "selectedAuthType": '
        '"openai-compatible" with "baseUrl", "apiKey" and "modelName" in settings.json, or add an '
        "account with `iflow2api accounts add`. No restart is needed."
    )


class Gateway:
    def __init__(self, settings: Settings, store: StateStore | None = None) -> None:
        self.settings = settings
        self.store: StateStore = (
            store
            if store is not None
            else open_store(settings.data_dir, max_response_history_bytes=settings.responses_store_max_bytes)
        )
        self.credentials = CredentialSource(settings.iflow_home, base_url_override=settings.upstream_base_url)
        self.client = UpstreamClient(
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.stream_idle_timeout,
            max_body=settings.max_upstream_body,
        )
        self.models = ModelDirectory(self.client, settings.models_cache_ttl)
        self._iflow = IflowSpeaker(thinking_default=settings.thinking_default)
        self._openai = OpenAICompatibleSpeaker()
        self.disconnects = DisconnectWatch()
        self.background = Background()
        self._spawn = self.background.spawn
        self.reasoning = ReasoningStore(save=lambda items: self._spawn(self.store.put_reasoning(items)))
        self.responses = ResponseMemory(
            max_bytes=settings.responses_store_max_bytes,
            save=lambda rid, history: self._spawn(self.store.put_response_history(rid, history)),
            load=self.store.response_history,
        )
        self.oauth = OAuthClient(settings.oauth_base_url)
        self.login = LoginFlow(settings.iflow_home, self.oauth, save=self._save_login)
        self.refresher = Refresher(
            settings.iflow_home, self.oauth, lead=settings.refresh_lead, data_dir=settings.data_dir
        )
        self.usage = UsageRecorder(self.store, retention_days=settings.usage_retention_days)
        self.metrics = Metrics()
        self.keys = KeyRing(tokens_today=self.usage.tokens_today)
        self._env_keys = clientkeys.env_records(settings.api_keys)
        self.keys.load(self._env_keys)
        self.sessions = admin.Sessions()
        self.password_checks = asyncio.Semaphore(1)
        #: Recent usage summaries by range in days, with when they were made (see routes.manage).
        self.summaries: dict[int, tuple[float, dict[str, Any]]] = {}
        self._admin_hash: str | None = None
        #: The store's generation when the keys were last loaded (see ``_catch_up_keys``).
        self._keys_generation: int | None = None
        self.beyond_loopback = not is_loopback(settings.host)
        self.pool = Pool(
            strategy="fill-first" if settings.strategy == "fill-first" else "round-robin",
            affinity=settings.session_affinity,
            queue_size=settings.queue_size,
            queue_timeout=settings.queue_timeout,
            policy=CooldownPolicy(
                settings.cooldown_base,
                settings.cooldown_max,
                settings.error_cooldown,
                settings.max_cooldown_wait,
            ),
            serves=lambda member, model: self.accounts.serves(member, model),
            known_models=lambda: self.accounts.known_models(),
            persist_health=lambda account_id, health: self.accounts.persist_health(account_id, health),
            persist_affinity=lambda session, account_id: self.accounts.persist_affinity(session, account_id),
        )
        self.accounts = AccountBook(
            settings=settings,
            store=self.store,
            pool=self.pool,
            credentials=self.credentials,
            cli_refresher=self.refresher,
            oauth_client=self.oauth,
            models=self.models,
            background=self.background,
        )
        self.accounts.on_change = lambda: self._spawn(self.reload_keys())
        self.assets = web.load_assets()
        self.started_at = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stops = 0

    # -- what the routes ask of the gateway -------------------------------------------------------

    def no_accounts(self) -> GatewayError:
        return NotLoggedIn(not_logged_in_message(self.settings))

    def speaker(self, account: Account) -> Speaker:
        return self._iflow if account.kind == "iflow" else self._openai

    async def reload_keys(self) -> None:
        generation = await self.store.generation()
        self.keys.load([*self._env_keys, *await self.store.client_keys()])
        self._admin_hash = await self.store.get_setting(admin.ADMIN_PASSWORD_SETTING)
        self._keys_generation = generation

    async def _catch_up_keys(self, offered: bytes) -> None:
        """Reload the keys if ``offered`` is unknown and the store changed since they were loaded.

        The account book notices changes within a second, but a key made with ``iflow2api keys
        create`` must work on the very next request: a key the ring does not know costs one cheap
        read of the store's generation before it is refused. Known keys cost nothing.
        """
        if not offered or self.keys.find(offered) is not None:
            return
        try:
            if await self.store.generation() == self._keys_generation:
                return
            await self.reload_keys()
        except Exception:  # the key is refused as unknown; the failure is for the log
            log.warning("could not look for new client keys in the state store", exc_info=True)

    async def _save_login(self, tokens: oauth.Tokens, user: oauth.UserInfo) -> object:
        account_id = await save_login(self.settings.iflow_home, self.store, tokens, user)
        await self.accounts.load()
        self.accounts.issued(account_id, tokens)
        return account_id

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
        offered = clientkeys.offered_key(header(scope, b"authorization"), header(scope, b"x-api-key"))
        record = self.keys.find(offered) if offered else None
        return record is not None and record.admin

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        call = Call(send)
        path: str = scope["path"]
        receive = ReadDeadline(receive, self.settings.request_read_timeout)
        try:
            await self._dispatch(scope, receive, call, path)
        except ClientGone:
            log.info("%s %s: the client went away; upstream request cancelled", scope["method"], path)
            call.status, call.error_code = 499, "client_gone"
        except GatewayError as error:
            await self._fail(call, error)
        except Exception:
            log.exception("%s %s failed", scope["method"], path)
            await self._fail(call, GatewayError("iflow2api hit an internal error; the log has the details."))
        finally:
            await call.close()
        if call.kind is not None:
            row = call.usage_row()
            self.metrics.observe(row)
            if self.settings.record_usage:
                self.usage.record(row)
            else:
                self.usage.count(row)
        if log.isEnabledFor(logging.INFO):
            elapsed = (time.perf_counter() - call.began) * 1000
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
        if self.disconnects.draining:
            # A stop has begun (a request on a kept-alive connection, racing the signal).
            raise shutting_down()
        if not self.needs_keys() and path != "/health" and not _from_loopback(scope):
            # Another ASGI server may listen more widely than the host setting says (0.0.0.0).
            raise Forbidden(
                "This gateway has no client keys, so it serves only its own machine. Create one "
                "with `iflow2api keys create NAME` (or set IFLOW2API_API_KEYS)."
            )
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
        if route.access != "open" and self.needs_keys():
            await self._catch_up_keys(
                clientkeys.offered_key(header(scope, b"authorization"), header(scope, b"x-api-key"))
            )
            if route.access == "admin":
                self._check_admin(scope)
            else:
                call.key = self.keys.authenticate(
                    clientkeys.offered_key(header(scope, b"authorization"), header(scope, b"x-api-key"))
                )
                # From here on a refusal is recorded too (a key's own limits, under its name);
                # requests without a valid key are not, so nobody can fill the database.
                call.kind = route.usage
                self.keys.admit(call.key)
        call.kind = route.usage  # usage-recorded routes only: chat, anthropic or responses
        await route.handler(self, scope, receive, call)

    def _check_browser_origin(self, scope: Scope, method: str) -> None:
        """Refuse the page and its API to other sites, and to DNS-rebound host names.

        Without client keys the gateway only listens on loopback; a page on some other site
        could still reach it through a host name of its own that resolves to 127.0.0.1, so the
        Host header must then name loopback itself.
        """
        host = (header(scope, b"host") or b"").decode("latin-1")
        if not self.needs_keys() and not is_loopback_host(host):
            raise Forbidden(f"This page answers only on a loopback address, not on {host!r}.")
        origin = header(scope, b"origin")
        writes = method not in ("GET", "HEAD")
        if writes and origin is not None and urllib.parse.urlsplit(origin.decode("latin-1")).netloc != host:
            raise Forbidden("Requests from other sites are refused.")

    def _check_admin(self, scope: Scope) -> None:
        if not self.is_admin(scope):
            raise UpstreamAuthError(
                "Sign in on the page with the admin password, or send an admin key "
                "('Authorization: Bearer <key>').",
                code="admin_required",
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
        call.error_code = error.code or error.type
        if call.started:
            after = "content" if call.content_sent else "keep-alive pings"
            if await call.fail_late(error):
                log.info("%s %s (reported in the stream, after %s)", error.status, error.message, after)
                return
            # Too late for a status code; the stream relay already wrote an error event if it could.
            log.warning("error after the response had started: %s", error.message)
            return
        log.log(
            logging.WARNING if error.status >= 500 else logging.INFO, "%s %s", error.status, error.message
        )
        if call.dialect == "anthropic":
            status, body = anthropic_errors.error_status(error), anthropic_errors.error_body(error)
        else:
            status, body = error.status, error_body(error)
        call.status = status
        await send_bytes(call.send, status, body, extra=error.headers())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except StateFileError as exc:
                    # Its message names the file and says why; a traceback would only hide that.
                    await send(
                        {"type": "lifespan.startup.failed", "message": f"iflow2api could not start: {exc}"}
                    )
                    return
                except Exception as exc:
                    log.exception("iflow2api could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.disconnects.shut_down()
                await self.disconnects.stop()
                await self.refresher.stop()
                await self.accounts.stop()
                await self.usage.stop()
                await self.background.drain(seconds=2)
                await self.oauth.close()
                await self.client.close()
                await self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def stop_soon(self) -> None:
        """A stop was asked for (SIGTERM, Ctrl+C): drain, or end everything now if asked again.

        The first call refuses new requests and lets the open ones finish for ``shutdown_grace``
        seconds; those still open then end with an error in their dialect (an error event, in a
        stream). A second call ends them at once. Callable from a signal handler: it only sets a
        count and hands the work to the loop. Without this, a stream on a silent upstream would
        hold the stop up until the server's own timeout, and then be cut off without a word.
        """
        if self._loop is None:
            return  # not started: nothing open
        self._stops += 1
        if self._stops == 1:
            self._loop.call_soon_threadsafe(self.disconnects.drain, self.settings.shutdown_grace)
        else:
            self._loop.call_soon_threadsafe(self.disconnects.shut_down)

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._remove_stale_temps)
        await self.client.start()
        self.disconnects.start()
        self.refresher.start()
        await self.reload_keys()
        await self.store.open()  # a broken database stops the start here, with its path
        await self.accounts.start()
        self.pool.restore_affinities(await self.store.affinities(time.time() - 86_400))
        self.reasoning.preload(await self.store.reasoning(self.reasoning.max_entries))
        await self.usage.load_today()
        self.usage.start()

    def _remove_stale_temps(self) -> None:
        """Our temporary files that a killed write left behind: each holds a copy of a secret."""
        home, data = self.settings.iflow_home, self.settings.data_dir
        removed = iflow_files.remove_stale_login_temps(home) + iflow_files.remove_stale_temps(
            data, [REJECTION_FILE]
        )
        for path in removed:
            log.info("removed %s, left by an interrupted write", path)


def create_app(settings: Settings | None = None) -> Gateway:
    """The gateway for ``settings``; without them, for the environment and the config file.

    The second form is for ASGI servers (``uvicorn --factory iflow2api.app:create_app``), which
    then own the logging too: iflow2api's own lines go to stderr, redacted, unless the server
    already sends them somewhere.
    """
    if settings is None:
        settings = load()
        _log_alone(settings.log_level)
    return Gateway(settings)


def _log_alone(level: str) -> None:
    ours = logging.getLogger("iflow2api")
    if ours.hasHandlers():
        return
    # Beside the server's own lines, in their shape ("INFO:     ...").
    ours.addHandler(logs.redacting_handler("%(levelname)s:     %(name)s: %(message)s"))
    ours.setLevel(level.upper())


class LazyApp:
    """``iflow2api.app:app``: the gateway for any ASGI server, built on its first use.

    Importing this module does nothing; the settings are read, and the gateway made, when the
    server first calls the app (its lifespan start-up, or else the first request)::

        python -c "import uvicorn; from iflow2api.app import app; uvicorn.run(app, port=8001)"
    """

    def __init__(self) -> None:
        self._gateway: Gateway | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._gateway is None:
            try:
                self._gateway = create_app()
            except SettingsError as exc:
                if scope["type"] != "lifespan":
                    raise
                # The server then stops with this line, naming the setting, not a traceback.
                await receive()
                await send(
                    {"type": "lifespan.startup.failed", "message": f"iflow2api could not start: {exc}"}
                )
                return
        await self._gateway(scope, receive, send)


@functools.cache
def _the_app() -> LazyApp:
    return LazyApp()


def __getattr__(name: str) -> LazyApp:
    # ``app`` is made when it is asked for, so that importing the module stays free of work; and
    # made once: each LazyApp builds its own gateway, and two on the same state files would each
    # keep their own pool, keys and usage. This cache is the one module-level state, because a
    # server imports ``iflow2api.app:app`` by name and cannot be handed an object we built.
    if name == "app":
        return _the_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Gateway", "LazyApp", "create_app", "send_json"]
