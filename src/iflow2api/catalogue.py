"""The models iFlow serves, as the iFlow CLI 0.5.19 knew them (protocol §6).

Pure data and the CLI's lookup of a model's default output limit::

    >>> find("glm-4.7").context_window
    200000
    >>> default_max_output("deepseek-v3.2-reasoner")
    64000
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    label: str
    context_window: int | None
    #: The CLI's default ``max_new_tokens`` for this id (§6); equals ``default_max_output(id)``.
    max_output: int | None
    #: Whether the CLI sends thinking fields for it (it has a §3.3 rule that supports thinking).
    thinking: bool
    #: Whether the CLI sends it images directly instead of describing them first (§3.1, §6).
    multimodal: bool
    #: Sent upstream by the CLI only on its own (helpers, renames), so not listed to clients.
    hidden: bool = False


# Context windows come from the CLI's ``JR`` table and output limits from ``MOt`` (CLI:_ln L954-1045),
# so the ids that §6's table does not list still carry the values the CLI would have used for them.
IFLOW_MODELS: tuple[ModelInfo, ...] = (
    # The CLI's picker, in its order (CLI:_ln L3158-3168).
    ModelInfo("glm-4.7", "GLM-4.7", 200_000, 32_000, thinking=True, multimodal=False),
    ModelInfo("iFlow-ROME-30BA3B", "iFlow-ROME-30BA3B", 256_000, 64_000, thinking=False, multimodal=False),
    ModelInfo("deepseek-v3.2-chat", "DeepSeek-V3.2", 128_000, 8_192, thinking=True, multimodal=False),
    ModelInfo("glm-5", "GLM-5", 170_000, 32_000, thinking=True, multimodal=False),
    ModelInfo("qwen3-coder-plus", "Qwen3-Coder-Plus", 256_000, 64_000, thinking=False, multimodal=False),
    ModelInfo("kimi-k2-thinking", "Kimi-K2-Thinking", 256_000, 32_000, thinking=True, multimodal=False),
    ModelInfo("minimax-m2.5", "MiniMax-M2.5", 128_000, 64_000, thinking=False, multimodal=False),
    ModelInfo("kimi-k2.5", "Kimi-K2.5", 262_144, 32_768, thinking=True, multimodal=True),
    ModelInfo("kimi-k2-0905", "Kimi-K2-0905", 256_000, 32_000, thinking=False, multimodal=False),
    # Served by the original iflow2api (i2a 1.6.10's list) or registered by CLIProxyAPI (§6).
    ModelInfo("minimax-m2.1", "MiniMax-M2.1", 128_000, 64_000, thinking=False, multimodal=False),
    ModelInfo("glm-4.6", "GLM-4.6", 200_000, 32_000, thinking=True, multimodal=False),
    ModelInfo("kimi-k2", "Kimi-K2", 128_000, 32_000, thinking=False, multimodal=False),
    ModelInfo("qwen3-max", "Qwen3-Max", 128_000, 8_192, thinking=False, multimodal=False),
    ModelInfo(
        "deepseek-v3.2-reasoner", "DeepSeek-V3.2-Reasoner", 128_000, 64_000, thinking=True, multimodal=False
    ),
    ModelInfo("qwen-vl-max", "Qwen-VL-Max", 1_228_000, 8_192, thinking=False, multimodal=True),
    # What the CLI sends on its own: the glm-4.6 rename (§3.2), and its helper models (§6).
    ModelInfo("glm-4.6-exp", "GLM-4.6", 200_000, 32_000, thinking=True, multimodal=False, hidden=True),
    ModelInfo("qwen3-vl-plus", "Qwen3-VL-Plus", 128_000, 8_192, thinking=False, multimodal=True, hidden=True),
    ModelInfo("QWen3-4B", "Qwen3-4B", 128_000, 8_192, thinking=False, multimodal=False, hidden=True),
)

#: ``MOt``'s answer for a model no family matches (CLI:_ln L954-1045: ``8e3``). The protocol doc gives
#: no generic default, so this comes from the CLI source, not from the commonly assumed 8192.
FALLBACK_MAX_OUTPUT = 8_000

# ``MOt``'s families (CLI:_ln L954-1045): the first pattern that matches the lowercased id wins, then
# the first of its substrings the id contains (in the CLI's key order), else the family's default.
# The CLI's exact-id table before these lists only Gemini models, which iFlow never served.
_OUTPUT_FAMILIES: tuple[tuple[re.Pattern[str], tuple[tuple[str, int], ...], int], ...] = (
    (
        re.compile("kimi", re.IGNORECASE),
        (("k2.5", 32_768), ("k2-0905", 32_000), ("k2-thinking", 32_000), ("ide-modelscope", 8_192)),
        32_000,
    ),
    (re.compile("iFlow-ROME-30BA3B", re.IGNORECASE), (), 64_000),
    (re.compile("minimax", re.IGNORECASE), (), 64_000),
    (re.compile("glm", re.IGNORECASE), (("-5", 32_000), ("4.7", 32_000), ("ide-modelscope", 16_384)), 32_000),
    (re.compile("claude|haiku|sonnet|opus", re.IGNORECASE), (), 64_000),
    (
        re.compile("deepseek", re.IGNORECASE),
        (("v3.2-reasoner", 64_000), ("v3", 8_192), ("r1", 32_000)),
        8_000,
    ),
    (re.compile("qwen3", re.IGNORECASE), (("coder", 64_000), ("max-preview", 32_000)), 8_192),
    (re.compile("qwen", re.IGNORECASE), (("max", 8_192), ("plus", 8_192)), 8_000),
    (re.compile("gpt", re.IGNORECASE), (("32k", 4_096),), 16_384),
    (re.compile("mimo", re.IGNORECASE), (), 64_000),
)


@functools.lru_cache(maxsize=512)  # a handful of model ids, asked on every request
def default_max_output(model: str) -> int:
    """The ``max_new_tokens`` the CLI sends for ``model`` when no output limit is configured (§3.1)."""
    lowered = model.lower()
    for pattern, limits, default in _OUTPUT_FAMILIES:
        if pattern.search(lowered):
            for fragment, limit in limits:
                if fragment in lowered:
                    return limit
            return default
    return FALLBACK_MAX_OUTPUT


def find(model_id: str) -> ModelInfo | None:
    """The catalogue entry for exactly this id (ids are sent upstream as written, §9.8)."""
    return _BY_ID.get(model_id)


_BY_ID = {model.id: model for model in IFLOW_MODELS}


# OpenAI's model objects carry a creation time; ours is the day the catalogue was last checked.
_CATALOGUE_DATE = 1_775_000_000


def model_object(model_id: str, owner: str) -> dict[str, Any]:
    """A model as OpenAI's ``/v1/models`` shows one, with what the catalogue knows of it::

    >>> model_object("glm-4.7", "iflow")["context_length"]
    200000
    """
    entry: dict[str, Any] = {"id": model_id, "object": "model", "created": _CATALOGUE_DATE, "owned_by": owner}
    info = find(model_id) if owner == "iflow" else None
    if info is not None:
        entry["name"] = info.label
        if info.context_window:
            entry["context_length"] = info.context_window
        if info.max_output:
            entry["max_output_tokens"] = info.max_output
    return entry
