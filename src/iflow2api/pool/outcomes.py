"""What an upstream failure means for the account that produced it, and for the request.

One pure function, ``verdict_for``, reads the error the speakers made of the upstream's answer
(iFlow's error table, protocol §7.3, and ordinary HTTP codes) and decides:

=====================================  ===========  ==========================================
failure                                 account      request
=====================================  ===========  ==========================================
rate limit (429, 8211) / busy (449)     cooldown,    another account
                                        growing
key expired or refused (439, 401)       refresh      same account with the new key, once;
                                                     without a login to refresh: quarantine
blocked (434/438 "AK blocked", 403)     quarantine   another account
5xx, 514, timeout, no connection        short        another account
                                        cooldown
the client's own fault (400, 404, 413)  untouched    fails as it is: another account would
                                                     refuse it too
=====================================  ===========  ==========================================

A quarantine is never lifted automatically: only a new key or login, or a person, ends it.

>>> policy = CooldownPolicy(base=2, ceiling=1800, error=15)
>>> from iflow2api.errors import UpstreamRateLimited
>>> v = verdict_for(UpstreamRateLimited("slow down", retry_after=None), strikes=3, policy=policy)
>>> (v.action, v.cooldown, v.retry_elsewhere)
('cooldown', 8.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iflow2api.errors import (
    AccountBlocked,
    GatewayError,
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


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    #: Seconds the account rests (``cooldown`` only).
    cooldown: float
    #: Whether another account (or, after ``refresh``, the same one) may take the request.
    retry_elsewhere: bool
    #: Why, in a few words, for the page and the logs.
    reason: str


RATE_LIMITED = "rate limited"
BUSY = "busy elsewhere (449)"


def rests_for_rate_limit(reason: str | None) -> bool:
    """Whether a cooldown's reason is the upstream asking to wait (not a failure of ours to reach it).

    The difference matters when every account rests: an account resting after a rate limit is not
    asked again before its time, one resting after a failure may be, rather than refuse the request.
    """
    return reason is not None and reason.startswith((RATE_LIMITED, BUSY))


def rate_limit_cooldown(strikes: int, retry_after: float | None, policy: CooldownPolicy) -> float:
    """``base * 2^(strikes-1)``, capped, but never shorter than the upstream asked.

    >>> p = CooldownPolicy(base=2, ceiling=60, error=15)
    >>> [rate_limit_cooldown(n, None, p) for n in (1, 2, 3, 10)]
    [2.0, 4.0, 8.0, 60.0]
    >>> rate_limit_cooldown(1, 30, p)
    30.0
    """
    grown = min(policy.ceiling, policy.base * 2 ** max(0, min(strikes, 40) - 1))
    return float(max(grown, retry_after or 0.0))


def verdict_for(error: GatewayError, *, strikes: int, policy: CooldownPolicy) -> Verdict:
    """What to do after ``error``; ``strikes`` counts this failure and those right before it."""
    if isinstance(error, UpstreamConcurrencyLimited):
        # iFlow's 449: the account is busy with a request we did not send (the iFlow CLI, another
        # gateway). Short and growing, like a rate limit, starting from its own hint.
        return Verdict("cooldown", rate_limit_cooldown(strikes, error.retry_after, policy), True, BUSY)
    if isinstance(error, RateLimited):
        return Verdict(
            "cooldown", rate_limit_cooldown(strikes, error.retry_after, policy), True, RATE_LIMITED
        )
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
