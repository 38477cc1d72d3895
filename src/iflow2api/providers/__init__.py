"""Provider profiles: one module per upstream host family, each a pure description (``base.Profile``).

A module here that defines ``PROFILE`` (a ``Profile`` subclass) is a provider: nothing else needs to
know of it. ``profile_class`` finds an account's profile by the name it was given, else by the
host of its base URL, else ``generic``; ``Profiles`` keeps one instance of each for the gateway.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol
from urllib.parse import urlsplit

from iflow2api.providers.base import Profile


def _discover() -> Mapping[str, type[Profile]]:
    found: dict[str, type[Profile]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        profile = getattr(module, "PROFILE", None)
        if isinstance(profile, type) and issubclass(profile, Profile):
            found[profile.name] = profile
    return MappingProxyType(found)


#: Every profile by name.
PROFILES: Mapping[str, type[Profile]] = _discover()
GENERIC = "generic"
IFLOW = "iflow"


def names() -> list[str]:
    """The profiles' names, the living providers first (alphabetical), then generic and iflow."""
    last = (GENERIC, IFLOW)
    return [name for name in sorted(PROFILES) if name not in last] + [n for n in last if n in PROFILES]


def for_host(base_url: str) -> str:
    """The provider a base URL's host belongs to, or ``generic``.

    >>> for_host("https://api.deepseek.com/v1") if "deepseek" in PROFILES else "deepseek"
    'deepseek'
    >>> for_host("http://127.0.0.1:8001/v1")
    'generic'
    """
    host = (urlsplit(base_url).hostname or "").lower()
    for name, profile in PROFILES.items():
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in profile.hosts):
            return name
    return GENERIC


def check_name(name: str) -> str:
    """``name`` if it is a profile's, else ``ValueError`` listing them."""
    if name not in PROFILES:
        raise ValueError(f"unknown provider {name!r}; one of: {', '.join(names())}")
    return name


class Account(Protocol):
    """What choosing a profile needs of an account (``auth.credentials.Account`` is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def provider(self) -> str | None: ...


def provider_of(account: Account) -> str:
    """The profile an account is spoken to with: an iFlow account's is ``iflow``; any other's
    is the one it names, else its host's."""
    if account.kind == "iflow":
        return IFLOW
    if account.provider:
        return account.provider
    return for_host(account.base_url)


class Profiles:
    """One instance of each profile, made with the gateway's settings."""

    def __init__(
        self, *, thinking_default: bool | None, options: Iterable[tuple[str, str, str]] = ()
    ) -> None:
        """``options``: the ``provider_options`` setting, (profile, option, value) triples.

        Raises ``ValueError`` for an unknown profile or option, or a value of the wrong type.
        """
        given: dict[str, dict[str, object]] = {}
        for name, option, value in options:
            given.setdefault(check_name(name), {})[option] = value
        self._instances = {
            name: cls(thinking_default=thinking_default, options=given.get(name))
            for name, cls in PROFILES.items()
        }

    def for_account(self, account: Account) -> Profile:
        return self._instances.get(provider_of(account)) or self._instances[GENERIC]
