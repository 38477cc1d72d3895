"""The one interface behind which the gateway keeps its state.

The routing code, the CLI and the page only ever talk to a ``StateStore``; SQLite
(``state.sqlite.SQLiteStore``) is the embedded default, PostgreSQL (``state.postgres.PostgresStore``)
the store shared by several gateway instances, with no change to the callers.

Every method is async because a shared store is a network away. The request path never waits on
the store: the pool and the key ring keep in-memory views, reload them when ``generation()``
changes, and write back off the request path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from iflow2api.state.records import AccountHealth, AccountRecord, ClientKeyRecord, UsageRow


class StateStore(Protocol):
    async def open(self) -> None:
        """Connect now (optional: the first call connects too), so a bad store shows at startup."""
        ...

    # -- change detection (accounts, keys, settings; not health, usage or memories) -----------------
    async def generation(self) -> int:
        """A number that changes whenever accounts, keys or settings change, from any process."""
        ...

    # -- accounts -----------------------------------------------------------------------------------
    async def accounts(self) -> list[AccountRecord]: ...

    async def put_account(self, account: AccountRecord) -> None:
        """Insert or replace by id."""
        ...

    async def put_login(self, account: AccountRecord, *, previous_refresh_token: str) -> bool:
        """Replace the account only if its stored login still has ``previous_refresh_token`` (a
        refresh's check-and-write, in one transaction); False, and nothing written, otherwise."""
        ...

    async def delete_account(self, account_id: str) -> bool: ...

    # -- account health (cooldowns, quarantine) -----------------------------------------------------
    async def health(self) -> dict[str, AccountHealth]: ...

    async def put_health(self, account_id: str, health: AccountHealth) -> None: ...

    # -- client keys --------------------------------------------------------------------------------
    async def client_keys(self) -> list[ClientKeyRecord]: ...

    async def put_client_key(self, key: ClientKeyRecord) -> None: ...

    async def delete_client_key(self, key_id: str) -> bool: ...

    # -- small settings (the admin password's hash, ...) --------------------------------------------
    async def get_setting(self, name: str) -> str | None: ...

    async def put_setting(self, name: str, value: str | None) -> None:
        """``None`` removes it."""
        ...

    # -- usage --------------------------------------------------------------------------------------
    async def add_usage(self, rows: Sequence[UsageRow]) -> None: ...

    async def usage(self, since: float, until: float | None = None) -> list[UsageRow]:
        """Rows with ``since <= at < until``, oldest first."""
        ...

    async def prune_usage(self, before: float) -> int:
        """Delete rows older than ``before``; how many went."""
        ...

    # -- session affinity ---------------------------------------------------------------------------
    async def affinities(self, since: float) -> dict[str, str]:
        """Session key → account id, for sessions seen since ``since``."""
        ...

    async def put_affinity(self, session: str, account_id: str, at: float) -> None: ...

    # -- memories: stored reasoning and previous_response_id histories -------------------------------
    async def reasoning(self, limit: int) -> list[tuple[str, str]]:
        """The ``limit`` most recent (key, reasoning) pairs, oldest first."""
        ...

    async def put_reasoning(self, items: Sequence[tuple[str, str]]) -> None: ...

    async def response_history(self, response_id: str) -> list[dict[str, Any]] | None: ...

    async def put_response_history(self, response_id: str, history: bytes) -> None:
        """Keep a response's chat history, given as JSON (its size is what the bounds count)."""

    async def close(self) -> None: ...
