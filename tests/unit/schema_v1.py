"""The state database as schema version 1 wrote it, for the tests of the upgrades from it.

Kept word for word as it shipped: tests that build an old file from today's schema minus a column
break as soon as a second upgrade touches the same file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_1 = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO meta (name, value) VALUES ('generation', 0)",
    """CREATE TABLE accounts (
        id TEXT PRIMARY KEY, label TEXT NOT NULL, kind TEXT NOT NULL, base_url TEXT NOT NULL,
        secret TEXT NOT NULL, models TEXT NOT NULL, enabled INTEGER NOT NULL, oauth TEXT,
        concurrency INTEGER, created_at REAL NOT NULL)""",
    """CREATE TABLE health (
        account_id TEXT PRIMARY KEY, state TEXT NOT NULL, until REAL NOT NULL,
        strikes INTEGER NOT NULL, reason TEXT, since REAL NOT NULL, key_fingerprint TEXT)""",
    """CREATE TABLE client_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
        created_at REAL NOT NULL, admin INTEGER NOT NULL, rpm INTEGER, tokens_per_day INTEGER,
        models TEXT NOT NULL)""",
    "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE usage (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, key TEXT, account TEXT, model TEXT NOT NULL,
        dialect TEXT NOT NULL, stream INTEGER NOT NULL, status INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, ttft_ms REAL,
        attempts INTEGER NOT NULL, error TEXT)""",
    "CREATE INDEX usage_at ON usage (at)",
    "CREATE TABLE affinity (session TEXT PRIMARY KEY, account_id TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX affinity_at ON affinity (at)",
    # seq: a counter, not a clock, so "newest" never depends on two processes' clocks agreeing.
    "CREATE TABLE reasoning (key TEXT PRIMARY KEY, reasoning TEXT NOT NULL, seq INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX reasoning_seq ON reasoning (seq)",
    "CREATE TABLE response_history (id TEXT PRIMARY KEY, history TEXT NOT NULL, seq INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX response_history_seq ON response_history (seq)",
)


def write_schema_1(path: Path) -> sqlite3.Connection:
    """A new schema-1 file at ``path``, left open for the test to fill and close."""
    db = sqlite3.connect(path)
    for statement in SCHEMA_1:
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    return db
