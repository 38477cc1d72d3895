"""Stored Responses are bounded by bytes, in the gateway's memory and in its database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import iflow_settings
from tests.fake_iflow import FakeIflow

BOUND = 300_000
LARGE_INPUT = "many words " * 10_000  # about 110 kB


def test_stored_responses_are_bounded_by_bytes(start_gateway: Any, fake: FakeIflow, tmp_path: Path) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_RESPONSES_STORE_MAX_BYTES": str(BOUND)})
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)
    ids = [sdk.responses.create(model="glm-4.7", input=LARGE_INPUT).id for _ in range(6)]

    follow_up = sdk.responses.create(model="glm-4.7", input="and then?", previous_response_id=ids[-1])
    assert follow_up.status == "completed"
    with pytest.raises(openai.BadRequestError) as forgotten:
        sdk.responses.create(model="glm-4.7", input="and then?", previous_response_id=ids[0])
    assert forgotten.value.code == "previous_response_not_found"
    sdk.close()

    gateway.stop()  # its pending writes are drained at shutdown
    with sqlite3.connect(tmp_path / "data-0" / "state.sqlite3") as db:
        stored = db.execute("SELECT coalesce(sum(length(history)), 0), count(*) FROM response_history")
        size, count = stored.fetchone()
    assert 0 < size <= BOUND
    assert count >= 2
