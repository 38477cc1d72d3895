"""The embedded state store: one SQLite file in the data folder, shared by every local process.

Use it through ``state.open_store``::

    store = open_store(data_dir)        # makes the folder; the file is not touched yet
    accounts = await store.accounts()   # the first call opens the file (creating it if needed)
    await store.close()

``await store.open()`` opens it at once instead, so that a bad file is reported at startup.

Threads: ``sqlite3`` blocks, so one worker thread owns the connection and runs every call, in the
order they were made; the event loop only awaits. The connection is opened once and kept.

Processes: the gateway and the CLI may have the file open at the same time. WAL lets readers work
while one process writes; ``busy_timeout`` makes a writer wait for another instead of failing; every
write begins with ``BEGIN IMMEDIATE``, taking the write lock before it reads anything (a read
transaction that later turns into a write can fail with "database is locked" however long it
waits). ``generation()`` reads a counter in ``meta`` that is bumped in the same transaction as any
change to accounts, client keys or settings, so another process notices those with one cheap read.

Secrets (upstream keys, OAuth tokens) live in the file: it and its ``-wal`` and ``-shm`` files are
made 0600 whatever the umask.

Memories are bounded so the file cannot grow without limit: the newest ``max_reasoning`` reasoning
keys, the newest ``max_response_histories`` response histories, affinities seen within
``affinity_ttl`` seconds. A store prunes a table with its first insert into it, then once every
``prune_every`` inserts, not on each one. Usage rows stay until ``prune_usage``. Response histories
are bounded by bytes too (``max_response_history_bytes``; one input can be megabytes): they are
pruned to it whenever an eighth of it has been added since the last time, so the table overshoots
by at most that; a history larger than the whole bound is not stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
import os
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import orjson

from iflow2api.state.records import AccountHealth, AccountRecord, ClientKeyRecord, UsageRow

log = logging.getLogger("iflow2api.state")

T = TypeVar("T")
R = TypeVar("R", AccountRecord, AccountHealth, ClientKeyRecord, UsageRow)

#: ``PRAGMA user_version`` of the schema below; a file with a higher one is refused, not guessed at.
SCHEMA_VERSION = 2
#: How long a write waits for another process's write to finish before it fails.
BUSY_TIMEOUT_MS = 5000
#: Where SQLite truncates the ``-wal`` file after a checkpoint, so one burst does not leave it huge.
WAL_SIZE_LIMIT = 32 * 1024 * 1024

MAX_REASONING = 20_000
MAX_RESPONSE_HISTORIES = 5_000
MAX_RESPONSE_HISTORY_BYTES = 64 * 1024 * 1024
AFFINITY_TTL = 24 * 3600.0
PRUNE_EVERY = 500

_PRIVATE = 0o600

# A table's columns carry its record's field names (``_to_row``/``_from_row`` rely on it): a field
# added to a record needs its column here and a new SCHEMA_VERSION with a step in ``_migrate``.
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO meta (name, value) VALUES ('generation', 0)",
    """CREATE TABLE accounts (
        id TEXT PRIMARY KEY, label TEXT NOT NULL, kind TEXT NOT NULL, base_url TEXT NOT NULL,
        secret TEXT NOT NULL, models TEXT NOT NULL, enabled INTEGER NOT NULL, oauth TEXT,
        concurrency INTEGER, created_at REAL NOT NULL)""",
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
        attempts INTEGER NOT NULL, error TEXT, estimated INTEGER NOT NULL DEFAULT 0)""",
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
)


def _columns(record_type: type[Any]) -> str:
    return ", ".join(f.name for f in dataclasses.fields(record_type))


_ACCOUNT_COLUMNS = _columns(AccountRecord)
_HEALTH_COLUMNS = _columns(AccountHealth)
_KEY_COLUMNS = _columns(ClientKeyRecord)
_USAGE_COLUMNS = _columns(UsageRow)


def _upsert(table: str, columns: str, key: str) -> str:
    """``INSERT ... ON CONFLICT DO UPDATE``: unlike ``INSERT OR REPLACE`` it keeps the row's rowid,
    so a replaced account or key keeps its place in the list."""
    names = [name.strip() for name in columns.split(",")]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != key)
    return f"{_insert(table, columns)} ON CONFLICT ({key}) DO UPDATE SET {updates}"


def _insert(table: str, columns: str) -> str:
    marks = ", ".join("?" for _ in columns.split(","))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})"


_PUT_ACCOUNT = _upsert("accounts", _ACCOUNT_COLUMNS, "id")
_PUT_HEALTH = _upsert("health", f"account_id, {_HEALTH_COLUMNS}", "account_id")
_PUT_KEY = _upsert("client_keys", _KEY_COLUMNS, "id")
_PUT_SETTING = _upsert("settings", "name, value", "name")
_PUT_AFFINITY = _upsert("affinity", "session, account_id, at", "session")
_PUT_REASONING = _upsert("reasoning", "key, reasoning, seq", "key")
_PUT_HISTORY = _upsert("response_history", "id, history, seq", "id")
_ADD_USAGE = _insert("usage", _USAGE_COLUMNS)
_usage_values = operator.attrgetter(*(f.name for f in dataclasses.fields(UsageRow)))


class StateFileError(Exception):
    """The state database cannot be opened or used; the message names the file and says why."""


class SQLiteStore:
    """``StateStore`` over one SQLite file; see the module docstring.

    The constructor does no I/O: the file is opened by ``open()`` or by the first call. The bounds
    are parameters so that tests can make them small.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_reasoning: int = MAX_REASONING,
        max_response_histories: int = MAX_RESPONSE_HISTORIES,
        max_response_history_bytes: int = MAX_RESPONSE_HISTORY_BYTES,
        affinity_ttl: float = AFFINITY_TTL,
        prune_every: int = PRUNE_EVERY,
    ) -> None:
        self.path = path
        self.max_reasoning = max_reasoning
        self.max_response_histories = max_response_histories
        #: 0: no byte bound.
        self.max_response_history_bytes = max_response_history_bytes
        self._unpruned_history_bytes = max_response_history_bytes  # due, like the counts
        self.affinity_ttl = affinity_ttl
        self.prune_every = prune_every
        # Inserts since each table was last pruned; starting "due" prunes with the first insert, so a
        # short-lived process (the CLI) also keeps the file in bounds.
        self._unpruned = {"reasoning": prune_every, "response_history": prune_every, "affinity": prune_every}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iflow2api-state")
        self._db: sqlite3.Connection | None = None  # touched on the worker thread only
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file now (creating it and its tables if needed); raises ``StateFileError``."""
        await self._run(lambda db: None)

    async def close(self) -> None:
        """Close the connection and stop the worker; calling any method afterwards is an error."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        finally:
            # Every earlier call ran before the disconnect, so this only joins an idle thread.
            self._executor.shutdown(wait=True)

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError(f"the state store {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._on_worker, job)

    def _on_worker(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = _connect(self.path)  # on failure, the next call tries again
        try:
            return job(self._db)
        except sqlite3.DatabaseError as exc:
            # Damaged pages show only when a query reaches them, long after the file opened fine;
            # the caller (a start-up, the CLI) can then say which file it is instead of a traceback.
            if _damaged(exc):
                raise StateFileError(f"the state database {self.path} is damaged: {exc}") from exc
            raise

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _prune_due(self, table: str, inserted: int) -> bool:
        """Count ``inserted`` rows into ``table``; True when it is time to prune it."""
        self._unpruned[table] += inserted
        if self._unpruned[table] < self.prune_every:
            return False
        self._unpruned[table] = 0
        return True

    # -- change detection ------------------------------------------------------------------------

    async def generation(self) -> int:
        return await self._run(_generation)

    # -- accounts --------------------------------------------------------------------------------

    async def accounts(self) -> list[AccountRecord]:
        """Every account, in the order they were first added."""
        return await self._run(_select_accounts)

    async def put_account(self, account: AccountRecord) -> None:
        row = _to_row(account, models=_json, oauth=_json)

        def job(db: sqlite3.Connection) -> None:
            with _write(db):
                db.execute(_PUT_ACCOUNT, row)
                _bump_generation(db)

        await self._run(job)

    async def delete_account(self, account_id: str) -> bool:
        """Remove it, with its health and its sessions' affinities."""

        def job(db: sqlite3.Connection) -> bool:
            with _write(db):
                gone = db.execute("DELETE FROM accounts WHERE id = ?", (account_id,)).rowcount > 0
                if gone:
                    db.execute("DELETE FROM health WHERE account_id = ?", (account_id,))
                    db.execute("DELETE FROM affinity WHERE account_id = ?", (account_id,))
                    _bump_generation(db)
            return gone

        return await self._run(job)

    # -- account health --------------------------------------------------------------------------

    async def health(self) -> dict[str, AccountHealth]:
        return await self._run(_select_health)

    async def put_health(self, account_id: str, health: AccountHealth) -> None:
        row = (account_id, *_to_row(health))

        def job(db: sqlite3.Connection) -> None:
            with _write(db):
                db.execute(_PUT_HEALTH, row)

        await self._run(job)

    # -- client keys -----------------------------------------------------------------------------

    async def client_keys(self) -> list[ClientKeyRecord]:
        """Every key, in the order they were first added."""
        return await self._run(_select_client_keys)

    async def put_client_key(self, key: ClientKeyRecord) -> None:
        """Insert or replace by id; ``ValueError`` when another key has the same hash."""
        row = _to_row(key, models=_json)

        def job(db: sqlite3.Connection) -> None:
            try:
                with _write(db):
                    db.execute(_PUT_KEY, row)
                    _bump_generation(db)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"client key {key.id!r}: another key has the same hash") from exc

        await self._run(job)

    async def delete_client_key(self, key_id: str) -> bool:
        return await self._run(lambda db: _delete_bumping(db, "DELETE FROM client_keys WHERE id = ?", key_id))

    # -- settings --------------------------------------------------------------------------------

    async def get_setting(self, name: str) -> str | None:
        def job(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(job)

    async def put_setting(self, name: str, value: str | None) -> None:
        """``None`` removes it."""
        if value is None:
            await self._run(lambda db: _delete_bumping(db, "DELETE FROM settings WHERE name = ?", name))
            return

        def job(db: sqlite3.Connection) -> None:
            with _write(db):
                db.execute(_PUT_SETTING, (name, value))
                _bump_generation(db)

        await self._run(job)

    # -- usage -----------------------------------------------------------------------------------

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Insert the batch in one transaction."""
        if not rows:
            return

        def job(db: sqlite3.Connection) -> None:
            # Converted on the worker thread, with one attrgetter per row: a batch of thousands of
            # rows must not hold up the event loop (it showed in the gateway's p99).
            with _write(db):
                db.executemany(_ADD_USAGE, map(_usage_values, rows))

        await self._run(job)

    async def usage(self, since: float, until: float | None = None) -> list[UsageRow]:
        """Rows with ``since <= at < until`` (no upper bound when ``until`` is None), oldest first."""
        return await self._run(lambda db: _select_usage(db, since, until))

    async def prune_usage(self, before: float) -> int:
        def job(db: sqlite3.Connection) -> int:
            with _write(db):
                return db.execute("DELETE FROM usage WHERE at < ?", (before,)).rowcount

        return await self._run(job)

    # -- session affinity ------------------------------------------------------------------------

    async def affinities(self, since: float) -> dict[str, str]:
        def job(db: sqlite3.Connection) -> dict[str, str]:
            rows = db.execute("SELECT session, account_id FROM affinity WHERE at >= ?", (since,)).fetchall()
            return {session: account_id for session, account_id in rows}

        return await self._run(job)

    async def put_affinity(self, session: str, account_id: str, at: float) -> None:
        """Remember it; now and then, forget sessions last seen ``affinity_ttl`` before ``at``."""
        prune = self._prune_due("affinity", 1)
        cutoff = at - self.affinity_ttl

        def job(db: sqlite3.Connection) -> None:
            with _write(db):
                db.execute(_PUT_AFFINITY, (session, account_id, at))
                if prune:
                    db.execute("DELETE FROM affinity WHERE at < ?", (cutoff,))

        await self._run(job)

    # -- memories --------------------------------------------------------------------------------

    async def reasoning(self, limit: int) -> list[tuple[str, str]]:
        """The ``limit`` most recently put (key, reasoning) pairs, oldest first."""
        if limit <= 0:
            return []  # SQLite reads a negative LIMIT as "no limit"
        return await self._run(lambda db: _select_reasoning(db, limit))

    async def put_reasoning(self, items: Sequence[tuple[str, str]]) -> None:
        """Insert or refresh; a key put again becomes the newest. Later items count as newer."""
        batch = list(items)
        if not batch:
            return
        prune = self._prune_due("reasoning", len(batch))
        keep = self.max_reasoning

        def job(db: sqlite3.Connection) -> None:
            with _write(db):
                first = _next_seq(db, "reasoning")
                db.executemany(
                    _PUT_REASONING, [(key, text, first + i) for i, (key, text) in enumerate(batch)]
                )
                if prune:
                    _keep_newest(db, "reasoning", keep)

        await self._run(job)

    async def response_history(self, response_id: str) -> list[dict[str, Any]] | None:
        def job(db: sqlite3.Connection) -> list[dict[str, Any]] | None:
            row = db.execute("SELECT history FROM response_history WHERE id = ?", (response_id,)).fetchone()
            return None if row is None else _load_history(row[0])

        return await self._run(job)

    async def put_response_history(self, response_id: str, history: bytes) -> None:
        # Stored as a BLOB (SQLite keeps it so in the TEXT column): its length is then read from
        # the row's header, which keeps pruning by bytes cheap however large the histories are.
        blob = history
        max_bytes = self.max_response_history_bytes
        if max_bytes and len(blob) > max_bytes:
            return
        prune = self._prune_due("response_history", 1)
        self._unpruned_history_bytes += len(blob)
        prune_bytes = bool(max_bytes) and self._unpruned_history_bytes >= max_bytes // 8
        if prune_bytes:
            self._unpruned_history_bytes = 0
        keep = self.max_response_histories

        def job(db: sqlite3.Connection) -> None:
            with _write(db):
                db.execute(_PUT_HISTORY, (response_id, blob, _next_seq(db, "response_history")))
                if prune:
                    _keep_newest(db, "response_history", keep)
                if prune_bytes:
                    _keep_newest_bytes(db, "response_history", "history", max_bytes)

        await self._run(job)


# ---------------------------------------------------------------------------------------------
# Opening (worker thread)


def _connect(path: Path) -> sqlite3.Connection:
    """An open connection to ``path`` in WAL mode with the current schema; ``StateFileError`` if not."""
    try:
        _make_private(path, create=True)
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
        _migrate(db, path)
        # SQLite gives these the database file's mode; one left over from an older, laxer run may not.
        for suffix in ("-wal", "-shm"):
            _make_private(path.with_name(path.name + suffix), create=False)
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


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _make_private(path: Path, *, create: bool) -> None:
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


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a new file, bring an older one up to date; refuse a newer one."""
    if _user_version(db) == SCHEMA_VERSION:
        return
    with _write(db):
        version = _user_version(db)  # again, under the lock: another process may have just done it
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


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


# ---------------------------------------------------------------------------------------------
# Statements (worker thread)


@contextmanager
def _write(db: sqlite3.Connection) -> Iterator[None]:
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


def _bump_generation(db: sqlite3.Connection) -> None:
    db.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")


def _generation(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM meta WHERE name = 'generation'").fetchone()[0])


def _delete_bumping(db: sqlite3.Connection, statement: str, key: str) -> bool:
    """Run a one-row delete; bump the generation if a row went. True if one did."""
    with _write(db):
        gone = db.execute(statement, (key,)).rowcount > 0
        if gone:
            _bump_generation(db)
    return gone


def _next_seq(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f"SELECT coalesce(max(seq), 0) + 1 FROM {table}").fetchone()[0])


def _keep_newest(db: sqlite3.Connection, table: str, keep: int) -> None:
    # The (keep+1)-th newest seq and everything older goes; the unique index on seq makes this a
    # short index walk, however large the table.
    db.execute(
        f"DELETE FROM {table} WHERE seq <= (SELECT seq FROM {table} ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (keep,),
    )


def _keep_newest_bytes(db: sqlite3.Connection, table: str, column: str, max_bytes: int) -> None:
    """Keep the newest rows whose ``column`` adds up to at most ``max_bytes``; the rest go."""
    db.execute(
        f"DELETE FROM {table} WHERE seq <= (SELECT seq FROM (SELECT seq, sum(length({column})) "
        f"OVER (ORDER BY seq DESC) AS total FROM {table}) WHERE total > ? ORDER BY seq DESC LIMIT 1)",
        (max_bytes,),
    )


# Records and rows: a table's columns are its record's fields, by the same names. Only what SQLite
# has no type for is converted: tuples and dicts go in as JSON text, bools come back from 0/1.


def _to_row(record: Any, **convert: Callable[[Any], Any]) -> tuple[Any, ...]:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    for name, encode in convert.items():
        values[name] = encode(values[name])
    return tuple(values.values())


def _from_row(record_type: type[R], row: Sequence[Any], **convert: Callable[[Any], Any]) -> R:
    values = dict(zip((f.name for f in dataclasses.fields(record_type)), row, strict=True))
    for name, decode in convert.items():
        values[name] = decode(values[name])
    return record_type(**values)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _from_json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _tuple_from_json(text: str) -> tuple[Any, ...]:
    return tuple(orjson.loads(text))


def _select_accounts(db: sqlite3.Connection) -> list[AccountRecord]:
    rows = db.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY rowid").fetchall()
    return [
        _from_row(AccountRecord, row, models=_tuple_from_json, enabled=bool, oauth=_from_json) for row in rows
    ]


def _select_health(db: sqlite3.Connection) -> dict[str, AccountHealth]:
    rows = db.execute(f"SELECT account_id, {_HEALTH_COLUMNS} FROM health").fetchall()
    return {row[0]: _from_row(AccountHealth, row[1:], upstream_asked=bool) for row in rows}


def _select_client_keys(db: sqlite3.Connection) -> list[ClientKeyRecord]:
    rows = db.execute(f"SELECT {_KEY_COLUMNS} FROM client_keys ORDER BY rowid").fetchall()
    return [_from_row(ClientKeyRecord, row, admin=bool, models=_tuple_from_json) for row in rows]


def _select_usage(db: sqlite3.Connection, since: float, until: float | None) -> list[UsageRow]:
    if until is None:
        query = f"SELECT {_USAGE_COLUMNS} FROM usage WHERE at >= ? ORDER BY at, id"
        rows = db.execute(query, (since,)).fetchall()
    else:
        query = f"SELECT {_USAGE_COLUMNS} FROM usage WHERE at >= ? AND at < ? ORDER BY at, id"
        rows = db.execute(query, (since, until)).fetchall()
    return [_from_row(UsageRow, row, stream=bool, estimated=bool) for row in rows]


def _select_reasoning(db: sqlite3.Connection, limit: int) -> list[tuple[str, str]]:
    rows = db.execute(
        "SELECT key, reasoning FROM (SELECT key, reasoning, seq FROM reasoning ORDER BY seq DESC LIMIT ?) "
        "ORDER BY seq",
        (limit,),
    ).fetchall()
    return [(key, text) for key, text in rows]


def _load_history(text: str | bytes) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = orjson.loads(text)  # only put_response_history writes these
    return history
