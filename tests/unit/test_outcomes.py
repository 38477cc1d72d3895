"""What an upstream failure means for the account and the request: the verdict table, row by row."""

from __future__ import annotations

import pytest

from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    Forbidden,
    GatewayError,
    InvalidRequest,
    LoginUnavailable,
    ModelNotFound,
    PayloadTooLarge,
    UpstreamAuthError,
    UpstreamConcurrencyLimited,
    UpstreamError,
    UpstreamModelError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from iflow2api.pool.outcomes import CooldownPolicy, rate_limit_cooldown, verdict_for

POLICY = CooldownPolicy(base=2, ceiling=60, error=15)


@pytest.mark.parametrize(
    ("error", "action", "cooldown", "retry_elsewhere"),
    [
        (UpstreamRateLimited("slow down"), "cooldown", 2.0, True),
        (UpstreamConcurrencyLimited("busy"), "cooldown", 2.0, True),
        (UpstreamAuthError("expired", code="api_key_expired"), "refresh", 0.0, True),
        (UpstreamAuthError("refused"), "refresh", 0.0, True),
        (AccountBlocked("AK blocked"), "quarantine", 0.0, True),
        (UpstreamError("bad gateway", status=503), "cooldown", 15.0, True),
        (UpstreamModelError("514"), "cooldown", 15.0, True),
        (UpstreamTimeout("slow"), "cooldown", 15.0, True),
        (UpstreamUnavailable("no route"), "cooldown", 15.0, True),
        (LoginUnavailable("login service down"), "cooldown", 15.0, True),
        (UpstreamRejected("bad signature"), "none", 0.0, False),
        (InvalidRequest("bad body"), "none", 0.0, False),
        (ContextTooLong("too long"), "none", 0.0, False),
        (PayloadTooLarge("too big"), "none", 0.0, False),
        (ModelNotFound("no such model"), "none", 0.0, False),
        (Forbidden("not here"), "none", 0.0, False),
        (GatewayError("something"), "none", 0.0, False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, GatewayError) else None,
)
def test_verdict_table(error: GatewayError, action: str, cooldown: float, retry_elsewhere: bool) -> None:
    verdict = verdict_for(error, strikes=1, policy=POLICY)
    assert (verdict.action, verdict.cooldown, verdict.retry_elsewhere) == (action, cooldown, retry_elsewhere)
    assert verdict.reason


def test_reasons_tell_the_failures_apart() -> None:
    def reason(error: GatewayError) -> str:
        return verdict_for(error, strikes=1, policy=POLICY).reason

    assert reason(UpstreamAuthError("x", code="api_key_expired")) == "API key expired"
    assert reason(UpstreamAuthError("x")) == "API key refused"
    assert "449" in reason(UpstreamConcurrencyLimited("x"))
    assert reason(UpstreamRateLimited("x")) == "rate limited"


@pytest.mark.parametrize("error_type", [UpstreamRateLimited, UpstreamConcurrencyLimited])
def test_rate_limit_cooldowns_grow_with_strikes(error_type: type[UpstreamRateLimited]) -> None:
    cooldowns = [verdict_for(error_type("x"), strikes=n, policy=POLICY).cooldown for n in (1, 2, 3, 4)]
    assert cooldowns == [2.0, 4.0, 8.0, 16.0]


def test_error_cooldown_does_not_grow() -> None:
    assert verdict_for(UpstreamTimeout("x"), strikes=9, policy=POLICY).cooldown == 15.0


def test_rate_limit_cooldown_growth_and_ceiling() -> None:
    assert [rate_limit_cooldown(n, None, POLICY) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert rate_limit_cooldown(0, None, POLICY) == 2.0
    # Strikes pile up without bound while an account stays limited; the arithmetic must not.
    assert rate_limit_cooldown(10**9, None, POLICY) == 60.0
    assert isinstance(rate_limit_cooldown(1, None, POLICY), float)


def test_retry_after_is_a_floor_not_a_ceiling() -> None:
    assert rate_limit_cooldown(1, 30, POLICY) == 30.0
    assert rate_limit_cooldown(4, 5, POLICY) == 16.0
    assert rate_limit_cooldown(1, 0, POLICY) == 2.0
    # The upstream's own hint wins over our ceiling: asking again sooner would only be refused.
    assert rate_limit_cooldown(1, 600, POLICY) == 600.0


def test_the_upstreams_retry_after_reaches_the_verdict() -> None:
    limited = UpstreamRateLimited("x", retry_after=42)
    assert verdict_for(limited, strikes=1, policy=POLICY).cooldown == 42.0
    busy = UpstreamConcurrencyLimited("x", retry_after=7)
    assert verdict_for(busy, strikes=1, policy=POLICY).cooldown == 7.0
