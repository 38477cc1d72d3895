"""The models a client may ask for: every one some enabled account serves, then the aliases.

Each model says what its host documents of it, in the fields OpenRouter and others add to OpenAI's
model object: ``context_length`` and ``max_output_tokens`` (iFlow's from its catalogue, the others'
from their account's profile, ``Profile.models``), so a client can size its prompts.

Aliases are listed by exact name only: a pattern such as ``claude-*`` names no model a client
could pick from a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iflow2api import catalogue
from iflow2api.providers import Profiles
from iflow2api.providers.base import ModelInfo
from iflow2api.services.membership import Membership
from iflow2api.upstream.models import ModelDirectory


def is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def model_info(models: Mapping[str, ModelInfo], model_id: str) -> ModelInfo | None:
    """What a profile's table knows of ``model_id``: by its exact id, else ignoring case (hosts
    spell ids as they like: ``MiniMax-M2.5``, ``minimax-m2.5``).

    >>> model_info({"MiniMax-M2.5": ModelInfo(204_800)}, "minimax-m2.5")
    ModelInfo(context_window=204800, max_output=None)
    """
    info = models.get(model_id)
    if info is not None:
        return info
    lowered = model_id.lower()
    return next((info for name, info in models.items() if name.lower() == lowered), None)


def with_limits(entry: dict[str, Any], info: ModelInfo | None) -> dict[str, Any]:
    """``entry`` with the limits ``info`` knows, where it has none of its own yet."""
    if info is not None:
        if info.context_window:
            entry.setdefault("context_length", info.context_window)
        if info.max_output:
            entry.setdefault("max_output_tokens", info.max_output)
    return entry


class ModelListing:
    def __init__(
        self,
        membership: Membership,
        models: ModelDirectory,
        aliases: tuple[tuple[str, str], ...],
        profiles: Profiles,
    ) -> None:
        self._membership = membership
        self._models = models
        self._aliases = aliases
        self._profiles = profiles

    async def available(self) -> list[dict[str, Any]]:
        """Every model the enabled accounts serve (first owner wins), then the aliases."""
        members = self._membership.enabled()
        if not members:
            raise self._membership.no_accounts()
        owners: dict[str, tuple[str, Mapping[str, ModelInfo]]] = {}
        for member in members:
            if member.models:
                ids: tuple[str, ...] = member.models
            else:
                ids = (await self._models.models(member.account)).ids
            owner = "iflow" if member.account.kind == "iflow" else "upstream"
            known = self._profiles.for_account(member.account).models
            for model_id in ids:
                owners.setdefault(model_id, (owner, known))
        objects = [
            with_limits(catalogue.model_object(model_id, owner), model_info(known, model_id))
            for model_id, (owner, known) in owners.items()
        ]
        for alias, target in self._aliases:
            if not is_pattern(alias) and alias not in owners:
                entry = catalogue.model_object(alias, "alias")
                entry["alias_for"] = target
                objects.append(entry)
        return objects
