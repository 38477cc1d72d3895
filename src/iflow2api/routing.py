"""Which handler serves which path, and who may call it: the gateway's route table.

Routing is a dict lookup on the exact path; the OpenAI paths are served with and without ``/v1``
because clients differ on whether the base URL includes it. The handlers here only pick, from the
route objects the gateway (the composition root) built (``Routes``), the one that serves the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from iflow2api.asgi import Receive, Scope, read_body
from iflow2api.calls import Call, ErrorShape
from iflow2api.disconnects import DisconnectWatch
from iflow2api.routes.chat import ChatRoute
from iflow2api.routes.health import HealthRoute
from iflow2api.routes.manage import ConsoleRoutes
from iflow2api.routes.messages import MessagesRoute
from iflow2api.routes.models import ModelsRoute
from iflow2api.routes.responses import ResponsesRoute
from iflow2api.routes.web import PAGE_PATHS, PageRoutes
from iflow2api.services.dispatch import Dispatcher
from iflow2api.services.model_listing import ModelListing
from iflow2api.services.response_memory import ResponseMemory


class ApiRoutes:
    """The API's routes, each built with the few services it uses (by ``Gateway``)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        memory: ResponseMemory,
        listing: ModelListing,
        health: HealthRoute,
        *,
        max_body_bytes: int,
        disconnects: DisconnectWatch,
    ) -> None:
        self.chat = ChatRoute(dispatcher)
        self.messages = MessagesRoute(dispatcher)
        self.responses = ResponsesRoute(dispatcher, memory)
        self.models = ModelsRoute(listing)
        self.health = health
        #: The largest request body read, and the watch that cancels a request its client left.
        self.max_body_bytes = max_body_bytes
        self.disconnects = disconnects


@dataclass(frozen=True, slots=True)
class Routes:
    """Every route object a handler may call: the API's, the page's and the management API's."""

    api: ApiRoutes
    page: PageRoutes
    console: ConsoleRoutes


Handler = Callable[[Routes, Scope, Receive, Call], Awaitable[None]]


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
    error_shape: ErrorShape = "openai"
    #: Requests to the upstream are recorded in the usage table, under this API's name.
    usage: str | None = None


async def _health(routes: Routes, scope: Scope, receive: Receive, call: Call) -> None:
    await routes.api.health(call.send)


async def _models(routes: Routes, scope: Scope, receive: Receive, call: Call) -> None:
    await routes.api.models.list(call.send)


def model_handler(model_id: str) -> Handler:
    async def handler(routes: Routes, scope: Scope, receive: Receive, call: Call) -> None:
        await routes.api.models.retrieve(model_id, call.send)

    return handler


class _Upstream(Protocol):
    async def __call__(self, scope: Scope, body: bytes, call: Call) -> None: ...


def _upstream(route: Callable[[ApiRoutes], _Upstream]) -> Handler:
    """A route that sends a request upstream: bounded body, cancelled if the client leaves."""

    async def handler(routes: Routes, scope: Scope, receive: Receive, call: Call) -> None:
        body = await read_body(scope, receive, routes.api.max_body_bytes)
        with routes.api.disconnects.watching(receive, lambda: call.finished):
            await route(routes.api)(scope, body, call)

    return handler


_chat = _upstream(lambda api: api.chat)
_messages = _upstream(lambda api: api.messages)
_responses = _upstream(lambda api: api.responses)


async def _count_tokens(routes: Routes, scope: Scope, receive: Receive, call: Call) -> None:
    body = await read_body(scope, receive, routes.api.max_body_bytes)
    await routes.api.messages.count_tokens(body, call.send)


class _Method(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, call: Call) -> None: ...


def _served(method: Callable[[Routes], _Method]) -> Handler:
    """A route of the page (``routes.web``) or of the management API (``routes.manage``)."""

    async def handler(routes: Routes, scope: Scope, receive: Receive, call: Call) -> None:
        await method(routes)(scope, receive, call)

    return handler


GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})
ROUTES: dict[str, Route] = {
    **{path: Route(GET, _served(lambda r: r.page.asset), access="open", web=True) for path in PAGE_PATHS},
    "/api/status": Route(GET, _served(lambda r: r.page.status), access="open", web=True),
    "/api/session": Route(POST, _served(lambda r: r.console.open_session), access="open", web=True),
    "/api/session/end": Route(POST, _served(lambda r: r.console.close_session), access="open", web=True),
    # Checked in the route: only from this machine, and only while no admin password exists.
    "/api/admin-password": Route(POST, _served(lambda r: r.console.first_password), access="open", web=True),
    "/api/login": Route(POST, _served(lambda r: r.page.start_login), access="admin", web=True),
    "/api/login/code": Route(POST, _served(lambda r: r.page.login_code), access="admin", web=True),
    "/api/logout": Route(POST, _served(lambda r: r.page.logout), access="admin", web=True),
    "/api/accounts": Route(
        frozenset({"GET", "POST"}), _served(lambda r: r.console.accounts), access="admin", web=True
    ),
    "/api/accounts/action": Route(
        POST, _served(lambda r: r.console.account_action), access="admin", web=True
    ),
    "/api/accounts/test": Route(POST, _served(lambda r: r.console.test_account), access="admin", web=True),
    "/api/keys": Route(
        frozenset({"GET", "POST"}), _served(lambda r: r.console.keys), access="admin", web=True
    ),
    "/api/keys/revoke": Route(POST, _served(lambda r: r.console.revoke_key), access="admin", web=True),
    "/api/usage": Route(GET, _served(lambda r: r.console.usage_summary), access="admin", web=True),
    "/api/usage.csv": Route(GET, _served(lambda r: r.console.usage_csv), access="admin", web=True),
    # The page's playground: the chat route itself (parse → dispatch → relay, recorded in the usage
    # table), under its own path rather than /v1/chat/completions taking the session cookie too. So
    # the key check of the API stays exactly what it was, and the playground gets what every page
    # route has: the admin session (or an admin key), same origin only, no CORS.
    "/api/playground": Route(POST, _chat, access="admin", web=True, usage="chat"),
    # What the playground offers: the API's /v1/models, for the page's session instead of a client key.
    "/api/models": Route(GET, _models, access="admin", web=True),
    # Protected by the login's state instead: iFlow's redirect carries no key.
    "/oauth2callback": Route(GET, _served(lambda r: r.page.oauth_callback), access="open", web=True),
    "/health": Route(GET, _health, access="open"),
    "/metrics": Route(GET, _served(lambda r: r.console.metrics), access="admin"),
    "/v1/models": Route(GET, _models),
    "/models": Route(GET, _models),
    "/v1/chat/completions": Route(POST, _chat, usage="chat"),
    "/chat/completions": Route(POST, _chat, usage="chat"),
    "/v1/responses": Route(POST, _responses, usage="responses"),
    "/responses": Route(POST, _responses, usage="responses"),
    "/v1/messages": Route(POST, _messages, error_shape="anthropic", usage="anthropic"),
    "/messages": Route(POST, _messages, error_shape="anthropic", usage="anthropic"),
    "/v1/messages/count_tokens": Route(POST, _count_tokens, error_shape="anthropic"),
    "/messages/count_tokens": Route(POST, _count_tokens, error_shape="anthropic"),
}
MODEL_PREFIXES = ("/v1/models/", "/models/")
