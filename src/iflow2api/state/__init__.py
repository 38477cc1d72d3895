"""What the gateway keeps between requests and restarts: the records, the store interface, SQLite
and PostgreSQL.

``open_store(data_dir)`` is the usual way in (``database_url=...`` for PostgreSQL)::

    store = open_store(settings.data_dir)
    await store.open()          # optional: report a bad file now rather than at the first call
    accounts = await store.accounts()
    ...
    await store.close()
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from iflow2api.instances import instance_name
from iflow2api.state.bounds import MAX_RESPONSE_HISTORY_BYTES
from iflow2api.state.records import (
    AccountHealth,
    AccountKind,
    AccountRecord,
    ClientKeyRecord,
    HealthState,
    UsageRow,
)
from iflow2api.state.sqlite import SQLiteStore
from iflow2api.state.sqlite_file import StateFileError
from iflow2api.state.store import StateStore

__all__ = [
    "STATE_FILE",
    "AccountHealth",
    "AccountKind",
    "AccountRecord",
    "ClientKeyRecord",
    "HealthState",
    "SQLiteStore",
    "StateFileError",
    "StateStore",
    "UsageRow",
    "open_store",
]

#: The database's name inside the data folder.
STATE_FILE = "state.sqlite3"


def open_store(
    data_dir: Path,
    *,
    max_response_history_bytes: int = MAX_RESPONSE_HISTORY_BYTES,
    database_url: str = "",
    instance: str | None = None,
    coordinated: bool = False,
) -> StateStore:
    """The store in ``data_dir`` (made, 0700, if missing), or in ``database_url`` if one is given.

    Only the folder is made here: the file is opened, and created if new, by the first call on the
    store (or ``await store.open()``), on the store's own thread. A file that is not a usable
    database raises ``StateFileError`` there, naming it.

    With a ``database_url`` (``postgresql://...``) the store is ``PostgresStore``, imported only
    then, so one process without the ``cluster`` extra works as before. A serving gateway passes
    ``instance`` (its name; empty: ``instances.instance_name``'s default) and ``coordinated`` (it has a
    ``redis_url``): without Redis it refuses to open while another instance uses the database.
    The CLI passes neither: it is a short visit, not an instance.
    """
    if database_url:
        from iflow2api.state.postgres import PostgresStore
        from iflow2api.state.postgres_schema import Instance

        me = None
        if instance is not None:
            host, pid = socket.gethostname(), os.getpid()
            me = Instance(name=instance_name(instance, pid=pid), host=host, pid=pid, coordinated=coordinated)
        return PostgresStore(database_url, instance=me, max_response_history_bytes=max_response_history_bytes)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return SQLiteStore(data_dir / STATE_FILE, max_response_history_bytes=max_response_history_bytes)
