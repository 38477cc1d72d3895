"""What crosses the coordination store as text: an account's health and an event, as JSON.

Health is written with ``AccountHealth``'s field names (as the SQLite ``health`` table names its
columns), so the Lua that merges two healths reads ``state``, ``until`` and ``upstream_asked`` by
name; fields it does not know (a newer instance's) are dropped when read back.

>>> text = health_json(AccountHealth("cooling", until=100.5, reason="rate limited"))
>>> health_from(orjson.loads(text)).until
100.5
>>> event_from(event_json("freed", "acc-1", "host-1")).kind
'freed'
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, get_args

import orjson

from iflow2api.coordination import Event, EventKind
from iflow2api.state.records import AccountHealth

_HEALTH_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(AccountHealth))
_KINDS: Final = frozenset(get_args(EventKind))


def health_json(health: AccountHealth) -> str:
    return orjson.dumps(dataclasses.asdict(health)).decode()


def health_from(value: dict[str, Any]) -> AccountHealth:
    return AccountHealth(**{name: item for name, item in value.items() if name in _HEALTH_FIELDS})


def event_json(kind: EventKind, subject: str, instance: str) -> str:
    return orjson.dumps({"kind": kind, "subject": subject, "instance": instance}).decode()


def health_event_prefix(subject: str, instance: str) -> str:
    """A ``health`` event up to its health, which the Lua appends (the merged one, known only
    there) with the closing brace."""
    head = orjson.dumps({"kind": "health", "subject": subject, "instance": instance}).decode()
    return head[:-1] + ',"health":'


def event_from(text: str | bytes) -> Event | None:
    """The event a message carries; None for one this version does not understand."""
    try:
        value = orjson.loads(text)
        kind, subject, instance = value["kind"], str(value["subject"]), str(value["instance"])
        health = value.get("health")
        if kind not in _KINDS:
            return None
        return Event(kind, subject, instance, None if health is None else health_from(health))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
