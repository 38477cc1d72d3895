"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI's list shape.

The list is every model some enabled account serves, plus the configured aliases (exact names
only: a pattern such as ``claude-*`` names no model a client could pick from a list).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iflow2api import catalogue
from iflow2api.asgi import Send, send_json
from iflow2api.dialects.checks import shown
from iflow2api.errors import ModelNotFound
from iflow2api.upstream.models import describe

if TYPE_CHECKING:
    from iflow2api.app import Gateway


def is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


async def available(gateway: Gateway) -> list[dict[str, Any]]:
    """Every model the enabled accounts serve (first owner wins), then the aliases."""
    gateway.accounts.sync_cli()
    members = [m for m in gateway.pool.members() if m.enabled]
    if not members:
        raise gateway.no_accounts()
    owners: dict[str, str] = {}
    for member in members:
        if member.models:
            ids: tuple[str, ...] = member.models
        else:
            ids = (await gateway.models.models(member.account)).ids
        owner = "iflow" if member.account.kind == "iflow" else "upstream"
        for model_id in ids:
            owners.setdefault(model_id, owner)
    objects = [catalogue.model_object(model_id, owner) for model_id, owner in owners.items()]
    for alias, target in gateway.settings.model_aliases:
        if not is_pattern(alias) and alias not in owners:
            entry = catalogue.model_object(alias, "alias")
            entry["alias_for"] = target
            objects.append(entry)
    return objects


async def list_models(gateway: Gateway, send: Send) -> None:
    await send_json(send, 200, {"object": "list", "data": await available(gateway)})


async def retrieve_model(gateway: Gateway, model_id: str, send: Send) -> None:
    objects = await available(gateway)
    for entry in objects:
        if entry["id"] == model_id:
            await send_json(send, 200, entry)
            return
    ids = tuple(entry["id"] for entry in objects)
    raise ModelNotFound(
        f"The model {shown(model_id)} does not exist. Available: {describe(ids)}.", param="model"
    )
