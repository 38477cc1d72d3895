"""What crosses the coordination store as text: an account's health, its record and an event, as JSON.

Health is written with ``AccountHealth``'s field names (as the SQLite ``health`` table names its
columns), so the Lua that merges two healths reads ``state``, ``until`` and ``upstream_asked`` by
name; fields it does not know (a newer instance's) are dropped when read back. The store keeps a
health inside its record, ``{"version": n, "health": {...}}``, and a ``health`` event carries that
record whole under ``"record"``.

>>> text = health_json(AccountHealth("cooling", until=100.5, reason="rate limited"))
>>> health_from(orjson.loads(text)).until
100.5
>>> record_from({"version": 7, "health": orjson.loads(text)}).version
7
>>> event_from(event_json("freed", "acc-1", "host-1")).kind
'freed'
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, get_args

import orjson

from iflow2api.coordination import Event, EventKind, HealthRecord
from iflow2api.state.records import AccountHealth

_HEALTH_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(AccountHealth))
_KINDS: Final = frozenset(get_args(EventKind))


def health_json(health: AccountHealth) -> str:
    return orjson.dumps(dataclasses.asdict(health)).decode()


def health_from(value: dict[str, Any]) -> AccountHealth:
    return AccountHealth(**{name: item for name, item in value.items() if name in _HEALTH_FIELDS})


def record_from(value: dict[str, Any]) -> HealthRecord:
    return HealthRecord(health_from(value["health"]), int(value["version"]))


def stored_record(text: str | bytes) -> HealthRecord | None:
    """The record the store holds; None for one this version cannot read (an older version's
    plain health has no version to order it by: the next change replaces it)."""
    try:
        return record_from(orjson.loads(text))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def event_json(kind: EventKind, subject: str, instance: str) -> str:
    return orjson.dumps({"kind": kind, "subject": subject, "instance": instance}).decode()


def health_event_prefix(subject: str, instance: str) -> str:
    """A ``health`` event up to its record, which the Lua appends (the merged one and its
    version, known only there) with the closing brace."""
    head = orjson.dumps({"kind": "health", "subject": subject, "instance": instance}).decode()
    return head[:-1] + ',"record":'


def event_from(text: str | bytes) -> Event | None:
    """The event a message carries; None for one this version does not understand."""
    try:
        value = orjson.loads(text)
        kind, subject, instance = value["kind"], str(value["subject"]), str(value["instance"])
        if kind not in _KINDS:
            return None
        if "record" not in value:
            return Event(kind, subject, instance)
        record = record_from(value["record"])
        return Event(kind, subject, instance, record.health, record.version)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
