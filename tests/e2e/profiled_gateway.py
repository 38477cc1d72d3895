"""``iflow2api`` with one provider profile more, ``cachehost``, made only for the tests.

The profiles on main know no host that counts cache hits its own way, documents its models'
limits or says its balance is spent; this one does all three, so the gateway's handling of each
can be tested before (and apart from) the real providers' modules. Run it as
``python -m tests.e2e.profiled_gateway serve ...``: the profile is registered, then the real
command runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from iflow2api import providers
from iflow2api.errors import GatewayError, OutOfCredit
from iflow2api.providers.base import ModelInfo, Profile

#: The model the profile documents, and its limits.
KNOWN_MODEL = "cache-model"
KNOWN = ModelInfo(context_window=131_072, max_output=8_192)
OUT_OF_CREDIT = "Insufficient Balance: top up to go on."


class CacheHost(Profile):
    """Reports cache hits as ``usage.prompt_cache_hit_tokens`` (DeepSeek's word) and a spent
    balance as HTTP 402."""

    name: ClassVar[str] = "cachehost"
    title: ClassVar[str] = "A host of the tests"
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType({KNOWN_MODEL: KNOWN})

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        hits = usage.get("prompt_cache_hit_tokens")
        if not isinstance(hits, int):
            return usage
        return {**usage, "prompt_tokens_details": {"cached_tokens": hits}}

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        if status == 402:
            return OutOfCredit(OUT_OF_CREDIT)
        return super().http_error(status, body, trace_id, retry_after)


def main() -> None:
    providers.PROFILES = MappingProxyType({**providers.PROFILES, CacheHost.name: CacheHost})
    from iflow2api.cli import main as command

    command()


if __name__ == "__main__":
    main()
