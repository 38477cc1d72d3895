"""``--help``: a command lists the options it uses, and ``iflow2api --help`` each summary whole."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from iflow2api.cli import main, summary

MANAGEMENT = [
    ["status"],
    ["models"],
    ["login"],
    ["logout"],
    ["admin-password"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["accounts", "list"],
    ["accounts", "add"],
    ["accounts", "test"],
    ["accounts", "remove"],
    ["accounts", "enable"],
    ["accounts", "disable"],
]


def help_of(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", MANAGEMENT, ids=" ".join)
def test_a_management_command_lists_no_server_flags(command: list[str]) -> None:
    text = help_of(*command)
    serve_only = ["--strategy", "--queue-size", "--keepalive-interval", "--max-attempts"]
    if command != ["status"]:  # status names the page's address
        serve_only += ["--port", "--host"]
    for flag in serve_only:
        assert flag not in text
    assert "--config" in text  # where the rest of the settings can come from
    assert text.count("\n  --") < 20  # serve lists about 35


def test_serve_still_lists_every_setting() -> None:
    text = help_of("serve")
    assert "--port" in text and "--keepalive-interval" in text and "--no-browser" in text


def test_status_offers_the_page_address() -> None:
    text = help_of("status")
    assert "--host" in text and "--port" in text


def test_models_offers_its_timeouts() -> None:
    text = help_of("models")
    assert "--connect-timeout" in text and "--first-byte-timeout" in text


def test_a_removed_flag_is_refused_where_it_would_change_nothing() -> None:
    result = CliRunner().invoke(main, ["keys", "list", "--port", "9000"])
    assert result.exit_code == 2
    assert "No such option '--port'" in result.output


def _commands(group: click.Group) -> list[tuple[str, click.Command]]:
    return list(group.commands.items())


@pytest.mark.parametrize(
    "group_args",
    [[], ["accounts"], ["keys"]],
    ids=["iflow2api", "accounts", "keys"],
)
def test_every_summary_is_whole(group_args: list[str]) -> None:
    group: click.Group = main
    for name in group_args:
        found = group.commands[name]
        assert isinstance(found, click.Group)
        group = found
    listing = help_of(*group_args).split("Commands:")[1]
    text = " ".join(listing.split())  # undo click's wrapping
    assert "..." not in text
    for _, command in _commands(group):
        assert command.help
        assert summary(command.help) in text
