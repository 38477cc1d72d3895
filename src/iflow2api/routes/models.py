"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI's list shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iflow2api import catalogue
from iflow2api.asgi import Send, send_json
from iflow2api.errors import ModelNotFound
from iflow2api.upstream.models import describe

if TYPE_CHECKING:
    from iflow2api.app import Gateway

# OpenAI's model objects carry a creation time; ours is the day the catalogue was last checked.
_CATALOGUE_DATE = 1_775_000_000


def model_object(model_id: str, owner: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model_id, "object": "model", "created": _CATALOGUE_DATE, "owned_by": owner}
    info = catalogue.find(model_id) if owner == "iflow" else None
    if info is not None:
        entry["name"] = info.label
        if info.context_window:
            entry["context_length"] = info.context_window
        if info.max_output:
            entry["max_output_tokens"] = info.max_output
    return entry


async def list_models(gateway: Gateway, send: Send) -> None:
    account = gateway.account()
    listing = await gateway.models.models(account)
    owner = "iflow" if account.kind == "iflow" else "upstream"
    await send_json(send, 200, {"object": "list", "data": [model_object(i, owner) for i in listing.ids]})


async def retrieve_model(gateway: Gateway, model_id: str, send: Send) -> None:
    account = gateway.account()
    listing = await gateway.models.models(account)
    if model_id not in listing.ids:
        raise ModelNotFound(
            f"The model '{model_id}' does not exist. Available: {describe(listing.ids)}.", param="model"
        )
    await send_json(send, 200, model_object(model_id, "iflow" if account.kind == "iflow" else "upstream"))
