"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI's list shape (``services.model_listing``)."""

from __future__ import annotations

from iflow2api.asgi import Send, send_json
from iflow2api.dialects.checks import shown
from iflow2api.errors import ModelNotFound
from iflow2api.services.model_listing import ModelListing
from iflow2api.upstream.models import describe


class ModelsRoute:
    def __init__(self, listing: ModelListing) -> None:
        self._listing = listing

    async def list(self, send: Send) -> None:
        await send_json(send, 200, {"object": "list", "data": await self._listing.available()})

    async def retrieve(self, model_id: str, send: Send) -> None:
        objects = await self._listing.available()
        for entry in objects:
            if entry["id"] == model_id:
                await send_json(send, 200, entry)
                return
        ids = tuple(entry["id"] for entry in objects)
        raise ModelNotFound(
            f"The model {shown(model_id)} does not exist. Available: {describe(ids)}.", param="model"
        )
