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
        (InvalidRequest("unprocessable", status=422), "none", 0.0, False),
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
    assert [rate_limit_cooldown(n, POLICY) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert rate_limit_cooldown(0, POLICY) == 2.0
    # Strikes pile up without bound while an account stays limited; the arithmetic must not.
    assert rate_limit_cooldown(10**9, POLICY) == 60.0
    assert isinstance(rate_limit_cooldown(1, POLICY), float)


def asked(error: GatewayError, seconds: float) -> GatewayError:
    """``error`` as the speakers make it when the upstream sent ``Retry-After: seconds``."""
    return error.asked_to_wait(seconds)


@pytest.mark.parametrize(
    "error",
    [UpstreamRateLimited("x"), UpstreamError("unavailable", status=503)],
    ids=["429", "503"],
)
@pytest.mark.parametrize("strikes", [1, 4])
def test_a_rest_the_upstream_asked_for_is_exactly_what_it_asked(error: GatewayError, strikes: int) -> None:
    verdict = verdict_for(asked(error, 42), strikes=strikes, policy=POLICY)
    assert (verdict.action, verdict.cooldown, verdict.retry_elsewhere) == ("cooldown", 42.0, True)
    assert verdict.upstream_asked
    # Shorter than our own growth would make it, and longer than our ceiling: what it asked.
    assert verdict_for(asked(error, 5), strikes=9, policy=POLICY).cooldown == 5.0
    assert verdict_for(asked(error, 600), strikes=1, policy=POLICY).cooldown == 600.0


@pytest.mark.parametrize(
    "error",
    [
        UpstreamRateLimited("x", retry_after=10),  # a hint of ours for the client, not the upstream's
        UpstreamConcurrencyLimited("busy", retry_after=1),
        UpstreamError("bad gateway", status=500),
        UpstreamModelError("514"),
        UpstreamTimeout("slow"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_rests_of_the_gateways_own_choosing_are_told_apart(error: GatewayError) -> None:
    verdict = verdict_for(error, strikes=1, policy=POLICY)
    assert verdict.action == "cooldown" and not verdict.upstream_asked


def test_a_retry_after_on_a_request_error_does_not_make_it_a_rest() -> None:
    error = asked(InvalidRequest("bad", status=400), 30)
    verdict = verdict_for(error, strikes=1, policy=POLICY)
    assert (verdict.action, verdict.upstream_asked) == ("none", False)
