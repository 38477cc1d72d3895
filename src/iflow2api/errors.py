"""Every failure the gateway can report, as one tree.

Each error knows the HTTP status, the OpenAI error ``type`` and ``code`` it is shown with, so the
edge (``dialects.openai_chat.errors.error_body``) can turn any of them into a client-facing body without
a lookup table of its own::

    GatewayError                          500 server_error
    ├── InvalidRequest                    400 invalid_request_error
    │   ├── LoginFailed                   400 (this login has to be done again; a LoginError)
    │   │   ├── InvalidGrant              (iFlow said no for good: invalid_grant, invalid_client...)
    │   │   ├── NoApiKey                  (getUserInfo answered without an ``apiKey``, protocol §4.4)
    │   │   ├── StateMismatch             (the ``state`` that came back is not ours, §4.3 step 5)
    │   │   └── ConsentDenied             (the user refused on the iFlow page)
    │   ├── ContextTooLong                400 context_length_exceeded
    │   ├── PayloadTooLarge               413
    │   └── RequestTimeout                408 (the client stalled while sending its body)
    ├── NotLoggedIn                       401 (no iFlow credentials on disk)
    ├── UpstreamAuthError                 401 (key invalid or expired, iFlow 434 / 439)
    ├── ClientAuthError                   401 (no or a wrong client key of this gateway; admin only)
    ├── AccountBlocked                    403 (iFlow 434/438 "AK blocked")
    ├── Forbidden                         403 (the page's API from another site or host name)
    │   └── ModelNotAllowed               403 (a client key limited to other models)
    ├── RouteNotFound                     404
    ├── ModelNotFound                     404 model_not_found
    ├── MethodNotAllowed                  405
    ├── RateLimited                       429 (+ Retry-After)
    │   ├── UpstreamRateLimited           429 (iFlow 429 / 8211)
    │   ├── UpstreamConcurrencyLimited    429 (iFlow 449)
    │   ├── QueueFull                     429 (our own waiting line)
    │   ├── AllAccountsCooling            429 (every account rests as the upstream asked, too long)
    │   └── KeyLimitReached               429 (a client key's requests/minute or tokens/day)
    ├── NoAccountAvailable                503 (no account enabled, or every one tried)
    ├── ShuttingDown                      503 (the gateway is stopping; open requests end with it)
    ├── CoordinationUnavailable           503 (+ Retry-After: no account lease, the shared store is down)
    ├── LoginError                        (any login or refresh failure; never raised itself)
    └── UpstreamError                     502 (anything else the upstream did wrong)
        ├── UpstreamModelError            502 (iFlow 514)
        ├── LoginUnavailable              502 (the iFlow login service failed for now; a LoginError)
        │   └── CodeNotFound              502 (what was pasted holds no authorization code)
        ├── UpstreamRejected              502 (406: the signature or protocol was refused)
        ├── UpstreamUnavailable           502 (could not connect)
        ├── UpstreamTooLarge              502 (an answer or an event line beyond the caps)
        └── UpstreamTimeout               504

Messages never carry a secret: callers pass text that is already safe to show.

A ``LoginError`` is also a ``LoginFailed`` (400) or a ``LoginUnavailable`` (502): one
``except LoginError`` catches every way a login or a refresh can fail, and each still shows itself
with its own status.
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    #: Whether the same request might succeed on another try (used by retries and the pool later).
    retryable: bool = False
    #: Seconds the upstream itself asked us to wait (its ``Retry-After`` on a 429 or 503), set by the
    #: speakers; None when it named none. Unlike ``retry_after``, never a default of ours: the pool
    #: honours this one and may probe through a rest it chose itself (``pool.outcomes``).
    upstream_wait: float | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self._headers = headers or []

    def asked_to_wait(self, seconds: float) -> GatewayError:
        """Mark this error with the upstream's own ``Retry-After``; the pool honours it."""
        self.retry_after = self.upstream_wait = seconds
        return self

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return self._headers
        seconds = max(1, round(self.retry_after))
        return [*self._headers, (b"retry-after", str(seconds).encode())]


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class LoginError(GatewayError):
    """A login or refresh failure (``auth.oauth``); ``str(exc)`` is safe to show and to log."""

    default_message = "The iFlow login failed."

    def __init__(self, message: str | None = None, *, upstream_status: int | None = None) -> None:
        super().__init__(message or self.default_message)
        #: The HTTP status of the login service's answer this came from, when there was one.
        self.upstream_status = upstream_status


class LoginFailed(LoginError, InvalidRequest):
    code = "login_failed"


class InvalidGrant(LoginFailed):
    default_message = "iFlow no longer accepts this login. Please log in again."


class NoApiKey(LoginFailed):
    # The CLI's words (protocol §4.4), so users searching for them find the same cause.
    default_message = (
        "Failed to retrieve API key from server: iFlow accepted the login but gave no API key "
        "for this account."
    )


class StateMismatch(LoginFailed):
    default_message = (
        "State mismatch: this code belongs to a different login attempt (or a forged link). "
        "Please start the login again."
    )


class ConsentDenied(LoginFailed):
    default_message = "The authorization was declined on the iFlow page. Please try again and allow it."


class ContextTooLong(InvalidRequest):
    code = "context_length_exceeded"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    code = "request_timeout"


class NotLoggedIn(GatewayError):
    status = 401
    type = "authentication_error"
    code = "not_logged_in"


class UpstreamAuthError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ClientAuthError(GatewayError):
    """The client did not show a key of this gateway (or not an admin one): the upstream was never
    asked, so no account is at fault. Shown exactly as an upstream 401 is."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class AccountBlocked(GatewayError):
    status = 403
    type = "permission_error"
    code = "account_blocked"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class RouteNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = True


class UpstreamRateLimited(RateLimited):
    pass


class OutOfCredit(GatewayError):
    """The account's balance or quota is spent: it rests until a person tops it up (or until the
    reset time the host stated, kept as ``upstream_wait``). OpenAI's own status and code for it."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamConcurrencyLimited(RateLimited):
    code = "concurrency_limit_exceeded"


class QueueFull(RateLimited):
    code = "queue_full"


class AllAccountsCooling(RateLimited):
    code = "all_accounts_cooling_down"


class KeyLimitReached(RateLimited):
    code = "key_rate_limit_exceeded"


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"


class NoAccountAvailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_account_available"


class ShuttingDown(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "gateway_shutting_down"
    retryable = True


class CoordinationUnavailable(GatewayError):
    """Several instances share the accounts and their coordination store (Redis) did not answer:
    no request goes upstream without a lease, so it is refused rather than risk a ban."""

    status = 503
    type = "service_unavailable"
    code = "coordination_unavailable"
    retryable = True


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamModelError(UpstreamError):
    code = "upstream_model_error"
    retryable = True


class LoginUnavailable(LoginError, UpstreamError):
    """Temporary (5xx, 408, 429, the HTTP-200 "busy" body of protocol §4.6, an unreadable answer,
    getUserInfo refusing a token): the same request may work later."""

    default_message = "The iFlow login service is unavailable right now. Please try again later."
    code = "login_unavailable"
    retryable = True


class CodeNotFound(LoginUnavailable):
    """What was pasted holds no authorization code. Shown as ``login_unavailable`` (502), as the
    page's login API has always answered such a paste; trying the same text again cannot help."""

    retryable = False


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected_request"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    retryable = True


class UpstreamTooLarge(UpstreamError):
    code = "upstream_response_too_large"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    retryable = True
