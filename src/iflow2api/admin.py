"""Who may manage the gateway: the admin password and the page's sign-in sessions.

With client keys configured, the page and its management API need either an admin key or a
session opened with the admin password. The password is hashed with scrypt (it is chosen by a
person, so it must be slow to guess from a stolen database); sessions are random tokens held in
memory (a restart signs everyone out), sent back in an HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

ADMIN_PASSWORD_SETTING = "admin_password"
COOKIE = "iflow2api_session"
#: How long a page session lasts without use, in seconds.
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000
_N, _R, _P = 2**14, 8, 1


def new_password() -> str:
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    """
    >>> stored = hash_password("correct horse")
    >>> verify_password("correct horse", stored), verify_password("wrong", stored)
    (True, False)
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=_N, r=_R, p=_P, dklen=32)
        # As bytes: compare_digest raises on a str with non-ASCII characters (an edited hash).
        return hmac.compare_digest(digest.hex().encode(), expected.encode())
    except ValueError:
        return False


class Sessions:
    """Open page sessions, each tied to what opened it (``key:<id>`` or ``password:<hash>``), so that
    revoking that key or changing the password ends them too."""

    def __init__(self) -> None:
        # Keyed by the token's hash, so even a memory dump holds no usable cookie.
        self._expiry: dict[str, float] = {}
        self._credential: dict[str, str] = {}

    def open(self, credential: str = "") -> str:
        now = time.monotonic()
        self._expiry = {k: v for k, v in self._expiry.items() if v > now}
        self._credential = {k: v for k, v in self._credential.items() if k in self._expiry}
        while len(self._expiry) >= MAX_SESSIONS:
            oldest = next(iter(self._expiry))
            del self._expiry[oldest]
            self._credential.pop(oldest, None)
        token = secrets.token_urlsafe(32)
        self._expiry[_digest(token)] = now + SESSION_SECONDS
        self._credential[_digest(token)] = credential
        return token

    def valid(self, token: str | None, still_valid: Callable[[str], bool] | None = None) -> bool:
        if not token:
            return False
        key = _digest(token)
        expiry = self._expiry.get(key)
        now = time.monotonic()
        credential = self._credential.get(key, "")
        if expiry is None or expiry <= now or (still_valid is not None and not still_valid(credential)):
            self.close(token)
            return False
        self._expiry[key] = now + SESSION_SECONDS
        return True

    def close(self, token: str | None) -> None:
        if token:
            self._expiry.pop(_digest(token), None)
            self._credential.pop(_digest(token), None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_value(cookie_header: bytes | None) -> str | None:
    """The session token in a ``Cookie`` header.

    >>> cookie_value(b"a=1; iflow2api_session=abc; b=2")
    'abc'
    """
    if not cookie_header:
        return None
    for part in cookie_header.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None
