"""Logging in with iFlow, the same way from the web page and from ``iflow2api login``.

A login starts with an authorize URL carrying a fresh ``state``, and ends with the code the iFlow
page hands back: it is exchanged for tokens, the tokens for the ``sk-`` API key, and all of it is
written to the iFlow CLI's own files, so the CLI and every running gateway pick it up.

Two ways back from the consent page (protocol §4.3, §4.4): a redirect to our own
``/oauth2callback``, or, when the browser cannot reach us, iFlow's code-display page, whose code
the user pastes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from iflow2api.auth import iflow_files, oauth
from iflow2api.auth.credentials import IFLOW_BASE_URL
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.errors import StateMismatch

#: How long a started login may wait for its code.
PENDING_SECONDS = 15 * 60
#: Logins started but not finished, at most (the oldest is forgotten first).
MAX_PENDING = 32


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    redirect_uri: str
    url: str
    started_at: float


SaveLogin = Callable[[oauth.Tokens, oauth.UserInfo], Awaitable[object]]


class LoginFlow:
    """``save`` decides where a finished login goes; by default, the iFlow CLI's files."""

    def __init__(self, iflow_home: Path, client: OAuthClient, save: SaveLogin | None = None) -> None:
        self.iflow_home = iflow_home
        self.client = client
        self._save = save or self._save_to_files
        self._pending: dict[str, PendingLogin] = {}

    async def _save_to_files(self, tokens: oauth.Tokens, user: oauth.UserInfo) -> object:
        # fsync and a file lock: off the event loop.
        await asyncio.to_thread(
            iflow_files.save_oauth_login, self.iflow_home, tokens, user, base_url=IFLOW_BASE_URL
        )
        return None

    def start(self, redirect_uri: str | None = None) -> PendingLogin:
        """Begin a login; ``redirect_uri=None`` means the paste-the-code flow."""
        now = time.time()
        for state, pending in list(self._pending.items()):
            if now - pending.started_at > PENDING_SECONDS:
                del self._pending[state]
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        redirect = redirect_uri or oauth.code_display_uri(self.client.base_url)
        state = oauth.new_state()
        pending = PendingLogin(
            state, redirect, oauth.authorize_url(self.client.base_url, redirect, state), now
        )
        self._pending[state] = pending
        return pending

    async def finish(self, code: str, state: str | None) -> oauth.UserInfo:
        """Complete a login started here. ``state=None`` is allowed only for a pasted bare code."""
        pending = self._claim(state)
        tokens, user = await self.client.login(code, pending.redirect_uri)
        await self._save(tokens, user)
        return user

    async def finish_pasted(self, text: str, state: str | None) -> oauth.UserInfo:
        """What the user pasted: the code alone, or the whole address the consent page went to."""
        code = oauth.parse_pasted(text, state)
        return await self.finish(code, state)

    def cancel(self, state: str) -> bool:
        """Forget a login iFlow reported as not completed; False if it was not ours."""
        return self._pending.pop(state, None) is not None

    def _claim(self, state: str | None) -> PendingLogin:
        if state is None:
            # A bare pasted code carries no state: it can only belong to the latest code-display login.
            displays = [p for p in self._pending.values() if p.redirect_uri.endswith("/oauth/code-display")]
            if not displays:
                raise StateMismatch()
            pending = displays[-1]
            del self._pending[pending.state]
            return pending
        found: PendingLogin | None = self._pending.pop(state, None)
        if found is None or time.time() - found.started_at > PENDING_SECONDS:
            raise StateMismatch()
        return found
