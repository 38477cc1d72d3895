"""What an upstream failure means for the account that produced it, and for the request.

One pure function, ``verdict_for``, reads the error the speakers made of the upstream's answer
(iFlow's error table, protocol §7.3, and ordinary HTTP codes) and decides:

=======================================  ===========  ========================================
failure                                   account      request
=======================================  ===========  ========================================
429 / 503 with the upstream's             rests as     another account, or this one once
``Retry-After``                           asked        the rest is over (``Pool``)
rate limit without one (429, 8211),       rest of our  another account
busy (449)                                choosing,
                                          growing
5xx, 514, timeout, no connection          rest of our  another account
                                          choosing
key expired or refused (439, 401)         refresh      same account with the new key, once;
                                                       without a login to refresh: quarantine
blocked (434/438 "AK blocked", 403)       quarantine   another account
out of credit (a provider's balance or   quarantine,  another account
quota error: ``OutOfCredit``)            or rest to
                                          its reset
the request's own fault (400, 404, 413,   untouched    fails as it is: another account would
422, 435 model not supported)                          refuse it too
=======================================  ===========  ========================================

The two kinds of rest differ when no other account can take a request (``pool.router``): a rest
the upstream asked for is waited out (up to ``max_cooldown_wait``) or refused with its
``Retry-After``; a rest of our own choosing is probed through, since the upstream may well be back.
The growth of our rests counts upstream failures in a row (``strikes``); a success ends it, and
the request's own errors neither grow nor end it: they say nothing about the account.

A quarantine is never lifted automatically: only a new key or login, or a person, ends it.

>>> policy = CooldownPolicy(base=2, ceiling=1800, error=15)
>>> from iflow2api.errors import UpstreamRateLimited
>>> v = verdict_for(UpstreamRateLimited("slow down", retry_after=10), strikes=3, policy=policy)
>>> (v.action, v.cooldown, v.retry_elsewhere, v.upstream_asked)
('cooldown', 8.0, True, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iflow2api.errors import (
    AccountBlocked,
    GatewayError,
    OutOfCredit,
    RateLimited,
    UpstreamAuthError,
    UpstreamConcurrencyLimited,
    UpstreamError,
    UpstreamRejected,
)

Action = Literal["cooldown", "refresh", "quarantine", "none"]


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    #: The first rate-limit cooldown, in seconds; each further strike in a row doubles it.
    base: float
    #: The longest a rate-limit cooldown grows to.
    ceiling: float
    #: The cooldown after a server error or a network failure.
    error: float
    #: The longest a request waits for a rest the upstream asked for when no account is free of one
    #: (``max_cooldown_wait``); a longer rest is refused with its ``Retry-After``.
    wait: float = 30.0


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    #: Seconds the account rests (``cooldown`` only).
    cooldown: float
    #: Whether another account (or, after ``refresh``, the same one) may take the request.
    retry_elsewhere: bool
    #: Why, in a few words, for the page and the logs.
    reason: str
    #: The upstream asked for this rest itself (``GatewayError.upstream_wait``): it is waited out,
    #: not probed.
    upstream_asked: bool = False


RATE_LIMITED = "rate limited"
BUSY = "busy elsewhere (449)"
UNAVAILABLE = "unavailable"
OUT_OF_CREDIT = "out of credit"


def rate_limit_cooldown(strikes: int, policy: CooldownPolicy) -> float:
    """``base * 2^(strikes-1)``, capped at the ceiling.

    >>> p = CooldownPolicy(base=2, ceiling=60, error=15)
    >>> [rate_limit_cooldown(n, p) for n in (1, 2, 3, 10)]
    [2.0, 4.0, 8.0, 60.0]
    """
    return float(min(policy.ceiling, policy.base * 2 ** max(0, min(strikes, 40) - 1)))


def verdict_for(error: GatewayError, *, strikes: int, policy: CooldownPolicy) -> Verdict:
    """What to do after ``error``; ``strikes`` counts this failure and those right before it."""
    if isinstance(error, OutOfCredit):
        # Spent credit comes back when a person tops it up, or at the reset time the host named.
        if error.upstream_wait is not None:
            return Verdict("cooldown", error.upstream_wait, True, OUT_OF_CREDIT, upstream_asked=True)
        return Verdict("quarantine", 0.0, True, OUT_OF_CREDIT)
    if error.upstream_wait is not None and isinstance(error, RateLimited | UpstreamError):
        # Asking again sooner would only be refused; asking later than told loses time for nothing.
        reason = RATE_LIMITED if isinstance(error, RateLimited) else UNAVAILABLE
        return Verdict("cooldown", error.upstream_wait, True, reason, upstream_asked=True)
    if isinstance(error, UpstreamConcurrencyLimited):
        # iFlow's 449: the account is busy with a request we did not send (the iFlow CLI, another
        # gateway). Short and growing, like a rate limit.
        return Verdict("cooldown", rate_limit_cooldown(strikes, policy), True, BUSY)
    if isinstance(error, RateLimited):
        return Verdict("cooldown", rate_limit_cooldown(strikes, policy), True, RATE_LIMITED)
    if isinstance(error, UpstreamAuthError):
        reason = "API key expired" if error.code == "api_key_expired" else "API key refused"
        return Verdict("refresh", 0.0, True, reason)
    if isinstance(error, AccountBlocked):
        return Verdict("quarantine", 0.0, True, "blocked by the upstream")
    if isinstance(error, UpstreamRejected):
        # A 406 is about the request's signature or protocol, which every account shares.
        return Verdict("none", 0.0, False, "request refused")
    if isinstance(error, UpstreamError):
        # 5xx, iFlow's 514, timeouts and connection failures: this account may be fine again soon.
        return Verdict("cooldown", policy.error, True, "upstream failure")
    return Verdict("none", 0.0, False, "client error")
