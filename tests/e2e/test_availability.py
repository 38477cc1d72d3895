"""A gateway is never less available than its upstream (issue 9, section 1).

One iFlow account behind the gateway, the common setup: a failure the gateway answered with a rest
of its own choosing must not refuse the next request; a rest the upstream asked for is waited out
when short and refused with its ``Retry-After`` when long; an account out of service answers with
its reason, in each dialect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, iflow_settings
from tests.fake_iflow import DEFAULT_KEY, BusinessError, FakeIflow, HttpError, Stream

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "glm-4.7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
BLOCKED = "Access to the current AK has been blocked due to unauthorized requests"


def start_single(start_gateway: Any, fake: FakeIflow, **env: str) -> GatewayProcess:
    # Long rests of the gateway's own choosing: the old behaviour would refuse for 30 s.
    gateway: GatewayProcess = start_gateway(
        iflow_settings(fake),
        {"IFLOW2API_COOLDOWN_BASE": "30", "IFLOW2API_ERROR_COOLDOWN": "30", **env},
    )
    return gateway


def chat(gateway: GatewayProcess, **extra: Any) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, **extra}, timeout=30)


def messages(gateway: GatewayProcess) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/messages", json=MESSAGES, timeout=30)


def account_state(gateway: GatewayProcess) -> dict[str, Any]:
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    (account,) = listing["accounts"]
    return dict(account)


def admitted(fake: FakeIflow) -> int:
    return sum(1 for r in fake.received if r.rejected is None)


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (HttpError(500), 502),
        (BusinessError(status="449", msg="You exceeded your current rate limit"), 429),
        (BusinessError(error_code=514, msg="model error"), 502),
        (HttpError(514), 502),
        (HttpError(429), 429),
        (BusinessError(status="8211", msg="rate limited"), 429),
    ],
    ids=["500", "449", "514-business", "514-http", "429-no-retry-after", "8211"],
)
def test_a_lone_account_serves_the_very_next_request_after_a_failure(
    start_gateway: Any, fake: FakeIflow, failure: Any, status: int
) -> None:
    gateway = start_single(start_gateway, fake)
    fake.enqueue(failure)
    first = chat(gateway)
    # The client sees the upstream's own failure, not a refusal of the gateway's making.
    assert first.status_code == status, first.text
    assert first.json()["error"]["code"] != "all_accounts_cooling_down"
    assert account_state(gateway)["state"] == "cooling"
    # The rest steers traffic, but there is nowhere else to steer it: the account is asked anyway.
    second = chat(gateway)
    assert second.status_code == 200, second.text
    assert admitted(fake) == 2
    # Its success ended the rest.
    assert account_state(gateway)["state"] == "ok"


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_upstreams_retry_after_is_waited_out(
    start_gateway: Any, fake: FakeIflow, status: int, stream: bool
) -> None:
    gateway = start_single(start_gateway, fake, IFLOW2API_KEEPALIVE_INTERVAL="0.2")
    fake.enqueue(HttpError(status, headers={"Retry-After": "1"}))
    if stream:
        with httpx.stream(
            "POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30
        ) as reply:
            assert reply.status_code == 200
            lines = [line for line in reply.iter_lines() if line]
        assert lines[0] == ": ping", lines  # the wait was kept alive
        assert lines[-1] == "data: [DONE]"
        assert not any('"error"' in line for line in lines), lines
    else:
        reply = chat(gateway)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
    # Asked once, refused with the hint, asked again once the hint had passed.
    assert admitted(fake) == 2


def test_a_retry_after_beyond_max_cooldown_wait_is_refused_with_it(
    start_gateway: Any, fake: FakeIflow
) -> None:
    gateway = start_single(start_gateway, fake)
    fake.enqueue(HttpError(429, headers={"Retry-After": "100"}))
    first = chat(gateway)
    assert first.status_code == 429
    assert 95 <= int(first.headers["retry-after"]) <= 100
    # The upstream's word holds for the next request too, without asking it.
    again = chat(gateway)
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "all_accounts_cooling_down"
    assert 95 <= int(again.headers["retry-after"]) <= 100
    assert admitted(fake) == 1
    anthropic = messages(gateway)
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["type"] == "rate_limit_error"


def test_max_cooldown_wait_zero_refuses_at_once(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_single(start_gateway, fake, IFLOW2API_MAX_COOLDOWN_WAIT="0")
    fake.enqueue(HttpError(429, headers={"Retry-After": "5"}))
    reply = chat(gateway)
    assert reply.status_code == 429
    assert 1 <= int(reply.headers["retry-after"]) <= 5
    assert admitted(fake) == 1


def test_a_blocked_lone_account_keeps_answering_account_blocked(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_single(start_gateway, fake)
    fake.enqueue(BusinessError(status="434", msg=BLOCKED))
    first = chat(gateway)
    assert first.status_code == 403
    assert first.json()["error"]["code"] == "account_blocked"
    for _ in range(2):
        again = chat(gateway)
        assert again.status_code == 403, again.text
        error = again.json()["error"]
        assert error["code"] == "account_blocked"
        assert "iflow2api accounts enable" in error["message"]
    anthropic = messages(gateway)
    assert anthropic.status_code == 403
    assert anthropic.json()["error"]["type"] == "permission_error"
    assert admitted(fake) == 1  # a quarantine is not probed


def test_an_expired_key_with_nothing_to_refresh_keeps_answering_api_key_expired(
    start_gateway: Any, fake: FakeIflow
) -> None:
    gateway = start_single(start_gateway, fake)
    fake.enqueue(BusinessError(status="439", msg="token expired"))
    first = chat(gateway)
    assert first.status_code == 401
    assert first.json()["error"]["code"] == "api_key_expired"
    again = chat(gateway)
    assert again.status_code == 401, again.text
    assert again.json()["error"]["code"] == "api_key_expired"
    assert "iflow2api login" in again.json()["error"]["message"]
    anthropic = messages(gateway)
    assert anthropic.status_code == 401
    assert anthropic.json()["error"]["type"] == "authentication_error"
    assert admitted(fake) == 1
    assert DEFAULT_KEY not in again.text and DEFAULT_KEY[:12] not in again.text


def test_a_refused_key_with_nothing_to_refresh_keeps_answering_invalid_api_key(
    start_gateway: Any, fake: FakeIflow
) -> None:
    gateway = start_single(start_gateway, fake)
    fake.enqueue(BusinessError(status="434", msg="Invalid apiKey"))
    assert chat(gateway).status_code == 401
    again = chat(gateway)
    assert again.status_code == 401, again.text
    assert again.json()["error"]["code"] == "invalid_api_key"
    assert admitted(fake) == 1


@pytest.mark.parametrize(
    "failure",
    [
        BusinessError(error_code=511, msg="Content length exceed LLM Limit"),
        HttpError(413),
        HttpError(400),
        HttpError(422),
        BusinessError(status="435", msg="The specified model is not supported"),
    ],
    ids=["511", "413", "400", "422", "435"],
)
def test_request_errors_never_cool_the_account(start_gateway: Any, fake: FakeIflow, failure: Any) -> None:
    gateway = start_single(start_gateway, fake)
    fake.enqueue(failure)
    first = chat(gateway)
    assert 400 <= first.status_code < 500 and first.status_code != 429, first.text
    assert account_state(gateway)["state"] == "ok"
    assert chat(gateway).status_code == 200


SECOND_KEY = "sk-" + "e" * 32


@pytest.fixture(scope="module")
def fake2() -> Iterator[FakeIflow]:
    with FakeIflow(api_keys=[DEFAULT_KEY, SECOND_KEY]) as server:
        yield server


def test_a_pool_of_two_keeps_failing_over_and_steering(
    start_gateway: Any, fake2: FakeIflow, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "second"\nkind = "iflow-key"\nbase_url = "{fake2.base_url}"\n'
        f'api_key = "{SECOND_KEY}"\n'
    )
    gateway: GatewayProcess = start_gateway(
        iflow_settings(fake2), {"IFLOW2API_ERROR_COOLDOWN": "30", "IFLOW2API_CONFIG": str(config)}
    )
    fake2.enqueue_for(DEFAULT_KEY, HttpError(500))
    assert chat(gateway).status_code == 200  # failed over, unnoticed
    # The resting account is left alone while the other one can serve.
    for _ in range(3):
        assert chat(gateway).status_code == 200
    keys = [r.headers["authorization"].removeprefix("Bearer ") for r in fake2.received if r.rejected is None]
    assert keys == [DEFAULT_KEY, SECOND_KEY, SECOND_KEY, SECOND_KEY, SECOND_KEY]


def test_a_probe_frees_the_account_at_its_first_content_not_at_its_end(start_gateway: Any) -> None:
    """An openai-compatible account takes many requests at once: while a probe after a failure
    streams a long answer, the others need not wait for its end (nor for the rest's)."""
    with FakeIflow(mode="openai", models=["gpt-x"]) as upstream:
        gateway: GatewayProcess = start_gateway(
            {
                "selectedAuthType": "openai-compatible",
                "baseUrl": upstream.base_url,
                "apiKey": DEFAULT_KEY,
                "modelName": "gpt-x",
            },
            {"IFLOW2API_ERROR_COOLDOWN": "30"},
        )
        upstream.enqueue(HttpError(500))
        assert chat(gateway, model="gpt-x").status_code == 502
        # The probe: its first piece at once, the rest after a long pause.
        upstream.enqueue(Stream.of_text(["Hel", "lo"], model="gpt-x", delay=6))
        with httpx.stream(
            "POST",
            gateway.url + "/v1/chat/completions",
            json={**CHAT, "model": "gpt-x", "stream": True},
            timeout=30,
        ) as probe:
            pieces = probe.iter_text()  # kept: a dropped iterator closes the stream
            assert "Hel" in next(pieces)
            # Had the probe kept the account until its end (6 s on), this would time out.
            other = httpx.post(
                gateway.url + "/v1/chat/completions", json={**CHAT, "model": "gpt-x"}, timeout=4
            )
            assert other.status_code == 200, other.text
            assert account_state(gateway)["in_flight"] == 1  # the probe was still streaming
        assert account_state(gateway)["state"] == "ok"
