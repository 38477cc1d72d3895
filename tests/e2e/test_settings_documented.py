"""Every setting is documented in both READMEs, by its environment variable and its flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from iflow2api.settings import SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_setting_is_documented(readme: str, setting: Setting) -> None:
    text = (ROOT / readme).read_text(encoding="utf-8")
    assert f"`{setting.env_name}`" in text, f"{setting.env_name} is missing from {readme}"
    assert f"`{setting.flag}`" in text, f"{setting.flag} is missing from {readme}"
