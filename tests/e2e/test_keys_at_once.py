"""A key made with ``iflow2api keys create`` works on the running gateway's very next request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_keys import CHAT, bearer, create_key, start_with_keys
from tests.fake_iflow import FakeIflow


def test_a_key_created_while_the_gateway_runs_works_at_once(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    env, data = start_with_keys(tmp_path, fake)
    create_key(data, "first")
    gateway = start_gateway(None, env)
    unknown = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=bearer("sk-i2a-nope"))
    assert unknown.status_code == 401

    for n in range(3):  # each one right after its creation, with no wait in between
        key = create_key(data, f"later-{n}")
        answer = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=bearer(key), timeout=10)
        assert answer.status_code == 200, answer.text
