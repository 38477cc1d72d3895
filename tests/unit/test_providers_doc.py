"""docs/providers.md (and its Chinese twin) name every profile, with its hosts and public base URL,
and every living provider has its own page in both languages: adding a profile means its docs too."""

from __future__ import annotations

from pathlib import Path

import pytest

from iflow2api.providers import GENERIC, IFLOW, PROFILES

DOCS = Path(__file__).resolve().parents[2] / "docs"
INDEXES = ("providers.md", "providers.zh-CN.md")


@pytest.mark.parametrize("index", INDEXES)
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_index_names_each_profile_with_its_hosts_and_base_url(index: str, name: str) -> None:
    text = (DOCS / index).read_text(encoding="utf-8")
    profile = PROFILES[name]
    row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
    assert row is not None, f"{index} has no row for {name}"
    assert all(f"`{host}`" in row for host in profile.hosts)
    assert not profile.base_url or f"`{profile.base_url}`" in row


@pytest.mark.parametrize("suffix", [".md", ".zh-CN.md"])
@pytest.mark.parametrize("name", sorted(set(PROFILES) - {GENERIC, IFLOW}))
def test_each_living_provider_has_its_page_linked_from_the_index(suffix: str, name: str) -> None:
    page = DOCS / "providers" / f"{name}{suffix}"
    assert page.is_file(), f"{page} is missing"
    assert "2026" in page.read_text(encoding="utf-8"), "each fact is dated when it was checked"
    index = (DOCS / f"providers{suffix}").read_text(encoding="utf-8")
    assert f"](providers/{name}{suffix})" in index
