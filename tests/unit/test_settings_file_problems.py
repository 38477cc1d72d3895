"""What is wrong with a settings.json, said precisely and without a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from iflow2api.auth.credentials import file_problem, problem
from iflow2api.auth.iflow_files import read_json_object, strip_json_comments

KEY = "sk-" + "c" * 32


def test_blanking_comments_keeps_every_line_and_column() -> None:
    text = '{ /* a\n  b */ "x": 1, // c\n "y": "//" }'
    stripped = strip_json_comments(text)
    assert len(stripped) == len(text)
    assert stripped.splitlines() == ["{     ", '       "x": 1,     ', ' "y": "//" }']


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1,}', "at line 1 column 8"),
        ('{\n  "a": 1\n  "b": 2\n}', "at line 3 column 3"),
        ('{\n  /* two\n  lines */ "a": x\n}', "at line 3 column 17"),
    ],
)
def test_a_json_error_names_its_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "settings.json").write_text(text)
    with pytest.raises(ValueError, match=r"^settings\.json is not valid JSON: ") as caught:
        read_json_object(tmp_path / "settings.json")
    assert str(caught.value).endswith(where)


def test_the_file_problem_never_quotes_the_file(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text('{"apiKey": "' + KEY + '" "baseUrl": 1}')
    found = file_problem(tmp_path)
    assert found is not None and "line 1" in found
    assert KEY[3:] not in found


@pytest.mark.parametrize(
    ("settings", "override", "expected"),
    [
        ({"selectedAuthType": "openai-compatible", "apiKey": KEY}, "", "but baseUrl is missing"),
        (
            {"selectedAuthType": "openai-compatible", "apiKey": KEY, "baseUrl": "  "},
            "",
            "but baseUrl is missing",
        ),
        ({"selectedAuthType": "openai-compatible", "baseUrl": "http://x/v1"}, "", "but apiKey is missing"),
        ({"selectedAuthType": "openai-compatible"}, "", "baseUrl is missing (the upstream's base URL, e.g."),
        ({"selectedAuthType": "openai-compatible", "apiKey": KEY}, "http://x/v1", None),
        ({"selectedAuthType": "openai-compatible", "apiKey": KEY, "baseUrl": "http://x/v1"}, "", None),
        ({"selectedAuthType": "oauth"}, "", 'selectedAuthType "oauth" is not one iflow2api can use'),
        ({"selectedAuthType": "iflow", "apiKey": KEY}, "", None),
        ({}, "", None),
        (None, "", None),
    ],
)
def test_problem(settings: dict[str, str] | None, override: str, expected: str | None) -> None:
    found = problem(settings, base_url_override=override)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found
        assert KEY[3:] not in found
