"""The SQLite file itself: its schema and versions, opening it safely, and one write transaction.

Everything here runs on the store's worker thread (``state.sqlite``). Secrets live in the file, so
it and its ``-wal`` and ``-shm`` files are made 0600 whatever the umask. Every write begins with
``BEGIN IMMEDIATE``: a read transaction that later turns into a write can fail with "database is
locked" however long ``busy_timeout`` lets it wait.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

log = logging.getLogger("iflow2api.state")

#: ``PRAGMA user_version`` of the schema below; a file with a higher one is refused, not guessed at.
SCHEMA_VERSION = 4
#: How long a write waits for another process's write to finish before it fails.
BUSY_TIMEOUT_MS = 5000
#: Where SQLite truncates the ``-wal`` file after a checkpoint, so one burst does not leave it huge.
WAL_SIZE_LIMIT = 32 * 1024 * 1024

_PRIVATE = 0o600

# A table's columns carry its record's field names (``sqlite_rows`` relies on it): a field
# added to a record needs its column here and a new SCHEMA_VERSION with a step in ``migrate``.
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO meta (name, value) VALUES ('generation', 0)",
    """CREATE TABLE accounts (
        id TEXT PRIMARY KEY, label TEXT NOT NULL, kind TEXT NOT NULL, base_url TEXT NOT NULL,
        secret TEXT NOT NULL, models TEXT NOT NULL, enabled INTEGER NOT NULL, oauth TEXT,
        concurrency INTEGER, created_at REAL NOT NULL, provider TEXT)""",
    """CREATE TABLE health (
        account_id TEXT PRIMARY KEY, state TEXT NOT NULL, until REAL NOT NULL,
        strikes INTEGER NOT NULL, reason TEXT, since REAL NOT NULL, key_fingerprint TEXT,
        upstream_asked INTEGER NOT NULL DEFAULT 0, code TEXT)""",
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
        attempts INTEGER NOT NULL, error TEXT, estimated INTEGER NOT NULL DEFAULT 0,
        cached_tokens INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX usage_at ON usage (at)",
    "CREATE TABLE affinity (session TEXT PRIMARY KEY, account_id TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX affinity_at ON affinity (at)",
    # seq: a counter, not a clock, so "newest" never depends on two processes' clocks agreeing.
    "CREATE TABLE reasoning (key TEXT PRIMARY KEY, reasoning TEXT NOT NULL, seq INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX reasoning_seq ON reasoning (seq)",
    "CREATE TABLE response_history (id TEXT PRIMARY KEY, history TEXT NOT NULL, seq INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX response_history_seq ON response_history (seq)",
)


# How a file of an older version v becomes the current one: the steps ``_STEPS[v - 1:]``, in order.
_STEPS: tuple[tuple[str, ...], ...] = (
    # 1 → 2: whether the upstream asked for a cooldown, and the code of a quarantine; usage rows
    # whose tokens are our estimate (the upstream sent no usage).
    (
        "ALTER TABLE health ADD COLUMN upstream_asked INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE health ADD COLUMN code TEXT",
        "ALTER TABLE usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0",
    ),
    # 2 → 3: the provider profile an account names (NULL: chosen by its base URL's host).
    ("ALTER TABLE accounts ADD COLUMN provider TEXT",),
    # 3 → 4: usage rows' cached prompt tokens (rows written before it read as 0: none known).
    ("ALTER TABLE usage ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0",),
)


class StateFileError(Exception):
    """The state database cannot be opened or used; the message names the file (or the PostgreSQL URL,
    without its password) and says why. The CLI and the gateway's start print it as one line."""


def connect(path: Path) -> sqlite3.Connection:
    """An open connection to ``path`` in WAL mode with the current schema; ``StateFileError`` if not."""
    try:
        make_private(path, create=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StateFileError(f"cannot open the state database {path}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        journal = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(journal).lower() != "wal":
            # Some network file systems cannot share memory between processes; SQLite then keeps
            # its rollback journal, which still works, only with readers waiting for writers.
            log.warning("%s: SQLite would not use WAL here (journal mode %s)", path, journal)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        migrate(db, path)
        # SQLite gives these the database file's mode; one left over from an older, laxer run may not.
        for suffix in ("-wal", "-shm"):
            make_private(path.with_name(path.name + suffix), create=False)
    except sqlite3.Error as exc:
        db.close()
        raise StateFileError(f"cannot use the state database {path}: {exc}") from exc
    except BaseException:
        db.close()
        raise
    return db


#: SQLite's primary result codes for a damaged file (the low byte of an extended code).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def make_private(path: Path, *, create: bool) -> None:
    """Make ``path`` mode 0600, whatever the umask; with ``create``, create it (empty) if missing.

    Creating the database file ourselves means it is never readable by others, not even for the
    moment between SQLite creating it and a chmod.
    """
    if sys.platform == "win32":
        if create:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), _PRIVATE))
        return
    try:
        fd = os.open(path, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, _PRIVATE)
    except FileNotFoundError:
        if create:
            raise
        return
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != _PRIVATE:
            os.fchmod(fd, _PRIVATE)
    finally:
        os.close(fd)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a new file, bring an older one up to date; refuse a newer one."""
    if user_version(db) == SCHEMA_VERSION:
        return
    with write(db):
        version = user_version(db)  # again, under the lock: another process may have just done it
        if version == 0:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version < SCHEMA_VERSION:
            for step in _STEPS[version - 1 :]:
                for statement in step:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise StateFileError(
                f"the state database {path} has schema version {version}, which this iflow2api "
                f"(schema {SCHEMA_VERSION}) does not know; it was written by a newer iflow2api"
            )


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


@contextmanager
def write(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the write lock from its start (see the module docstring)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with suppress(sqlite3.Error):  # keep the original error, not a failed rollback's
                db.execute("ROLLBACK")
        raise
