"""The pool's accounts as the routes and the dispatch service see them.

Current on every look (the iFlow CLI's files are followed, cheaply), and with the one error that
says how to add an account when there is none.
"""

from __future__ import annotations

from iflow2api.errors import GatewayError, NotLoggedIn
from iflow2api.pool.book import AccountBook
from iflow2api.pool.members import Member
from iflow2api.pool.router import Pool


class Membership:
    def __init__(self, accounts: AccountBook, pool: Pool, *, not_logged_in: str) -> None:
        self._accounts = accounts
        self._pool = pool
        self._not_logged_in = not_logged_in

    def members(self) -> list[Member]:
        """Every account of the pool, the CLI's login as it is on disk now."""
        self._accounts.sync_cli()
        return self._pool.members()

    def enabled(self) -> list[Member]:
        return [member for member in self.members() if member.enabled]

    def no_accounts(self) -> GatewayError:
        """The error for a request no account could ever serve: how to add one."""
        return NotLoggedIn(self._not_logged_in)
