"""Three iFlow accounts behind one gateway: spreading, failover, cooldowns, quarantine, usage, metrics.

The accounts are three keys on one fake iFlow server (one in the iFlow CLI's settings.json, two
from the config file), so each request's ``Authorization`` header tells which account served it,
and ``enqueue_for`` scripts one account's answers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import BusinessError, Completion, FakeIflow, Hang, HttpError

KEY_A = "sk-" + "a" * 32
KEY_B = "sk-" + "b" * 32
KEY_C = "sk-" + "c" * 32
LABELS = {KEY_A: "iFlow CLI settings", KEY_B: "second", KEY_C: "third"}
CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fake3() -> Iterator[FakeIflow]:
    with FakeIflow(api_keys=[KEY_A, KEY_B, KEY_C]) as server:
        yield server


def config_text(fake: FakeIflow) -> str:
    return "".join(
        f'[[accounts]]\nlabel = "{LABELS[key]}"\nkind = "iflow-key"\nbase_url = "{fake.base_url}"\n'
        f'api_key = "{key}"\n\n'
        for key in (KEY_B, KEY_C)
    )


def start_pool(start_gateway: Any, fake: FakeIflow, tmp_path: Path, **env: str) -> GatewayProcess:
    config = tmp_path / "config.toml"
    config.write_text(config_text(fake))
    settings = iflow_settings(fake, KEY_A)
    gateway: GatewayProcess = start_gateway(
        settings,
        {
            "IFLOW2API_CONFIG": str(config),
            "IFLOW2API_COOLDOWN_BASE": "30",
            "IFLOW2API_ERROR_COOLDOWN": "30",
            **env,
        },
    )
    return gateway


@pytest.fixture
def fake(fake3: FakeIflow) -> FakeIflow:
    fake3.reset()
    return fake3


def asked(fake: FakeIflow) -> list[str]:
    """The account of each request the fake admitted (its scripted failures included), in order."""
    keys = [r.headers["authorization"].removeprefix("Bearer ") for r in fake.received if r.rejected is None]
    return [LABELS[key] for key in keys]


def accounts(gateway: GatewayProcess) -> dict[str, dict[str, Any]]:
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    return {account["label"]: account for account in listing["accounts"]}


def chat(gateway: GatewayProcess, **extra: Any) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, **extra}, timeout=30)


def test_round_robin_spreads_requests_over_every_account(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path)
    for _ in range(6):
        assert chat(gateway).status_code == 200
    assert Counter(asked(fake)) == {label: 2 for label in LABELS.values()}
    # In the pool's order, one after the other.
    assert asked(fake)[:3] == ["iFlow CLI settings", "second", "third"]
    listed = accounts(gateway)
    assert {listed[label]["source"] for label in LABELS.values()} == {"iflow-cli", "config"}
    assert all(account["requests"] == 2 and account["state"] == "ok" for account in listed.values())
    shown = json.dumps(listed)
    assert KEY_A not in shown and KEY_B[:12] not in shown  # keys only masked


def test_concurrent_requests_use_all_accounts_and_the_rest_wait(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path)
    for key in (KEY_A, KEY_B, KEY_C):
        fake.enqueue_for(key, Hang(0.6))
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: chat(gateway).status_code, range(4)))
    # iFlow allows one request per account: never two at once on one key (no 449), and the fourth
    # request waited for the first free account instead of failing.
    assert statuses == [200, 200, 200, 200]
    assert all(r.rejected is None for r in fake.received), [r.rejected for r in fake.received]
    assert len(set(asked(fake)[:3])) == 3


def test_fill_first_uses_the_first_account_while_it_is_free(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path, IFLOW2API_STRATEGY="fill-first")
    for _ in range(4):
        assert chat(gateway).status_code == 200
    assert asked(fake) == ["iFlow CLI settings"] * 4


@pytest.mark.parametrize(
    "failure",
    [
        BusinessError(status="449", msg="You exceeded your current rate limit"),
        HttpError(429, headers={"Retry-After": "40"}),
        BusinessError(status="8211", msg="rate limited"),
        HttpError(500),
    ],
    ids=["449", "429", "8211", "500"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_failing_account_is_left_for_another_without_the_client_noticing(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, failure: Any, stream: bool
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path)
    fake.enqueue_for(KEY_A, failure)
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    if stream:
        chunks = list(
            sdk.chat.completions.create(
                model="glm-4.7", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
        text = reply.choices[0].message.content or ""
    assert text  # a whole answer, from the second account
    assert asked(fake) == ["iFlow CLI settings", "second"]
    first = accounts(gateway)["iFlow CLI settings"]
    assert first["state"] == "cooling", first
    rest = first["until"] - time.time()
    # 30 s (the configured base) for rate limits and errors, or the upstream's own 40 s if longer.
    expected = 40 if isinstance(failure, HttpError) and failure.status == 429 else 30
    assert expected - 3 < rest <= expected + 1, first
    # The cooling account is skipped until its cooldown ends.
    for _ in range(2):
        assert chat(gateway).status_code == 200
    assert asked(fake)[2:] == ["third", "second"]


def test_a_blocked_account_is_quarantined_and_never_retried(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path)
    blocked = "Access to the current AK has been blocked due to unauthorized requests"
    fake.enqueue_for(KEY_A, BusinessError(status="434", msg=blocked))
    assert chat(gateway).status_code == 200
    first = accounts(gateway)["iFlow CLI settings"]
    assert first["state"] == "quarantined"
    assert blocked in first["reason"]
    for _ in range(6):
        assert chat(gateway).status_code == 200
    assert asked(fake).count("iFlow CLI settings") == 1  # the request that found it blocked
    assert Counter(asked(fake)) == {"iFlow CLI settings": 1, "second": 4, "third": 3}
    # Only a person lifts it: here, the page's reset.
    httpx.post(
        gateway.url + "/api/accounts/action", json={"id": first["id"], "action": "reset"}, timeout=5
    ).raise_for_status()
    assert accounts(gateway)["iFlow CLI settings"]["state"] == "ok"


def test_when_every_account_cools_down_the_client_gets_a_429_with_the_earliest_end(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path, IFLOW2API_COOLDOWN_BASE="1")
    for key, seconds in ((KEY_A, 300), (KEY_B, 120), (KEY_C, 200)):
        fake.enqueue_for(key, HttpError(429, headers={"Retry-After": str(seconds)}))
    reply = chat(gateway)
    assert reply.status_code == 429
    assert asked(fake) == list(LABELS.values())  # every account was tried once
    assert 117 <= int(reply.headers["retry-after"]) <= 120
    assert reply.json()["error"]["type"] == "rate_limit_error"
    # The next request is refused at once, without asking anyone.
    again = chat(gateway)
    assert again.status_code == 429
    assert 115 <= int(again.headers["retry-after"]) <= 120
    assert "cooling down" in again.json()["error"]["message"]
    assert len(fake.received) == 3


def test_pings_keep_a_stream_alive_while_it_fails_over(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path, IFLOW2API_KEEPALIVE_INTERVAL="0.2")
    fake.enqueue_for(KEY_A, Hang(1.0, then=HttpError(503)))
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30
    ) as reply:
        assert reply.status_code == 200
        lines = [line for line in reply.iter_lines() if line]
    pings = [line for line in lines if line.startswith(":")]
    data = [line for line in lines if line.startswith("data:")]
    assert len(pings) >= 3, lines
    assert lines.index(pings[-1]) < lines.index(data[0])  # pings only before the content
    assert data[-1] == "data: [DONE]"
    assert asked(fake) == ["iFlow CLI settings", "second"]


def test_a_failure_after_pings_arrives_as_an_error_event(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path, IFLOW2API_KEEPALIVE_INTERVAL="0.2")
    for key in (KEY_A, KEY_B, KEY_C):
        fake.enqueue_for(key, Hang(0.3, then=HttpError(503)))
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30
    ) as reply:
        assert reply.status_code == 200  # the pings had started the stream
        lines = [line for line in reply.iter_lines() if line]
    assert lines[0] == ": ping"
    errors = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert errors and errors[0]["error"]["type"] == "upstream_error", lines
    assert lines[-1] == "data: [DONE]"
    # Recorded as the failure it was, not as the 200 the pings had to start with.
    usage = httpx.get(gateway.url + "/api/usage?days=1", timeout=5).json()
    assert usage["recent"][0]["status"] == 502 and usage["totals"]["errors"] == 1


def test_usage_rows_and_metrics_match_the_requests(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path)
    fake.enqueue_for(
        KEY_B, Completion(usage={"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140})
    )
    fake.enqueue_for(
        KEY_C, HttpError(400, body={"error": {"message": "bad", "type": "invalid_request_error"}})
    )
    assert chat(gateway).status_code == 200  # A: the default 12 + 5 tokens
    assert chat(gateway).status_code == 200  # B: 100 + 40
    assert chat(gateway).status_code == 400  # C: the client's fault, not retried
    stream = chat(gateway, stream=True, model="qwen3-coder-plus")  # A again, streamed
    assert stream.status_code == 200
    anthropic_reply = httpx.post(
        gateway.url + "/v1/messages",
        json={"model": "glm-4.7", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert anthropic_reply.status_code == 200

    summary = httpx.get(gateway.url + "/api/usage?days=1", timeout=5).json()
    totals = summary["totals"]
    assert totals["requests"] == 5
    assert totals["errors"] == 1
    assert totals["prompt_tokens"] == 12 + 100 + 0 + 12 + 12
    assert totals["completion_tokens"] == 5 + 40 + 0 + 5 + 5
    by_account = {row["name"]: row["requests"] for row in summary["per_account"]}
    assert by_account == {"iFlow CLI settings": 2, "second": 2, "third": 1}
    by_model = {row["name"]: row["requests"] for row in summary["per_model"]}
    assert by_model == {"glm-4.7": 4, "qwen3-coder-plus": 1}
    dialects = {row["name"]: row["requests"] for row in summary["per_dialect"]}
    assert dialects == {"chat": 4, "anthropic": 1}
    newest = summary["recent"][0]
    assert newest["dialect"] == "anthropic" and newest["status"] == 200 and newest["ttft_ms"] is not None
    streamed = next(row for row in summary["recent"] if row["stream"])
    assert streamed["model"] == "qwen3-coder-plus" and streamed["completion_tokens"] == 5

    csv = httpx.get(gateway.url + "/api/usage.csv?days=1", timeout=5)
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == 1 + 5

    metrics = httpx.get(gateway.url + "/metrics", timeout=5)
    assert metrics.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
    requests = families["iflow2api_requests"].samples
    assert sum(s.value for s in requests) == 5
    assert sum(s.value for s in requests if s.labels["status"] == "400") == 1
    tokens = families["iflow2api_tokens"].samples
    assert sum(s.value for s in tokens if s.labels["type"] == "prompt") == totals["prompt_tokens"]
    states = {
        s.labels["account"]: s.labels["state"]
        for s in families["iflow2api_account_state"].samples
        if s.value == 1
    }
    assert states == {"iFlow CLI settings": "ok", "second": "ok", "third": "ok"}


def test_usage_survives_a_restart(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_settings(home, iflow_settings(fake, KEY_A))
    data = tmp_path / "data"
    env = {"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data)}
    first = start_gateway(None, env)
    assert chat(first).status_code == 200
    first.stop()  # a clean stop writes what is still pending
    second = start_gateway(None, env)
    summary = httpx.get(second.url + "/api/usage?days=1", timeout=5).json()
    assert summary["totals"]["requests"] == 1


def test_an_expired_key_without_a_login_is_quarantined_and_the_request_served_elsewhere(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    gateway = start_pool(start_gateway, fake, tmp_path)
    fake.enqueue_for(KEY_A, BusinessError(status="439", msg="token expired"))
    assert chat(gateway).status_code == 200
    first = accounts(gateway)["iFlow CLI settings"]
    assert first["state"] == "quarantined" and "expired" in first["reason"], first
    for _ in range(4):
        assert chat(gateway).status_code == 200
    # Asked once (the 439), then never again; the others share the rest.
    assert asked(fake).count("iFlow CLI settings") == 1
    assert len(asked(fake)) == 6
    # A new key in settings.json lifts the quarantine by itself.
    write_settings(gateway.iflow_home, iflow_settings(fake, KEY_C))
    time.sleep(0.1)
    assert accounts(gateway)["iFlow CLI settings"]["state"] == "ok"
