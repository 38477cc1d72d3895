"""An OpenAI-compatible account never needs an iFlow login, as ``iflow2api status`` reads the files."""

from __future__ import annotations

import json
from pathlib import Path

from iflow2api.auth.refresher import login_rejected, record_rejection
from iflow2api.cli.status import current_account, file_serving
from iflow2api.settings import load


def test_a_refused_iflow_login_beside_an_openai_compatible_settings_file_needs_no_login(
    tmp_path: Path,
) -> None:
    """``iflow2api status``'s reading: settings.json serves with its key; the stale iFlow login in
    oauth_creds.json, refused once, is not what it serves with."""
    home, data = tmp_path / "iflow", tmp_path / "data"
    home.mkdir()
    (home / "settings.json").write_text(
        json.dumps(
            {
                "selectedAuthType": "openai-compatible",
                "baseUrl": "https://api.deepseek.com",
                "apiKey": "sk-deepseek",
                "modelName": "deepseek-chat",
            }
        )
    )
    (home / "oauth_creds.json").write_text(
        json.dumps({"access_token": "a", "refresh_token": "stale", "expiry_date": 1})
    )
    record_rejection(data, "stale", "invalid_grant")
    assert login_rejected(home, data) == "invalid_grant"  # the refusal is on file
    settings = load(
        env={"IFLOW2API_DATA_DIR": str(data), "IFLOW_HOME": str(home)}, flags={}, config_path=None
    )
    ready = file_serving(settings, current_account(settings))
    assert ready.summary() == "serving — 1 account: deepseek"
