"""Whether the gateway is *serving*: the one word for "ready" that ``/health``, the page, ``iflow2api
status`` and the startup line all use, and the one line that says what to do when it is not.

"Serving" means an enabled account can take a request now, whatever its provider; the iFlow login
is only one possible account (iFlow itself shut down on 2026-04-17), so "logged in" no longer
stands for "ready".

>>> ready = serving([("deepseek", "ok"), ("moonshot", "ok"), ("deepseek", "cooling")])
>>> ready.summary()
'serving — 2 accounts: deepseek, moonshot'
>>> serving([]).summary()
'not serving — no provider connected yet'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from iflow2api.pool.directory import provider_choice
from iflow2api.pool.members import Member

#: The shown states (``pool.members.shown_state``) of an account that takes a request now. A cooling
#: one waits for its rest to end, so a gateway whose accounts all cool does not serve meanwhile.
SERVING_STATES = frozenset({"ok"})
#: The provider the one-line advice names: the first preset of the README, a key is all it needs.
EXAMPLE_PROVIDER = "deepseek"


@dataclass(frozen=True, slots=True)
class Serving:
    #: Accounts that can take a request now.
    accounts: int
    #: Their provider profiles, each once, sorted.
    providers: tuple[str, ...]
    #: Every account of the pool, serving or not.
    connected: int

    @property
    def serving(self) -> bool:
        return self.accounts > 0

    def summary(self) -> str:
        """One line: "serving — 1 account: deepseek", or why not."""
        if self.serving:
            noun = "account" if self.accounts == 1 else "accounts"
            return f"serving — {self.accounts} {noun}: {', '.join(self.providers)}"
        if self.connected:
            noun = "account" if self.connected == 1 else "accounts"
            return f"not serving — none of its {self.connected} {noun} can serve now"
        return "not serving — no provider connected yet"


def serving(accounts: Iterable[tuple[str, str]]) -> Serving:
    """``accounts``: each account's provider profile and shown state."""
    listed = list(accounts)
    able = [provider for provider, state in listed if state in SERVING_STATES]
    return Serving(len(able), tuple(sorted(set(able))), len(listed))


def named_states(members: Iterable[Member]) -> list[tuple[str, str]]:
    """Each member's provider profile and shown state, as ``serving`` takes them."""
    return [(provider_choice(member.account).name, member.shown_state()) for member in members]


def next_step(page: str | None = None) -> str:
    """What to do when nothing serves, in one line: the command first, then the page, iFlow last.

    >>> next_step("http://127.0.0.1:8000/")  # doctest: +ELLIPSIS
    'no provider connected yet: iflow2api accounts add --provider deepseek --label deepseek --key - ...'
    """
    where = f", or open {page} and pick one under Connect a provider" if page else ""
    return (
        f"no provider connected yet: iflow2api accounts add --provider {EXAMPLE_PROVIDER} "
        f"--label {EXAMPLE_PROVIDER} --key - "
        f"(any profile of `iflow2api accounts add --help`){where}; "
        "`iflow2api login` is only for iFlow, which shut down on 2026-04-17"
    )
