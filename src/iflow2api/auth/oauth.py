"""The iFlow OAuth protocol (protocol §4) as pure functions: URLs, headers, bodies, parsed answers.

Nothing here does I/O. The caller sends what these functions build and hands the status and body
back to ``parse_tokens`` / ``parse_user_info``, which either return typed values or raise a
``LoginError`` from the gateway's one error tree (``iflow2api.errors``)::

    LoginError                  any login or refresh failure; the message is safe to show
    ├── InvalidGrant            the server said no for good (400/401 ``invalid_grant``,
    │                           ``invalid_client``, ...): the login has to be redone
    ├── LoginUnavailable        temporary (5xx, 408, 429, the HTTP-200 "busy" body of §4.6, an
    │   │                       unreadable answer, getUserInfo refusing a token): try again later
    │   └── CodeNotFound        what was pasted holds no authorization code
    ├── NoApiKey                getUserInfo answered, but without an ``apiKey`` (§4.4)
    ├── StateMismatch           the ``state`` that came back is not the one we sent (§4.3 step 5)
    └── ConsentDenied           the user refused on the iFlow page (``?error=access_denied``)

>>> url = authorize_url(DEFAULT_BASE_URL, code_display_uri(DEFAULT_BASE_URL), "ab12")
>>> url.split("?")[1]
'loginMethod=phone&type=phone&redirect=https%3A%2F%2Fiflow.cn%2Foauth%2Fcode-display&state=ab12&client_id=10009311001'

Retries are the caller's job; the rules differ between implementations (§4.5, §4.6):

- getUserInfo: the CLI tries 3 times, 1 s / 2 s / 3 s apart, on HTTP >= 500, 408, 429 or a network
  error; any other non-2xx gives it "no key"; ``success:false`` makes it loop again at once. CPA
  fails on any non-200 or ``success:false``; i2a reads 401 as "access token invalid or expired".
- refresh: the CLI clears the credentials on any refresh failure. We never do that on
  ``LoginUnavailable`` (the "busy" body of §4.6 is an HTTP 200 and goes away by itself); only
  ``InvalidGrant`` means the refresh token is dead.

Messages never carry a token: server text is included only after anything token-shaped in it has
been cut out (Spring-style servers say "Invalid refresh token: <the token>").
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import orjson

from iflow2api.errors import (
    CodeNotFound,
    ConsentDenied,
    InvalidGrant,
    LoginUnavailable,
    NoApiKey,
    StateMismatch,
)

# §4.2: the CLI's public client credentials (the same in CPA, i2a, Mirrowel and AIClient2API).
CLIENT_ID = "10009311001"
CLIENT_SECRET = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW"
DEFAULT_BASE_URL = "https://iflow.cn"

#: Used when a token answer has no usable ``expires_in``; §9.1: the real lifetime is unknown.
#: Two days keeps a refresh scheduled one day ahead (the CLI's lead, §4.6) from looping, and
#: refreshing too early is harmless where refreshing too late is not.
DEFAULT_EXPIRES_IN = 2 * 24 * 3600.0

#: ``error`` values (RFC 6749 §5.2) that are a definite "no": retrying the same request is useless.
_DEFINITE_ERRORS = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_request",
        "invalid_scope",
    }
)
#: Anything that could be a token, code or key inside server text.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")
#: What JavaScript's ``encodeURIComponent`` leaves as it is, besides what ``quote`` always keeps.
_URI_COMPONENT_SAFE = "!*'()"
_CODE = re.compile(r"[A-Za-z0-9._~+/=-]+")
_QUERY = re.compile(r"(?:.*&)?(?:code|state|error)=")


def _safe(text: object, limit: int = 200) -> str:
    """Server-provided text, with token-shaped runs removed and the length capped.

    >>> _safe("Invalid refresh token: 0123456789abcdef0123")
    'Invalid refresh token: …'
    """
    cleaned = _TOKEN_LIKE.sub("…", str(text)).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Building requests (§4.3, §4.4, §4.5, §4.6)


def new_state() -> str:
    """32 random bytes as 64 hex characters, as the CLI makes it (§4.3 step 2; there is no PKCE)."""
    return secrets.token_hex(32)


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def authorize_url(base_url: str, redirect_uri: str, state: str) -> str:
    """The consent page, with the parameters in the CLI's order (§4.3 step 4).

    The parameter is ``redirect`` (not ``redirect_uri``) and there is no ``response_type`` or
    ``scope``. The CLI encodes it with ``encodeURIComponent``, which leaves ``!*'()`` alone.
    """
    redirect = quote(redirect_uri, safe=_URI_COMPONENT_SAFE)
    return (
        f"{_base(base_url)}/oauth?loginMethod=phone&type=phone"
        f"&redirect={redirect}&state={quote(state, safe='')}&client_id={CLIENT_ID}"
    )


def code_display_uri(base_url: str) -> str:
    """The redirect of the headless flow: iFlow shows the code for the user to paste (§4.4)."""
    return f"{_base(base_url)}/oauth/code-display"


def token_url(base_url: str) -> str:
    """Both grants go here (§4.3 step 6, §4.6)."""
    return f"{_base(base_url)}/oauth/token"


def user_info_url(base_url: str, access_token: str) -> str:
    """getUserInfo, which turns an access token into the ``sk-`` key (§4.5).

    The token travels in the query; the CLI does not encode it, CPA does, and so do we (a ``+`` or
    ``/`` in it would otherwise arrive changed). The URL holds a secret: never log it.
    """
    return f"{_base(base_url)}/api/oauth/getUserInfo?accessToken={quote(access_token, safe='')}"


def token_headers() -> dict[str, str]:
    """Headers of a token request (§4.3 step 6): the client credentials go here *and* in the body.

    The CLI sets no ``Accept``; CPA and i2a send ``application/json``, which can only help.
    """
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode("ascii")
    return {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": f"Basic {basic}",
        "accept": "application/json",
    }


def code_exchange_body(code: str, redirect_uri: str) -> bytes:
    """The form body exchanging a code; ``redirect_uri`` must be the one given to the page (§4.3)."""
    return urlencode(
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]
    ).encode("ascii")


def refresh_body(refresh_token: str) -> bytes:
    """The form body of a refresh (§4.6)."""
    return urlencode(
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ]
    ).encode("ascii")


# ---------------------------------------------------------------------------------------------
# Reading answers


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the token endpoint issued. The tokens stay out of ``repr`` (logs, tracebacks)."""

    access_token: str = field(repr=False)
    #: Empty when a refresh answer carried no new one: keep the old refresh token then.
    refresh_token: str = field(repr=False)
    #: Seconds since the epoch (``oauth_creds.json`` stores milliseconds, §5).
    expires_at: float
    token_type: str = "Bearer"
    scope: str = ""
    #: The lifetime the answer gave (``expires_in``, or ``DEFAULT_EXPIRES_IN`` without one), which
    #: the refresh schedule goes by; None for tokens not read from an answer.
    expires_in: float | None = None


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Who logged in, and their ``sk-`` key (kept out of ``repr``)."""

    api_key: str = field(repr=False)
    user_id: str | None = None
    user_name: str | None = None
    email: str | None = None
    phone: str | None = None
    avatar: str | None = None

    @property
    def label(self) -> str | None:
        """Who this is, for people: email, else phone, else user name (CPA's order, §4.5)."""
        return self.email or self.phone or self.user_name


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)  # userId may come as a number
    if isinstance(value, str):
        return value.strip() or None
    return None


def _server_says(payload: dict[str, Any] | None) -> str:
    """The server's own explanation, cleaned, or "" (RFC 6749 fields, then iFlow's ``message``)."""
    if not payload:
        return ""
    for name in ("error_description", "message", "msg", "error"):
        text = _text(payload.get(name))
        if text:
            return _safe(text)
    return ""


def _unavailable(what: str, status: int, payload: dict[str, Any] | None) -> LoginUnavailable:
    said = _server_says(payload)
    detail = f" (HTTP {status}: {said})" if said else f" (HTTP {status})"
    return LoginUnavailable(
        f"The iFlow login service could not {what} right now{detail}. Please try again later.",
        upstream_status=status,
    )


def _expires_in(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def parse_tokens(status: int, body: bytes, *, now: float) -> Tokens:
    """The answer of ``/oauth/token`` for either grant (§4.3 step 7, §4.6), as ``Tokens``.

    >>> parse_tokens(200, b'{"access_token":"a","refresh_token":"r","expires_in":60}', now=1000.0)
    Tokens(expires_at=1060.0, token_type='Bearer', scope='', expires_in=60.0)
    """
    payload = _json_object(body)
    error = _text((payload or {}).get("error"))
    # A definite OAuth rejection: 400/401 per RFC 6749; a 2xx or 403 carrying one is read the same.
    if error in _DEFINITE_ERRORS and (200 <= status < 300 or status in (400, 401, 403)):
        description = _text((payload or {}).get("error_description"))
        reason = f"{error}: {_safe(description)}" if description else error
        if error == "invalid_client":
            message = f"iFlow rejected this program's client credentials ({reason})."
        else:
            message = f"iFlow no longer accepts this login ({reason}). Please log in again."
        raise InvalidGrant(message, upstream_status=status)
    if not 200 <= status < 300:
        # 5xx, 408, 429 are temporary by nature. Other 4xx without an OAuth error body are most
        # likely a proxy or a shut-down endpoint, not a verdict on the grant: never destroy a
        # login on those.
        raise _unavailable("sign in", status, payload)
    if payload is None:
        raise LoginUnavailable(
            "The iFlow login service sent an answer that is not JSON.", upstream_status=status
        )
    access_token = _text(payload.get("access_token"))
    if not access_token:
        # §4.6: HTTP 200 {"success":false,"code":"500","message":"当前找我聊的人太多了…"} means "busy".
        raise _unavailable("issue a token", status, payload)
    expires_in = _expires_in(payload.get("expires_in")) or DEFAULT_EXPIRES_IN
    return Tokens(
        access_token=access_token,
        refresh_token=_text(payload.get("refresh_token")) or "",
        expires_at=now + expires_in,
        token_type=_text(payload.get("token_type")) or "Bearer",
        scope=_text(payload.get("scope")) or "",
        expires_in=expires_in,
    )


def parse_user_info(status: int, body: bytes) -> UserInfo:
    """The answer of getUserInfo (§4.5): ``{"success":true,"data":{"apiKey":"sk-…",…}}``.

    A 401/403 here raises ``LoginUnavailable`` (``upstream_status`` set), not ``InvalidGrant``: this call
    is only made with an access token just issued, and only the token endpoint can say whether the
    *login* is dead. A caller seeing 401 refreshes once and asks again; if the refresh is refused,
    *that* raises ``InvalidGrant``. (i2a reads 401 as "token expired"; the CLI as "no key".)
    """
    payload = _json_object(body)
    if status in (401, 403):
        raise LoginUnavailable(
            f"iFlow did not accept the access token when asked for the API key (HTTP {status}). "
            "Refresh the login and try again.",
            upstream_status=status,
        )
    if not 200 <= status < 300:
        raise _unavailable("look up the API key", status, payload)
    if payload is None:
        raise LoginUnavailable(
            "The iFlow user-info service sent an answer that is not JSON.", upstream_status=status
        )
    if payload.get("success") is False:
        # The CLI loops again at once on this (§4.5): the server's way of saying "not now".
        raise _unavailable("look up the API key", status, payload)
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    api_key = _text(data.get("apiKey"))
    if not api_key:
        raise NoApiKey(upstream_status=status)
    return UserInfo(
        api_key=api_key,
        user_id=_text(data.get("userId")),
        user_name=_text(data.get("userName")),
        email=_text(data.get("email")),
        phone=_text(data.get("phone")),
        avatar=_text(data.get("avatar")),
    )


def parse_pasted(text: str, expected_state: str | None) -> str:
    """The authorization code in what the user pasted (§4.4).

    Accepts the bare code shown on the code-display page, the whole redirect URL
    (``http://localhost:1234/oauth2callback?code=…&state=…``) or just its query. A ``state`` that
    is present is checked against ``expected_state`` (skipped when that is None).

    >>> parse_pasted("https://iflow.cn/oauth/code-display?code=c0de&state=s1", "s1")
    'c0de'
    >>> parse_pasted("  c0de  ", "s1")
    'c0de'
    """
    pasted = text.strip().strip("\"'").strip()
    if not pasted:
        raise CodeNotFound("Nothing was pasted. Please paste the authorization code shown by iFlow.")
    if "?" in pasted:
        query = pasted.split("?", 1)[1].split("#", 1)[0]
    elif "#" in pasted:
        query = pasted.split("#", 1)[1]
    elif _QUERY.match(pasted):
        query = pasted
    else:
        if not _CODE.fullmatch(pasted):
            raise CodeNotFound("That does not look like an authorization code. Please paste it again.")
        return pasted
    params = parse_qs(query, keep_blank_values=True)

    def first(name: str) -> str:
        values = params.get(name)
        return values[0].strip() if values else ""

    error = first("error")
    if error == "access_denied":
        raise ConsentDenied()
    if error:
        raise CodeNotFound(f"iFlow reported an error instead of a code: {_safe(error, 80)}.")
    state = first("state")
    if (
        state
        and expected_state is not None
        and not hmac.compare_digest(state.encode(), expected_state.encode())
    ):
        raise StateMismatch()
    code = first("code")
    if not code:
        raise CodeNotFound("No authorization code in what was pasted. Please paste the code shown by iFlow.")
    return code
