"""Which upstream account to use, found in the iFlow CLI's files and re-read when they change.

``selectedAuthType`` decides (protocol §4.1, §5):

- ``iflow``: the ``sk-`` key in settings.json, unless a complete ``oauth_creds.json`` exists, whose
  key the CLI then prefers in this mode too;
- ``oauth-iflow``: the ``apiKey`` in ``oauth_creds.json`` (settings.json's copy as a fallback);
- ``api-key``: what the original iflow2api wrote; the key in settings.json (or ``searchApiKey``);
- ``openai-compatible``: any OpenAI-style ``baseUrl`` + ``apiKey`` + ``modelName``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from iflow2api.auth.iflow_files import OAUTH_AUTH_TYPE, OAUTH_CREDS_FILE, SETTINGS_FILE, read_json_object

log = logging.getLogger("iflow2api.credentials")

IFLOW_BASE_URL = "https://apis.iflow.cn/v1"
IFLOW_AUTH_TYPES = frozenset({"iflow", OAUTH_AUTH_TYPE, "api-key"})
OPENAI_COMPATIBLE = "openai-compatible"

UpstreamKind = Literal["iflow", "openai-compatible"]


@dataclass(frozen=True, slots=True)
class Account:
    kind: UpstreamKind
    #: ``selectedAuthType`` as the iFlow CLI spells it (``OAUTH_AUTH_TYPE`` after a login).
    auth_type: str
    base_url: str
    api_key: str
    model_name: str | None = None
    #: Who is logged in, when the OAuth files say (email, phone or user name).
    label: str | None = None
    #: When the OAuth access token expires, in seconds since the epoch.
    token_expires_at: float | None = None
    #: The provider profile it is spoken to with (``iflow2api.providers``); None: by its host.
    provider: str | None = None
    #: Identifies the account for per-account limits without holding the secret in plain sight.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.base_url}#{hash(self.api_key) & 0xFFFFFFFF:08x}")


def mask_secret(secret: str | None) -> str:
    """Enough of a secret to recognise it, never enough to use it.

    >>> mask_secret("sk-0123456789abcdef0123456789abcdef")
    'sk-0…cdef'
    """
    if not secret:
        return "(none)"
    if len(secret) <= 12:
        return secret[:2] + "…"
    return f"{secret[:4]}…{secret[-4:]}"


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _oauth_complete(creds: dict[str, Any] | None) -> bool:
    return bool(
        creds and creds.get("access_token") and creds.get("refresh_token") and creds.get("expiry_date")
    )


def account_from_files(
    settings: dict[str, Any] | None,
    oauth_creds: dict[str, Any] | None,
    *,
    base_url_override: str = "",
    provider: str = "",
) -> Account | None:
    """The account these file contents describe, or None when they hold no usable credentials.

    ``provider`` names the profile of an ``openai-compatible`` account (the ``upstream_provider``
    setting; empty: its host's). The iFlow CLI's files have no place for it, so it comes from here.
    """
    if not settings and not oauth_creds:
        return None
    settings = settings or {}
    auth_type = _text(settings.get("selectedAuthType")) or (OAUTH_AUTH_TYPE if oauth_creds else "iflow")
    settings_key = _text(settings.get("apiKey"))
    oauth_key = _text((oauth_creds or {}).get("apiKey"))
    label = None
    expires_at = None
    if oauth_creds:
        label = next(
            (_text(oauth_creds.get(f)) for f in ("email", "phone", "userName") if oauth_creds.get(f)), None
        )
        expiry_ms = oauth_creds.get("expiry_date")
        expires_at = expiry_ms / 1000 if isinstance(expiry_ms, int | float) else None

    if auth_type == OPENAI_COMPATIBLE:
        base_url = base_url_override or (_text(settings.get("baseUrl")) or "").rstrip("/")
        if not base_url or not settings_key:
            return None
        return Account(
            "openai-compatible",
            auth_type,
            base_url,
            settings_key,
            _text(settings.get("modelName")),
            provider=provider or None,
        )

    if auth_type not in IFLOW_AUTH_TYPES:
        return None  # problem() says why
    if auth_type == OAUTH_AUTH_TYPE:
        api_key = oauth_key or settings_key
    elif auth_type == "iflow":
        api_key = oauth_key if _oauth_complete(oauth_creds) and oauth_key else settings_key
    else:
        api_key = settings_key or _text(settings.get("searchApiKey"))
    if not api_key:
        return None
    base_url = base_url_override or (_text(settings.get("baseUrl")) or IFLOW_BASE_URL).rstrip("/")
    return Account("iflow", auth_type, base_url, api_key, _text(settings.get("modelName")), label, expires_at)


#: What an openai-compatible settings.json must hold besides its ``selectedAuthType``.
_NEEDED = {
    "baseUrl": "the upstream's base URL, e.g. https://api.deepseek.com/v1",
    "apiKey": "the upstream's API key",
}


def problem(settings: dict[str, Any] | None, *, base_url_override: str = "") -> str | None:
    """Why this settings.json gives no account although it says which kind it wants, naming the
    field; None when nothing is wrong with it. Never quotes a secret.

    >>> print(problem({"selectedAuthType": "openai-compatible", "baseUrl": "https://x/v1"}))
    settings.json: selectedAuthType is "openai-compatible" but apiKey is missing (the upstream's API key)
    """
    auth_type = _text((settings or {}).get("selectedAuthType"))
    if auth_type is None or settings is None:
        return None
    if auth_type == OPENAI_COMPATIBLE:
        values = {"baseUrl": base_url_override or settings.get("baseUrl"), "apiKey": settings.get("apiKey")}
        missing = [f"{name} is missing ({what})" for name, what in _NEEDED.items() if not _text(values[name])]
        if missing:
            return f'settings.json: selectedAuthType is "{OPENAI_COMPATIBLE}" but ' + " and ".join(missing)
        return None
    if auth_type not in IFLOW_AUTH_TYPES:
        known = ", ".join(sorted({*IFLOW_AUTH_TYPES, OPENAI_COMPATIBLE}))
        return f'settings.json: selectedAuthType "{auth_type}" is not one iflow2api can use ({known})'
    return None


def file_problem(iflow_home: Path, *, base_url_override: str = "") -> str | None:
    """What is wrong with the iFlow files in ``iflow_home``, as ``problem`` or a file that cannot be
    read (a JSON error with its line and column); None when nothing is."""
    try:
        settings = read_json_object(iflow_home / SETTINGS_FILE)
        read_json_object(iflow_home / OAUTH_CREDS_FILE)
    except (OSError, ValueError) as exc:
        return str(exc)
    return problem(settings, base_url_override=base_url_override)


#: How long a look at the files stays good. Under load this saves two stat calls per request;
#: a person editing settings.json never notices 50 ms.
RECHECK_SECONDS = 0.05


class CredentialSource:
    """The current account, re-read whenever either file changes on disk.

    Two stat calls, at most every ``RECHECK_SECONDS``, mean a login by the CLI (or by us) is picked
    up by the next request, with no restart and no watcher thread.
    """

    def __init__(self, iflow_home: Path, *, base_url_override: str = "", provider: str = "") -> None:
        self.iflow_home = iflow_home
        self._paths = (iflow_home / SETTINGS_FILE, iflow_home / OAUTH_CREDS_FILE)
        self._base_url_override = base_url_override
        self._provider = provider
        self._fingerprint: tuple[object, ...] | None = None
        self._account: Account | None = None
        self._checked_at = -RECHECK_SECONDS
        self._failed: tuple[object, ...] | None = None

    def _stat(self) -> tuple[object, ...]:
        marks: list[object] = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except OSError:
                marks.append(None)
            else:
                marks.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(marks)

    def invalidate(self) -> None:
        """Look at the files again on the next ``current()``, whatever the time."""
        self._checked_at = -RECHECK_SECONDS

    def current(self) -> Account | None:
        now = time.monotonic()
        if now - self._checked_at < RECHECK_SECONDS:
            return self._account
        self._checked_at = now
        fingerprint = self._stat()
        if fingerprint != self._fingerprint:
            try:
                settings, oauth_creds = (read_json_object(path) for path in self._paths)
            except (OSError, ValueError) as exc:
                # Most likely the CLI is writing the file right now: keep what worked, look again later.
                if fingerprint == self._failed:
                    return self._account  # said once already
                self._failed = fingerprint
                log.warning(
                    "cannot read the iFlow files in %s yet (%s); keeping the last good ones",
                    self.iflow_home,
                    exc,
                )
                return self._account
            self._account = account_from_files(
                settings, oauth_creds, base_url_override=self._base_url_override, provider=self._provider
            )
            wrong = problem(settings, base_url_override=self._base_url_override)
            if self._account is None and wrong:
                log.warning("%s; that account is not used", wrong)  # once per change of the files
            self._fingerprint = fingerprint
        return self._account
