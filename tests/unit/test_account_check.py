"""What a failed account check says (``services.account_check.explain``) and what it leaves the
account as (``health_after``), over literal errors."""

from __future__ import annotations

import pytest

from iflow2api.auth.credentials import Account
from iflow2api.errors import (
    AccountBlocked,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    OutOfCredit,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from iflow2api.pool.members import CHECK_FAILED, Member, key_fingerprint, shown_state
from iflow2api.services.account_check import CheckResult, explain, health_after, lacks_version, works

V1 = "https://api.example.com/v1"
BARE = "https://api.example.com"

EXPLAINED = [
    # error, status, base URL, problem, words
    (UpstreamAuthError("Upstream answered 401: Incorrect API key provided"), 401, V1, "wrong-key",
     "wrong key (401): Upstream answered 401: Incorrect API key provided"),
    (AccountBlocked("Upstream answered 403: no access", code="permission_denied"), 403, V1, "wrong-key",
     "wrong key (403): Upstream answered 403: no access"),
    (UpstreamAuthError("The API key holds characters no HTTP header can carry."), None, V1, "wrong-key",
     "wrong key: The API key holds characters no HTTP header can carry."),
    (OutOfCredit("DeepSeek answered 402: Insufficient Balance"), 402, V1, "out-of-credit",
     "out of credit: DeepSeek answered 402: Insufficient Balance"),
    (InvalidRequest("Upstream answered 402: pay up", status=402), 402, V1, "out-of-credit",
     "out of credit: Upstream answered 402: pay up"),
    (UpstreamRateLimited("Upstream answered 429: slow down", retry_after=3), 429, V1, "rate-limited",
     "rate limited: the key works, but try again later. Upstream answered 429: slow down"),
    (GatewayError("Not Found"), 404, BARE, "wrong-base-url",
     f"wrong base URL: {BARE} answered 404 (did you forget /v1? try {BARE}/v1)"),
    (GatewayError("Not Found"), 404, V1, "wrong-base-url", f"wrong base URL: {V1} answered 404"),
    (ModelNotFound("Upstream answered 404: no such model"), 404, V1, "model",
     "the model is not served there: Upstream answered 404: no such model"),
    (UpstreamTimeout("The upstream did not answer within 1 s (setting first_byte_timeout)."), None, V1,
     "unreachable", "unreachable: The upstream did not answer within 1 s (setting first_byte_timeout)."),
    (UpstreamUnavailable("Upstream: cannot connect to http://127.0.0.1:9."), None, V1, "unreachable",
     "unreachable: Upstream: cannot connect to http://127.0.0.1:9."),
    (UpstreamError("Upstream answered 500: oops"), 500, V1, "failed", "failed: Upstream answered 500: oops"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "status", "base_url", "problem", "words"), EXPLAINED)
def test_each_error_in_plain_words(
    error: GatewayError, status: int | None, base_url: str, problem: str, words: str
) -> None:
    explained = explain(error, status=status, base_url=base_url)
    assert (explained.problem, explained.words) == (problem, words)


def test_advice_about_the_iflow_settings_is_left_out() -> None:
    error = UpstreamAuthError("Upstream answered 401: bad key. Check the apiKey in the iFlow settings.")
    assert explain(error, status=401, base_url=V1).words == "wrong key (401): Upstream answered 401: bad key."


@pytest.mark.parametrize(
    ("base_url", "lacking"),
    [
        ("https://api.example.com", True),
        ("https://api.example.com/", True),
        ("http://127.0.0.1:8000/openai", True),
        ("https://api.example.com/v1", False),
        ("https://open.bigmodel.cn/api/paas/v4", False),
        ("https://dashscope.aliyuncs.com/compatible-mode/v1", False),
        ("https://generativelanguage.googleapis.com/v1beta/openai", False),
    ],
)
def test_a_version_segment_is_looked_for(base_url: str, lacking: bool) -> None:
    assert lacks_version(base_url) is lacking


def test_works_counts_the_models() -> None:
    assert works(12, "m", 1) == "works: m answered in 12 ms; 1 model listed"
    assert works(12, "m", None) == "works: m answered in 12 ms; its /models gave no list"


FAILED = CheckResult(False, "wrong key (401): refused", "wrong-key")
SPENT = CheckResult(False, "out of credit: top up", "out-of-credit")
PASSED = CheckResult(True, "works: m answered in 5 ms; 1 model listed", latency_ms=5, models=1, model="m")


def test_a_failed_check_shows_as_failing_until_one_passes() -> None:
    health = health_after(FAILED, "sk-key", 100.0)
    assert (health.state, health.code, health.since) == ("quarantined", CHECK_FAILED, 100.0)
    assert health.reason == "check: wrong key (401): refused"
    assert health.key_fingerprint == key_fingerprint("sk-key")
    assert shown_state(True, health) == "failing"
    assert shown_state(False, health) == "disabled"
    assert shown_state(True, health_after(SPENT, "sk-key", 100.0)) == "out-of-credit"
    passed = health_after(PASSED, "sk-key", 200.0)
    assert (shown_state(True, passed), passed.since, passed.reason) == ("ok", 200.0, None)


def test_a_new_key_lifts_a_failed_check() -> None:
    account = Account("openai-compatible", "openai-compatible", V1, "sk-new")
    member = Member("acc-1", "x", "openai-compatible", "store", account, None)
    member.health = health_after(FAILED, "sk-old", 100.0)
    assert member.shown_state() == "ok"
    member.health = health_after(FAILED, "sk-new", 100.0)
    assert member.shown_state() == "failing"


def test_a_whole_check_ends_within_its_wait_whatever_the_gateways_timeouts() -> None:
    """A silent host is 'unreachable' within the check's own wait, not after first_byte_timeout."""
    import asyncio as _asyncio

    from iflow2api.auth.credentials import Account
    from iflow2api.providers import Profiles
    from iflow2api.services.account_check import AccountCheck

    class Silent:
        async def send(self, *args: object, **kwargs: object) -> object:
            await _asyncio.sleep(60)
            raise AssertionError("never answers")

    check = AccountCheck(Silent(), Profiles(thinking_default=None), wait=0.2)  # type: ignore[arg-type]
    account = Account("openai-compatible", "openai-compatible", "http://127.0.0.1:9/v1", "sk-x", "m")
    result = _asyncio.run(_asyncio.wait_for(check.run(account), 5))
    assert (result.ok, result.problem) == (False, "unreachable")
    assert "within 0.2 s" in result.words
