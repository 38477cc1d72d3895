"""The page's words: both catalogs complete and alike, every key the page uses defined, every key
defined used, and no English left in the page's markup outside a catalog.

``web/i18n.js`` explains the scheme; the browser tests check the page as it renders, in Chinese
(``tests/e2e/test_first_run.py``).
"""

from __future__ import annotations

import html.parser
import importlib.resources
import json
import re

import pytest

from iflow2api.routes.web import PAGE_FILES

LANGUAGES = ("en", "zh-CN")
#: ``t("key"`` and ``tn("key"`` in a module; ``data-i18n="key"`` and ``data-i18n-html="key"`` in markup.
USED_IN_MODULE = re.compile(r'\btn?\(\s*"([a-z0-9_.-]+)"')
USED_IN_MARKUP = re.compile(r'data-i18n(?:-html)?="([a-z0-9_.-]+)"')
USED_IN_ATTRIBUTE = re.compile(r'data-i18n-attr="([^"]+)"')
#: A key built at run time from a literal prefix: ``t("state." + state)`` or ``t(`state.${state}`)``.
PREFIX_IN_MODULE = re.compile(r'\btn?\(\s*(?:"([a-z0-9_.-]+\.)"\s*\+|`([a-z0-9_.-]+\.)\$\{)')
PLACEHOLDER = re.compile(r"\{(\w+)\}")
PLURAL = (".one", ".other")


def read(name: str) -> str:
    return importlib.resources.files("iflow2api.web").joinpath(name).read_text(encoding="utf-8")


def catalog(language: str) -> dict[str, str]:
    loaded = json.loads(read(f"messages.{language}.json"))
    assert isinstance(loaded, dict)
    assert all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in loaded.items())
    return loaded


def base(key: str) -> str:
    """A plural form's key without its form: ``serving.accounts.one`` -> ``serving.accounts``."""
    for form in PLURAL:
        if key.endswith(form):
            return key[: -len(form)]
    return key


def used_keys() -> tuple[set[str], set[str]]:
    """The keys the page names literally, and the prefixes of the keys it builds."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    for name in PAGE_FILES:
        text = read(name)
        if name.endswith(".js"):
            # Comments show how to call t(), with keys that need not exist.
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("//", "*")))
            keys |= set(USED_IN_MODULE.findall(text))
            prefixes |= {a or b for a, b in PREFIX_IN_MODULE.findall(text)}
        elif name.endswith(".html"):
            keys |= set(USED_IN_MARKUP.findall(text))
            for pairs in USED_IN_ATTRIBUTE.findall(text):
                keys |= {pair.split(":", 1)[1].strip() for pair in pairs.split(";") if ":" in pair}
    return keys, prefixes


def test_both_catalogs_are_flat_and_hold_the_same_words() -> None:
    english, chinese = catalog("en"), catalog("zh-CN")
    # Chinese has one plural form: an English ".one"/".other" pair is one ".other" there.
    expected = {key for key in english if not key.endswith(".one")}
    assert sorted(set(chinese) - expected) == [], "keys only the Chinese catalog has"
    assert sorted(expected - set(chinese)) == [], "keys the Chinese catalog lacks"
    for key, text in chinese.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(english[key])), key


def test_plural_keys_come_in_pairs_in_english() -> None:
    english = catalog("en")
    for key in english:
        if key.endswith(PLURAL):
            assert {base(key) + form for form in PLURAL} <= set(english), key


def test_every_key_the_page_uses_is_defined() -> None:
    english = {base(key) for key in catalog("en")} | set(catalog("en"))
    keys, _ = used_keys()
    assert sorted(keys - english) == []


def test_every_defined_key_is_used() -> None:
    keys, prefixes = used_keys()
    unused = [
        key
        for key in catalog("en")
        if key not in keys and base(key) not in keys and not any(key.startswith(p) for p in prefixes)
    ]
    assert unused == []


class _Words(html.parser.HTMLParser):
    """Text of the markup that is not under an element whose words come from a catalog."""

    VOID = frozenset({"meta", "link", "input", "br", "hr", "img", "source", "col", "wbr"})
    #: Where text is not words: data and code (translate="no" is HTML's own mark for it).
    EXEMPT = frozenset({"script", "style", "code", "pre", "title"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        names = dict(attrs)
        covered = (
            "data-i18n" in names
            or "data-i18n-html" in names
            or names.get("translate") == "no"
            or tag in self.EXEMPT
        )
        self.stack.append(covered or bool(self.stack and self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if re.search(r"[A-Za-z]", data) and not (self.stack and self.stack[-1]):
            self.found.append(data.strip())


def test_the_markup_has_no_words_outside_a_catalog() -> None:
    words = _Words()
    words.feed(read("index.html"))
    assert words.found == []


@pytest.mark.parametrize("attribute", ["placeholder", "title", "aria-label"])
def test_the_markup_has_no_attribute_words_outside_a_catalog(attribute: str) -> None:
    markup = read("index.html")
    for tag in re.findall(r"<[a-z][^>]*>", markup):
        if re.search(rf'\s{attribute}="[^"]*[A-Za-z]', tag):
            assert re.search(rf'data-i18n-attr="[^"]*\b{attribute}:', tag), tag
