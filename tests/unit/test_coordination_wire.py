"""The coordination store's JSON: health, its versioned record and events read back as they were
written, and what an instance cannot understand (another version's, or garbage) is skipped, never
raised."""

from __future__ import annotations

import orjson
import pytest

from iflow2api.coordination import Event, HealthRecord
from iflow2api.coordination.wire import (
    event_from,
    event_json,
    health_event_prefix,
    health_from,
    health_json,
    record_from,
    stored_record,
)
from iflow2api.state.records import AccountHealth

QUARANTINE = AccountHealth("quarantined", 0.0, 0, "blocked", 12.5, "fp-1", code="account_blocked")


def test_health_round_trips_and_drops_fields_it_does_not_know() -> None:
    rest = AccountHealth("cooling", 1796319893.4307632, 2, "429", 1796319863.25, upstream_asked=True)
    for health in (rest, QUARANTINE, AccountHealth()):
        assert health_from(orjson.loads(health_json(health))) == health
    newer = {**orjson.loads(health_json(rest)), "from_a_later_version": 1}
    assert health_from(newer) == rest


def record(health: AccountHealth, version: int) -> str:
    """A record as the Lua writes it (``scripts.SHARE_HEALTH``)."""
    return '{"version":' + str(version) + ',"health":' + health_json(health) + "}"


def test_a_health_event_is_the_prefix_and_the_merged_record_with_its_version() -> None:
    text = health_event_prefix("acc-1", "gw-2") + record(QUARANTINE, 1796319863250) + "}"
    assert event_from(text) == Event("health", "acc-1", "gw-2", QUARANTINE, 1796319863250)
    assert event_from(event_json("revoked", "key-1", "gw-1")) == Event("revoked", "key-1", "gw-1")


def test_a_record_carries_its_version() -> None:
    read = record_from(orjson.loads(record(AccountHealth(since=5.0), 42)))
    assert (read.health, read.version) == (AccountHealth(since=5.0), 42)
    assert stored_record(record(QUARANTINE, 7)) == HealthRecord(QUARANTINE, 7)
    assert stored_record(health_json(QUARANTINE)) is None  # an older version's: no version to order by


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"kind": "freed"}',
        '{"kind": "renamed", "subject": "a", "instance": "b"}',
        # A record without its version (or with a version that is no number) cannot be ordered.
        '{"kind": "health", "subject": "a", "instance": "b", "record": {"health": {}}}',
        '{"kind": "health", "subject": "a", "instance": "b", "record": {"version": "x", "health": {}}}',
    ],
)
def test_what_cannot_be_understood_is_skipped(text: str) -> None:
    assert event_from(text) is None
