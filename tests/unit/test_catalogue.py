"""§6: the model catalogue and the CLI's default output limits."""

from __future__ import annotations

import pytest

from iflow2api import catalogue
from iflow2api.catalogue import ModelInfo
from iflow2api.providers.iflow import thinking as iflow_thinking

# §6's table, in the CLI's picker order: id, label, context window, default max output, thinking, images.
CLI_PICKER = [
    ("glm-4.7", "GLM-4.7", 200_000, 32_000, True, False),
    ("iFlow-ROME-30BA3B", "iFlow-ROME-30BA3B", 256_000, 64_000, False, False),
    ("deepseek-v3.2-chat", "DeepSeek-V3.2", 128_000, 8_192, True, False),
    ("glm-5", "GLM-5", 170_000, 32_000, True, False),
    ("qwen3-coder-plus", "Qwen3-Coder-Plus", 256_000, 64_000, False, False),
    ("kimi-k2-thinking", "Kimi-K2-Thinking", 256_000, 32_000, True, False),
    ("minimax-m2.5", "MiniMax-M2.5", 128_000, 64_000, False, False),
    ("kimi-k2.5", "Kimi-K2.5", 262_144, 32_768, True, True),
    ("kimi-k2-0905", "Kimi-K2-0905", 256_000, 32_000, False, False),
]


def visible() -> list[str]:
    return [model.id for model in catalogue.IFLOW_MODELS if not model.hidden]


def test_the_cli_picker_comes_first_in_its_order() -> None:
    assert visible()[: len(CLI_PICKER)] == [row[0] for row in CLI_PICKER]


@pytest.mark.parametrize(("model_id", "label", "context", "max_output", "thinking", "multimodal"), CLI_PICKER)
def test_cli_models_carry_the_cli_values(
    model_id: str, label: str, context: int, max_output: int, thinking: bool, multimodal: bool
) -> None:
    assert catalogue.find(model_id) == ModelInfo(model_id, label, context, max_output, thinking, multimodal)


@pytest.mark.parametrize(
    "model_id",
    ["minimax-m2.1", "glm-4.6", "kimi-k2", "qwen3-max", "deepseek-v3.2-reasoner", "qwen-vl-max"],
)
def test_the_original_projects_models_are_listed(model_id: str) -> None:
    assert model_id in visible()


@pytest.mark.parametrize("model_id", ["glm-4.6-exp", "QWen3-4B", "qwen3-vl-plus"])
def test_ids_only_the_cli_itself_sends_are_known_but_hidden(model_id: str) -> None:
    info = catalogue.find(model_id)
    assert info is not None and info.hidden
    assert model_id not in visible()


def test_ids_are_unique() -> None:
    ids = [model.id for model in catalogue.IFLOW_MODELS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("model", catalogue.IFLOW_MODELS, ids=lambda m: m.id)
def test_entries_agree_with_the_rules_that_use_them(model: ModelInfo) -> None:
    assert model.max_output == catalogue.default_max_output(model.id)
    assert model.thinking == iflow_thinking.sends_thinking_fields(model.id)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("glm-4.7", 32_000),
        ("GLM-4.7", 32_000),
        ("glm-4.6-exp", 32_000),
        ("deepseek-v3.2-chat", 8_192),
        ("deepseek-v3.2-reasoner", 64_000),
        ("deepseek-r1", 32_000),
        ("deepseek-coder", 8_000),  # the family's default
        ("glm-deepseek", 32_000),  # families are tried in the CLI's order: glm before deepseek
        ("kimi-k2.5", 32_768),
        ("kimi-k2", 32_000),
        ("qwen3-coder-plus", 64_000),
        ("qwen3-max-preview", 32_000),
        ("qwen3-max", 8_192),
        ("qwen-max", 8_192),
        ("qwen-turbo", 8_000),
        ("claude-sonnet-4", 64_000),
        ("gpt-4-32k", 4_096),
        ("gpt-4o", 16_384),
        ("mimo-v2-flash", 64_000),
        ("iflow-rome-30ba3b", 64_000),
        ("minimax-m2.1", 64_000),
        ("some-new-model", catalogue.FALLBACK_MAX_OUTPUT),
        ("", catalogue.FALLBACK_MAX_OUTPUT),
    ],
)
def test_default_max_output_is_the_clis_lookup(model: str, expected: int) -> None:
    assert catalogue.default_max_output(model) == expected


def test_the_generic_fallback_is_the_clis() -> None:
    assert catalogue.FALLBACK_MAX_OUTPUT == 8_000


def test_find_is_exact() -> None:
    assert catalogue.find("glm-5") is not None
    assert catalogue.find("GLM-5") is None
    assert catalogue.find("glm") is None
