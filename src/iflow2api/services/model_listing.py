"""The models a client may ask for: every one some enabled account serves, then the aliases.

Aliases are listed by exact name only: a pattern such as ``claude-*`` names no model a client
could pick from a list.
"""

from __future__ import annotations

from typing import Any

from iflow2api import catalogue
from iflow2api.services.membership import Membership
from iflow2api.upstream.models import ModelDirectory


def is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


class ModelListing:
    def __init__(
        self, membership: Membership, models: ModelDirectory, aliases: tuple[tuple[str, str], ...]
    ) -> None:
        self._membership = membership
        self._models = models
        self._aliases = aliases

    async def available(self) -> list[dict[str, Any]]:
        """Every model the enabled accounts serve (first owner wins), then the aliases."""
        members = self._membership.enabled()
        if not members:
            raise self._membership.no_accounts()
        owners: dict[str, str] = {}
        for member in members:
            if member.models:
                ids: tuple[str, ...] = member.models
            else:
                ids = (await self._models.models(member.account)).ids
            owner = "iflow" if member.account.kind == "iflow" else "upstream"
            for model_id in ids:
                owners.setdefault(model_id, owner)
        objects = [catalogue.model_object(model_id, owner) for model_id, owner in owners.items()]
        for alias, target in self._aliases:
            if not is_pattern(alias) and alias not in owners:
                entry = catalogue.model_object(alias, "alias")
                entry["alias_for"] = target
                objects.append(entry)
        return objects
