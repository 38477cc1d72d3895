"""``services.serving``: which shown states serve, how the summary reads, and the one-line advice."""

from __future__ import annotations

import pytest

from iflow2api.services.serving import next_step, serving


@pytest.mark.parametrize(
    ("accounts", "summary"),
    [
        ([], "not serving — no provider connected yet"),
        ([("deepseek", "ok")], "serving — 1 account: deepseek"),
        (
            [("moonshot", "ok"), ("deepseek", "ok"), ("deepseek", "ok")],
            "serving — 3 accounts: deepseek, moonshot",
        ),
        ([("deepseek", "ok"), ("zhipu", "cooling")], "serving — 1 account: deepseek"),
        ([("zhipu", "cooling")], "not serving — none of its 1 account can serve now"),
        (
            [("a", "disabled"), ("b", "quarantined"), ("c", "out-of-credit"), ("iflow", "needs-login")],
            "not serving — none of its 4 accounts can serve now",
        ),
    ],
)
def test_summary(accounts: list[tuple[str, str]], summary: str) -> None:
    ready = serving(accounts)
    assert ready.summary() == summary
    assert ready.serving is summary.startswith("serving")
    assert ready.connected == len(accounts)


def test_serving_names_each_provider_once_sorted() -> None:
    ready = serving([("zhipu", "ok"), ("deepseek", "ok"), ("zhipu", "ok"), ("moonshot", "disabled")])
    assert (ready.accounts, ready.providers) == (3, ("deepseek", "zhipu"))


def test_next_step_is_one_line_command_first_page_then_iflow_last() -> None:
    line = next_step("http://127.0.0.1:8000/")
    assert "\n" not in line
    assert line.startswith("no provider connected yet: iflow2api accounts add --provider deepseek ")
    assert line.index("--key -") < line.index("http://127.0.0.1:8000/") < line.index("iflow2api login")
    assert line.endswith("shut down on 2026-04-17")
    assert "http" not in next_step()
