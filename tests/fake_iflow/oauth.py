"""iFlow's OAuth host as the fake plays it (protocol §4): consent page, token endpoint, getUserInfo.

It is served by :class:`~tests.fake_iflow.server.FakeIflow` at its root, next to ``/v1``; the api
keys it hands out are accepted by the fake's chat endpoint. Without a browser::

    fake = FakeIflow().start()  # the gateway's IFLOW2API_OAUTH_BASE_URL is fake.oauth_base_url
    login = fake.oauth.issue_login()  # a logged-in account, as after a real login
    login["api_key"]  # an sk- key the chat endpoint accepts
    fake.oauth.token_lifetime = 2  # tokens issued from now on expire after 2 s
    fake.oauth.fail_next_token("busy")  # the next good token request gets §4.6's HTTP-200 "busy"

The token endpoint answers like the Spring Security OAuth2 server iFlow ran ("Bad client
credentials", ``token_type: "bearer"``, the Spring 404 of §1): a code is spent by the first
exchange that names it, even one that fails on a redirect mismatch, and a refresh revokes the old
refresh *and* access token. Where iFlow's behaviour is unknown the fake is stricter than it has to
be, so a gateway that deviates from the CLI fails a test: the authorize page takes exactly the CLI's
five parameters, and the token request must carry the client in both the Basic header and the form.
"""

from __future__ import annotations

import asyncio
import html
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from aiohttp import web

from tests.fake_iflow import checks

DEFAULT_EMAIL = "user@example.com"
DEFAULT_PHONE = "138****0000"
# §9.1: the real lifetime is unknown; a week matches the api keys' (§4.7).
DEFAULT_TOKEN_LIFETIME = 86400 * 7

AUTHORIZE_PATH = "/oauth"
CONSENT_PATH = "/oauth/consent"
CODE_DISPLAY_PATH = "/oauth/code-display"
SUCCESS_PATH = "/oauth/success"
ERROR_PATH = "/oauth/error"
TOKEN_PATH = "/oauth/token"
USER_INFO_PATH = "/api/oauth/getUserInfo"

# §4.6: what refreshes got when iFlow was overloaded: HTTP 200 and no access_token.
BUSY_BODY: dict[str, Any] = {
    "success": False,
    "code": "500",
    "message": "当前找我聊的人太多了，可以晚点再来问我哦。",
    "exception": None,
    "data": None,
    "extra": None,
}
REVOKED_BODY = {"error": "invalid_grant", "error_description": "refresh token revoked"}
TOKEN_INVALID_BODY = {"success": False, "code": "401", "message": "token invalid"}

TokenFailure = Literal["busy", "http500", "invalid_grant", "drop"]
UserInfoFailure = Literal["no_key", "http500", "success_false", "drop"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODE_ALPHABET = string.ascii_letters + string.digits


# --- wire shapes and records --------------------------------------------------------------------


class TokenResponse(TypedDict):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: Literal["bearer"]
    scope: Literal["read"]


class UserInfo(TypedDict):
    apiKey: str
    userId: int
    userName: str
    avatar: str
    email: str
    phone: str


class Login(TokenResponse):
    """What :meth:`FakeOAuth.issue_login` returns: the token answer, the user, and ``expiry_date``
    (epoch ms, as ``oauth_creds.json`` stores it, §5)."""

    expiry_date: int
    api_key: str
    user_id: int
    user_name: str
    email: str
    phone: str


class TokenRequest(TypedDict):
    """One ``POST /oauth/token``; ``answer`` is ``"ok"``, the scripted failure, or why it was refused."""

    grant_type: str | None
    form: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    answer: str


class UserInfoRequest(TypedDict):
    access_token: str | None
    headers: dict[str, str]  # names lower-cased
    answer: str


# --- state --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Account:
    """One login: whose it is, the key getUserInfo hands out, and its current tokens."""

    user_id: int
    email: str
    api_key: str
    access_token: str = ""
    refresh_token: str = ""

    @property
    def user_name(self) -> str:
        return self.email.partition("@")[0]


@dataclass(frozen=True, slots=True)
class _Authorization:
    """A consent page shown (``/oauth``) or a code issued (``/oauth/consent``), bound to its redirect."""

    redirect: str
    state: str
    email: str


class FakeOAuth:
    """iFlow's OAuth host: state, knobs and record. Reach it as ``FakeIflow.oauth``.

    Knobs (``reset()`` puts them back): ``auto_consent`` makes ``GET /oauth`` act as if Allow was
    clicked; ``token_lifetime`` (s) sets ``expires_in`` of tokens issued from then on; ``email`` is
    who the next login is; ``rotate_key_on_refresh`` gives an account a new api key at each refresh,
    the old one staying good for chat for ``old_key_grace`` seconds, then answered with §7.3 B 439.
    """

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._lock = threading.Lock()
        self.token_requests: list[TokenRequest] = []
        self.user_info_requests: list[UserInfoRequest] = []
        self._token_failures: deque[TokenFailure] = deque()
        self._user_info_failures: deque[UserInfoFailure] = deque()
        self._pending: dict[str, _Authorization] = {}  # consent pages shown, by request id
        self._codes: dict[str, _Authorization] = {}
        self._access: dict[str, tuple[_Account, float]] = {}  # token -> account, expiry (epoch s)
        self._refresh: dict[str, _Account] = {}
        self._keys: dict[str, float] = {}  # every key issued -> accepted until (epoch s)
        self._user_ids: dict[str, int] = {}
        self._refreshes = 0
        self._defaults()

    def _defaults(self) -> None:
        self.auto_consent: bool = False
        self.token_lifetime: int = DEFAULT_TOKEN_LIFETIME
        self.rotate_key_on_refresh: bool = True
        self.old_key_grace: float = 0.0
        self.email: str = DEFAULT_EMAIL
        #: Seconds each token request takes, so that callers racing each other overlap.
        self.token_delay: float = 0.0

    # --- the test's side --------------------------------------------------------------------

    @property
    def refreshes(self) -> int:
        """Successful ``grant_type=refresh_token`` requests."""
        with self._lock:
            return self._refreshes

    def fail_next_token(self, kind: TokenFailure, times: int = 1) -> None:
        """The next ``times`` token requests that would succeed get this failure instead.

        ``"busy"``: HTTP 200 with §4.6's body; ``"http500"``: a Spring 500; ``"invalid_grant"``: 400
        "refresh token revoked", and the refresh token (or code) sent is revoked for good;
        ``"drop"``: the connection is closed without an answer. Only ``invalid_grant`` changes state.
        """
        _check_kind(kind, TokenFailure)
        with self._lock:
            self._token_failures.extend([kind] * times)

    def fail_next_user_info(self, kind: UserInfoFailure, times: int = 1) -> None:
        """The next ``times`` getUserInfo requests with a good token get this failure instead.

        ``"no_key"``: ``success: true`` with ``apiKey: ""``; ``"http500"``: a Spring 500;
        ``"success_false"``: HTTP 200 with §4.6's busy body; ``"drop"``: no answer at all.
        """
        _check_kind(kind, UserInfoFailure)
        with self._lock:
            self._user_info_failures.extend([kind] * times)

    def issue_login(self, email: str | None = None) -> Login:
        """A login as if the browser flow had just finished: tokens, user and api key, all valid."""
        with self._lock:
            account = self._new_account(email or self.email)
            tokens = self._issue_tokens(account)
            return {
                **tokens,
                "expiry_date": int(self._access[account.access_token][1] * 1000),
                "api_key": account.api_key,
                "user_id": account.user_id,
                "user_name": account.user_name,
                "email": account.email,
                "phone": DEFAULT_PHONE,
            }

    def reset(self) -> None:
        """Forget every code, token, key, scripted failure and record; knobs back to their defaults."""
        with self._lock:
            self.token_requests.clear()
            self.user_info_requests.clear()
            self._token_failures.clear()
            self._user_info_failures.clear()
            self._pending.clear()
            self._codes.clear()
            self._access.clear()
            self._refresh.clear()
            self._keys.clear()
            self._user_ids.clear()
            self._refreshes = 0
            self._defaults()

    # --- what the chat endpoint asks --------------------------------------------------------

    def live_keys(self) -> frozenset[str]:
        """Api keys issued here that chat accepts now (current ones, and retired ones in their grace)."""
        now = time.time()
        with self._lock:
            return frozenset(key for key, until in self._keys.items() if now < until)

    def is_expired_key(self, key: str) -> bool:
        """A key issued here and retired by a refresh, past its grace: chat answers it with 439."""
        with self._lock:
            until = self._keys.get(key)
        return until is not None and time.time() >= until

    # --- the server's side ------------------------------------------------------------------

    def routes(self) -> dict[str, dict[str, Handler]]:
        return {
            AUTHORIZE_PATH: {"GET": self._authorize},
            CONSENT_PATH: {"GET": self._consent},
            CODE_DISPLAY_PATH: {"GET": self._code_display},
            SUCCESS_PATH: {"GET": self._success},
            ERROR_PATH: {"GET": self._error},
            TOKEN_PATH: {"POST": self._token},
            USER_INFO_PATH: {"GET": self._user_info},
        }

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = list(request.query.items())
        problem = checks.check_authorize(query)
        if problem is not None:
            return _page(400, "Bad request", f'<p id="problem">{html.escape(problem)}</p>')
        params = dict(query)
        authorization = _Authorization(params["redirect"], params["state"], self.email)
        if self.auto_consent:
            return self._allow(authorization)
        request_id = secrets.token_hex(8)
        with self._lock:
            self._pending[request_id] = authorization
        allow = f"{CONSENT_PATH}?{urlencode({'request': request_id, 'decision': 'allow'})}"
        deny = f"{CONSENT_PATH}?{urlencode({'request': request_id, 'decision': 'deny'})}"
        body = (
            f"<p>The iFlow CLI (client {checks.CLIENT_ID}) asks to sign in as "
            f'<span id="email">{html.escape(authorization.email)}</span>.</p>\n'
            f'<p><a id="allow" href="{html.escape(allow)}">Allow</a>\n'
            f'<a id="deny" href="{html.escape(deny)}">Deny</a></p>'
        )
        return _page(200, "Sign in to iFlow", body)

    async def _consent(self, request: web.Request) -> web.StreamResponse:
        decision = request.query.get("decision")
        if decision not in ("allow", "deny"):
            return _page(400, "Bad request", f'<p id="problem">unknown decision {decision!r}</p>')
        with self._lock:
            authorization = self._pending.pop(request.query.get("request", ""), None)
        if authorization is None:
            return _page(400, "Bad request", '<p id="problem">unknown or already answered request</p>')
        if decision == "deny":
            return _redirect(authorization.redirect, {"error": "access_denied", "state": authorization.state})
        return self._allow(authorization)

    def _allow(self, authorization: _Authorization) -> web.StreamResponse:
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16))
        with self._lock:
            self._codes[code] = authorization
        if authorization.redirect == self._base_url() + CODE_DISPLAY_PATH:
            return _code_page(code, authorization.state)
        return _redirect(authorization.redirect, {"code": code, "state": authorization.state})

    async def _code_display(self, request: web.Request) -> web.StreamResponse:
        code, state = request.query.get("code"), request.query.get("state", "")
        if code:
            return _code_page(code, state)
        error = html.escape(request.query.get("error", "no code"))
        return _page(200, "Login failed", f'<p id="error">{error}</p>')

    async def _success(self, request: web.Request) -> web.StreamResponse:
        return _page(200, "Login successful", '<p id="success">You can close this window.</p>')

    async def _error(self, request: web.Request) -> web.StreamResponse:
        return _page(200, "Login failed", '<p id="error">The login did not complete.</p>')

    async def _token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        headers = {name.lower(): value for name, value in request.headers.items()}
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        record: TokenRequest = {
            "grant_type": form.get("grant_type"),
            "form": form,
            "headers": headers,
            "answer": "ok",
        }
        tokens: TokenResponse | None = None
        with self._lock:
            refusal = checks.check_token_request(request.content_type, headers, form)
            refusal = refusal or self._check_grant(form)
            failure = self._token_failures.popleft() if refusal is None and self._token_failures else None
            if refusal is not None:
                record["answer"] = refusal.reason
            elif failure is not None:
                record["answer"] = failure
                if failure == "invalid_grant":
                    self._codes.pop(form.get("code", ""), None)
                    self._refresh.pop(form.get("refresh_token", ""), None)
            else:
                tokens = self._grant(form)
            self.token_requests.append(record)
        if refusal is not None:
            return _json(refusal.status, refusal.body)
        match failure:
            case None:
                return _json(200, tokens)
            case "busy":
                return _json(200, BUSY_BODY)
            case "http500":
                return _spring_500(TOKEN_PATH)
            case "invalid_grant":
                return _json(400, REVOKED_BODY)
            case "drop":
                return _hang_up(request)

    async def _user_info(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("accessToken")
        headers = {name.lower(): value for name, value in request.headers.items()}
        record: UserInfoRequest = {"access_token": token, "headers": headers, "answer": "ok"}
        failure: UserInfoFailure | None = None
        with self._lock:
            account, expires_at = self._access.get(token or "", (None, 0.0))
            if account is not None and time.time() >= expires_at:
                account, record["answer"] = None, "expired access token"
            elif account is None:
                record["answer"] = "unknown access token"
            elif self._user_info_failures:
                failure = self._user_info_failures.popleft()
                record["answer"] = failure
            self.user_info_requests.append(record)
            if account is None:
                return _json(401, TOKEN_INVALID_BODY)
            info: UserInfo = {
                "apiKey": "" if failure == "no_key" else account.api_key,
                "userId": account.user_id,
                "userName": account.user_name,
                "avatar": "",
                "email": account.email,
                "phone": DEFAULT_PHONE,
            }
        match failure:
            case None | "no_key":
                return _json(200, {"success": True, "data": info})
            case "http500":
                return _spring_500(USER_INFO_PATH)
            case "success_false":
                return _json(200, BUSY_BODY)
            case "drop":
                return _hang_up(request)

    # --- grants (callers hold the lock) -----------------------------------------------------

    def _check_grant(self, form: dict[str, str]) -> checks.Rejection | None:
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code = form.get("code", "")
            authorization = self._codes.get(code)
            if authorization is None:
                return checks.invalid_grant(f"Invalid authorization code: {code}", "unknown or used code")
            if form.get("redirect_uri") != authorization.redirect:
                # Spring spends the code before it compares the redirect URI.
                del self._codes[code]
                reason = f"redirect_uri {form.get('redirect_uri')!r} is not {authorization.redirect!r}"
                return checks.invalid_grant("Redirect URI mismatch.", reason)
            return None
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            if token not in self._refresh:
                return checks.invalid_grant(
                    f"Invalid refresh token: {token}", "unknown or rotated refresh token"
                )
            return None
        if grant_type is None:
            body = checks.oauth_error("invalid_request", "Missing grant type")
            return checks.Rejection("no grant_type", 400, body)
        body = checks.oauth_error("unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        return checks.Rejection(f"grant_type {grant_type!r}", 400, body)

    def _grant(self, form: dict[str, str]) -> TokenResponse:
        """The answer to a request ``_check_grant`` passed."""
        if form["grant_type"] == "authorization_code":
            return self._issue_tokens(self._new_account(self._codes.pop(form["code"]).email))
        account = self._refresh.pop(form["refresh_token"])
        self._access.pop(account.access_token, None)
        if self.rotate_key_on_refresh:
            self._keys[account.api_key] = time.time() + self.old_key_grace
            account.api_key = _new_key()
            self._keys[account.api_key] = float("inf")
        self._refreshes += 1
        return self._issue_tokens(account)

    def _new_account(self, email: str) -> _Account:
        user_id = self._user_ids.setdefault(email, 100001 + len(self._user_ids))
        account = _Account(user_id, email, _new_key())
        self._keys[account.api_key] = float("inf")
        return account

    def _issue_tokens(self, account: _Account) -> TokenResponse:
        account.access_token, account.refresh_token = str(uuid.uuid4()), str(uuid.uuid4())
        lifetime = self.token_lifetime
        self._access[account.access_token] = (account, time.time() + lifetime)
        self._refresh[account.refresh_token] = account
        return {
            "access_token": account.access_token,
            "refresh_token": account.refresh_token,
            "expires_in": lifetime,
            "token_type": "bearer",
            "scope": "read",
        }


# --- helpers ------------------------------------------------------------------------------------


def _check_kind(kind: str, kinds: Any) -> None:
    if kind not in get_args(kinds):
        raise ValueError(f"unknown failure {kind!r}; one of {', '.join(get_args(kinds))}")


def _new_key() -> str:
    return "sk-" + secrets.token_hex(16)  # §4.1: sk- and 32 lowercase hex digits


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _spring_500(path: str) -> web.Response:
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
    body = {"timestamp": timestamp, "status": 500, "error": "Internal Server Error", "path": path}
    return _json(500, body)


def _page(status: int, title: str, body: str) -> web.Response:
    text = (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title} - iFlow (fake)</title></head>\n'
        f"<body><h1>{title}</h1>\n{body}\n</body></html>\n"
    )
    return web.Response(status=status, text=text, content_type="text/html")


def _code_page(code: str, state: str) -> web.Response:
    body = (
        "<p>Paste this code into the iFlow CLI:</p>\n"
        f'<pre id="code">{html.escape(code)}</pre>\n'
        f'<p>state: <span id="state">{html.escape(state)}</span></p>'
    )
    return _page(200, "Authorization code", body)


def _redirect(url: str, params: dict[str, str]) -> web.Response:
    separator = "&" if urlsplit(url).query else "?"
    return web.Response(status=302, headers={"Location": url + separator + urlencode(params)})


def _hang_up(request: web.Request) -> web.Response:
    """Close the connection before a byte of the answer went out; the returned response goes nowhere."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()
