"""The gateway as an ASGI application: ``create_app(settings)`` builds everything it owns.

``Gateway`` is the composition root: it builds the services and hands each route the few it uses
(``routing.Routes``: the API's, the page's and the management API's route objects); the route
table itself is ``routing.ROUTES``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import urllib.parse

from iflow2api import clientkeys, logs
from iflow2api.addresses import is_loopback, is_loopback_host
from iflow2api.asgi import CORS_HEADERS, ReadDeadline, Receive, Scope, Send, header, send_bytes
from iflow2api.auth import iflow_files, oauth
from iflow2api.auth.credentials import CredentialSource
from iflow2api.auth.login import LoginFlow
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import REJECTION_FILE, Refresher
from iflow2api.background import Background
from iflow2api.calls import Call
from iflow2api.clientkeys import KeyRing
from iflow2api.clustering import coordinator_for, metrics_for, name_of, shared_parts
from iflow2api.coordination import Coordinator
from iflow2api.dialects.anthropic import errors as anthropic_errors
from iflow2api.dialects.openai_chat.errors import error_body
from iflow2api.disconnects import ClientGone, DisconnectWatch, shutting_down
from iflow2api.errors import Forbidden, GatewayError, MethodNotAllowed, RouteNotFound
from iflow2api.pool.book import AccountBook, save_login
from iflow2api.pool.directory import Directory
from iflow2api.pool.members import CLI_ACCOUNT_ID
from iflow2api.pool.outcomes import CooldownPolicy
from iflow2api.pool.router import Pool
from iflow2api.providers import Profiles
from iflow2api.reasoning import ReasoningStore
from iflow2api.routes.health import HealthRoute
from iflow2api.routes.manage import ConsoleRoutes
from iflow2api.routes.web import PageRoutes
from iflow2api.routing import GET, MODEL_PREFIXES, ROUTES, ApiRoutes, Route, Routes, model_handler
from iflow2api.services.access import Access, from_loopback, offered_key
from iflow2api.services.account_check import AccountCheck
from iflow2api.services.dispatch import Dispatcher
from iflow2api.services.membership import Membership
from iflow2api.services.model_listing import ModelListing
from iflow2api.services.response_memory import ResponseMemory
from iflow2api.services.serving import named_states, next_step, serving
from iflow2api.settings import Settings, SettingsError, load
from iflow2api.state import StateFileError, open_store
from iflow2api.state.store import StateStore
from iflow2api.upstream.client import UpstreamClient
from iflow2api.upstream.models import ModelDirectory
from iflow2api.usage.recorder import UsageRecorder
from iflow2api.usage.summaries import UsageSummaries

log = logging.getLogger("iflow2api")


def not_logged_in_message(settings: Settings) -> str:
    where = settings.iflow_home / "settings.json"
    return (
        f"iflow2api has {next_step()}. Connect one on this gateway's page (open its address in a "
        'browser), or put "selectedAuthType": "openai-compatible" with "baseUrl", "apiKey" and '
        f'"modelName" in {where}. No restart is needed.'
    )


class Gateway:
    def __init__(
        self, settings: Settings, store: StateStore | None = None, coordinator: Coordinator | None = None
    ) -> None:
        self.settings = settings
        #: This instance's one name: the store's, the coordinator's, the metrics' and the log's.
        self.instance = name_of(settings, coordinator)
        self.coordinator = coordinator or coordinator_for(settings, self.instance)
        self.store: StateStore = store or open_store(
            settings.data_dir,
            max_response_history_bytes=settings.responses_store_max_bytes,
            database_url=settings.database_url,
            instance=self.instance,
            coordinated=self.coordinator is not None,
        )
        self.credentials = CredentialSource(
            settings.iflow_home,
            base_url_override=settings.upstream_base_url,
            provider=settings.upstream_provider,
        )
        self.client = UpstreamClient(
            connect_timeout=settings.connect_timeout,
            first_byte_timeout=settings.first_byte_timeout,
            idle_timeout=settings.stream_idle_timeout,
            max_body=settings.max_upstream_body,
        )
        self.models = ModelDirectory(self.client, settings.models_cache_ttl)
        self.profiles = Profiles(
            thinking_default=settings.thinking_default, options=settings.provider_options
        )
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
            settings.iflow_home,
            self.oauth,
            lead=settings.refresh_lead,
            data_dir=settings.data_dir,
            coordinator=self.coordinator,
            account_id=CLI_ACCOUNT_ID,
        )
        self.usage = UsageRecorder(self.store, retention_days=settings.usage_retention_days)
        self.metrics = metrics_for(settings, self.instance, coordinated=self.coordinator is not None)
        #: What several instances share (``Alone``: nothing, for one process alone).
        self.shared = shared_parts(self.coordinator, settings, self.metrics, on_revoked=self._revoked)
        self.access = Access(
            self.store,
            KeyRing(tokens_today=self.usage.tokens_today, shared=self.shared.key_limits),
            env_keys=clientkeys.env_records(settings.api_keys),
            beyond_loopback=not is_loopback(settings.host),
            spawn=self._spawn,
        )
        directory = Directory(models=self.models, store=self.store, spawn=self._spawn)
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
            directory=directory,
            leases=self.shared.leases,
            shared_health=self.shared.health,
        )
        self.accounts = AccountBook(
            settings=settings,
            store=self.store,
            pool=self.pool,
            directory=directory,
            credentials=self.credentials,
            cli_refresher=self.refresher,
            oauth_client=self.oauth,
            background=self.background,
            # The client keys live in the same store: a change seen there may be theirs too.
            on_change=self.access.reload_soon,
            coordinator=self.coordinator,
        )
        self.started_at = time.time()
        self.membership = Membership(self.accounts, self.pool, not_logged_in=not_logged_in_message(settings))
        listing = ModelListing(self.membership, self.models, settings.model_aliases, self.profiles)
        page = PageRoutes(
            self.access,
            self.credentials,
            self.login,
            self.refresher,
            serving=lambda: serving(named_states(self.membership.members())),
            served_models=listing.available,
            iflow_home=settings.iflow_home,
            model_aliases=settings.model_aliases,
        )
        summaries = UsageSummaries(self.usage, self.store)
        console = ConsoleRoutes(
            self.access,
            self.accounts,
            self.pool,
            self.models,
            self.store,
            self.usage,
            summaries,
            self.metrics,
            AccountCheck(self.client, self.profiles),
        )
        self.routes = Routes(self._api_routes(), page, console)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stops = 0

    def _api_routes(self) -> ApiRoutes:
        settings = self.settings
        membership = self.membership
        profiles = self.profiles
        dispatcher = Dispatcher(
            membership,
            self.pool,
            self.client,
            profiles,
            models=self.models,
            reasoning=self.reasoning,
            settings=settings,
        )
        return ApiRoutes(
            dispatcher,
            self.responses,
            ModelListing(membership, self.models, settings.model_aliases, profiles),
            HealthRoute(self.credentials, membership, self.refresher, started_at=self.started_at),
            max_body_bytes=settings.max_body_bytes,
            disconnects=self.disconnects,
        )

    def _revoked(self) -> None:
        self.access.reload_soon()  # another instance revoked a key: refused here from now on

    async def _save_login(self, tokens: oauth.Tokens, user: oauth.UserInfo) -> object:
        account_id = await save_login(self.settings.iflow_home, self.store, tokens, user)
        await self.accounts.load()
        self.accounts.issued(account_id, tokens)
        return account_id

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
            await self._route(scope, receive, call, path)
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
        if call.dialect is not None:
            row = call.usage_row()
            self.metrics.observe(row)
            if self.settings.record_usage:
                self.usage.record(row)
            else:
                self.usage.count(row)
            if self.shared.key_limits is not None and call.key is not None:
                self._spawn(
                    self.shared.key_limits.add_tokens(call.key.id, row.prompt_tokens + row.completion_tokens)
                )
        if log.isEnabledFor(logging.INFO):
            elapsed = (time.perf_counter() - call.began) * 1000
            log.info("%s %s %s %.1f ms", scope["method"], path, call.status, elapsed)

    async def _route(self, scope: Scope, receive: Receive, call: Call, path: str) -> None:
        method: str = scope["method"]
        route = ROUTES.get(path)
        if route is None and path.startswith(MODEL_PREFIXES):
            model_id = path.split("/models/", 1)[1]
            route = Route(GET, model_handler(model_id))
        if route is None:
            raise RouteNotFound(f"There is no {path} here. See /v1/models and /v1/chat/completions.")
        call.error_shape = route.error_shape
        if self.disconnects.draining:
            # A stop has begun (a request on a kept-alive connection, racing the signal).
            raise shutting_down()
        if not self.access.needs_keys() and path != "/health" and not from_loopback(scope):
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
        access = self.access
        if route.access != "open" and access.needs_keys():
            await access.catch_up(offered_key(scope))
            if route.access == "admin":
                access.check_admin(scope)
            else:
                call.key = access.keys.authenticate(offered_key(scope))
                # From here on a refusal is recorded too (a key's own limits, under its name);
                # requests without a valid key are not, so nobody can fill the database.
                call.dialect = route.usage
                if access.keys.shared is None:
                    access.keys.admit(call.key)
                else:
                    await access.keys.shared.admit(call.key)
        call.dialect = route.usage  # usage-recorded routes only: chat, anthropic or responses
        await route.handler(self.routes, scope, receive, call)

    def _check_browser_origin(self, scope: Scope, method: str) -> None:
        """Refuse the page and its API to other sites, and to DNS-rebound host names.

        Without client keys the gateway only listens on loopback; a page on some other site
        could still reach it through a host name of its own that resolves to 127.0.0.1, so the
        Host header must then name loopback itself.
        """
        host = (header(scope, b"host") or b"").decode("latin-1")
        if not self.access.needs_keys() and not is_loopback_host(host):
            raise Forbidden(f"This page answers only on a loopback address, not on {host!r}.")
        origin = header(scope, b"origin")
        writes = method not in ("GET", "HEAD")
        if writes and origin is not None and urllib.parse.urlsplit(origin.decode("latin-1")).netloc != host:
            raise Forbidden("Requests from other sites are refused.")

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
        if call.error_shape == "anthropic":
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
                await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stop(self) -> None:
        self.disconnects.shut_down()
        await self.disconnects.stop()
        # Whatever may still call the coordinator stops before it closes: a refresh cancelled
        # here unlocks its lock through it, and the last requests' key tokens are counted.
        await self.refresher.stop()
        await self.accounts.stop()
        await self.usage.stop()
        await self.background.drain(seconds=2)
        await self.shared.close()  # after the last request: its leases go back, then the coordinator
        await self.oauth.close()
        await self.client.close()
        await self.store.close()

    def stop_soon(self) -> None:
        """A stop was asked for (SIGTERM, Ctrl+C): drain, or end everything now if asked again.

        The first call refuses new requests and lets the open ones finish for ``shutdown_grace``
        seconds; those still open then end with an error in their error shape (an error event, in a
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
        await self.shared.join()
        self.disconnects.start()
        self.refresher.start()
        await self.access.reload()
        await self.store.open()  # a broken database stops the start here, with its path
        await self.accounts.start()
        self.shared.start()
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


__all__ = ["Gateway", "LazyApp", "create_app"]
