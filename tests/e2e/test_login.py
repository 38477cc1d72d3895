"""Logging in without the iFlow CLI (page API and terminal), and logins that stay alive."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, write_settings
from tests.fake_iflow import BusinessError, FakeIflow
from tests.forward_proxy import ForwardProxy

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def oauth_env(fake: FakeIflow, **extra: str) -> dict[str, str]:
    return {
        "IFLOW2API_OAUTH_BASE_URL": fake.oauth_base_url,
        "IFLOW2API_UPSTREAM_BASE_URL": fake.base_url,
        "IFLOW2API_OPEN_BROWSER": "false",
        **extra,
    }


def creds(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "oauth_creds.json").read_text()))


def logged_in_home(home: Path, fake: FakeIflow) -> dict[str, Any]:
    """The files a finished login leaves behind, for a login the fake knows."""
    login = dict(fake.oauth.issue_login())
    home.mkdir(parents=True, exist_ok=True)
    (home / "oauth_creds.json").write_text(
        json.dumps(
            {
                "access_token": login["access_token"],
                "refresh_token": login["refresh_token"],
                "expiry_date": login["expiry_date"],
                "token_type": "bearer",
                "scope": "read",
                "apiKey": login["api_key"],
                "email": login["email"],
            }
        )
    )
    write_settings(home, {"selectedAuthType": "oauth-iflow", "apiKey": login["api_key"], "theme": "dark"})
    return login


def test_page_api_login_then_chat(start_gateway: Any, fake: FakeIflow) -> None:
    gateway: GatewayProcess = start_gateway(None, oauth_env(fake))
    fake.oauth.auto_consent = True
    with httpx.Client(base_url=gateway.url, timeout=20) as page:
        started = page.post("/api/login", json={"mode": "browser"}).json()
        assert started["url"].startswith(
            fake.oauth_base_url + "/oauth?loginMethod=phone&type=phone&redirect="
        )
        landed = httpx.get(started["url"], follow_redirects=True, timeout=20)
        assert landed.status_code == 200
        assert landed.url.params["login"] == "ok"
        status = page.get("/api/status").json()
    assert status["logged_in"] and status["auth_type"] == "oauth-iflow"
    assert status["account"] == fake.oauth.email
    saved = creds(gateway.iflow_home)
    assert saved["apiKey"] not in json.dumps(status)
    assert stat.S_IMODE(os.stat(gateway.iflow_home / "oauth_creds.json").st_mode) == 0o600
    assert saved["expiry_date"] > time.time() * 1000
    reply = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=20)
    assert reply.status_code == 200, reply.text
    assert fake.received[-1].headers["authorization"] == f"Bearer {saved['apiKey']}"
    assert saved["apiKey"] not in gateway.log_matching("POST /v1/chat/completions 200 ")


def test_a_short_lived_login_made_on_the_page_is_refreshed_halfway_not_at_once(
    start_gateway: Any, fake: FakeIflow
) -> None:
    """Ten minutes of life, an hour's lead: the gateway issued it, so it knows it is new."""
    gateway: GatewayProcess = start_gateway(None, oauth_env(fake, IFLOW2API_REFRESH_LEAD="3600"))
    fake.oauth.auto_consent = True
    fake.oauth.token_lifetime = 600
    with httpx.Client(base_url=gateway.url, timeout=20) as page:
        started = page.post("/api/login", json={"mode": "browser"}).json()
        assert httpx.get(started["url"], follow_redirects=True, timeout=20).url.params["login"] == "ok"
        deadline = time.monotonic() + 15
        login: dict[str, Any] = {}
        while time.monotonic() < deadline:
            login = page.get("/api/status").json()["login"]
            if login["next_refresh_at"] is not None and login["next_refresh_at"] > time.time() + 100:
                break
            time.sleep(0.05)
    assert fake.oauth.refreshes == 0, gateway.log()
    assert 200 < login["next_refresh_at"] - time.time() <= 300  # halfway through its ten minutes


def test_callback_with_an_unknown_state_is_refused(start_gateway: Any, fake: FakeIflow) -> None:
    gateway: GatewayProcess = start_gateway(None, oauth_env(fake))
    landed = httpx.get(gateway.url + "/oauth2callback?code=abc&state=forged", timeout=20)
    assert landed.status_code == 302
    assert "login=error" in landed.headers["location"]
    assert not (gateway.iflow_home / "oauth_creds.json").exists()
    assert fake.oauth.token_requests == []


def test_page_api_refuses_other_sites(start_gateway: Any, fake: FakeIflow) -> None:
    gateway: GatewayProcess = start_gateway(None, oauth_env(fake))
    evil_origin = httpx.post(
        gateway.url + "/api/logout", json={}, headers={"origin": "http://evil.test"}, timeout=20
    )
    assert evil_origin.status_code == 403
    rebound = httpx.get(gateway.url + "/api/status", headers={"host": "evil.test"}, timeout=20)
    assert rebound.status_code == 403
    status = httpx.get(gateway.url + "/api/status", timeout=20)
    assert status.status_code == 200
    assert "access-control-allow-origin" not in status.headers


def run_login(home: Path, fake: FakeIflow, answer: Any) -> subprocess.CompletedProcess[str]:
    """``iflow2api login --no-browser``; ``answer(url)`` returns what the user pastes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update(
        {"IFLOW_HOME": str(home), "IFLOW2API_OAUTH_BASE_URL": fake.oauth_base_url, "NO_PROXY": "127.0.0.1"}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "iflow2api", "login", "--no-browser"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        if line.strip().startswith("http"):
            url = line.strip()
            break
    out, err = process.communicate(answer(url) + "\n", timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def consent(url: str) -> httpx.Response:
    page = httpx.get(url, follow_redirects=True, timeout=20)
    assert page.status_code == 200
    return page


def shown_code(page: httpx.Response) -> str:
    match = re.search(r'id="code"[^>]*>\s*([^<\s]+)', page.text)
    assert match, page.text
    return match.group(1)


@pytest.mark.parametrize("paste", ["code", "address"])
def test_terminal_login_with_a_pasted_code(tmp_path: Path, fake: FakeIflow, paste: str) -> None:
    fake.oauth.auto_consent = True
    home = tmp_path / "iflow"
    write_settings(home, {"theme": "dark", "selectedAuthType": "iflow", "apiKey": "sk-" + "1" * 32})

    def answer(url: str) -> str:
        assert "redirect=" + "http" in url and "code-display" in url
        code = shown_code(consent(url))
        if paste == "code":
            return code
        # What the address bar shows on iFlow's code-display page.
        state = httpx.URL(url).params["state"]
        return f"{fake.oauth_base_url}/oauth/code-display?code={code}&state={state}"

    result = run_login(home, fake, answer)
    assert result.returncode == 0, result.stderr
    assert f"Logged in as {fake.oauth.email}" in result.stdout
    settings = json.loads((home / "settings.json").read_text())
    assert settings["selectedAuthType"] == "oauth-iflow"
    assert settings["theme"] == "dark"  # fields we do not know are kept
    assert settings["apiKey"] == settings["searchApiKey"] == creds(home)["apiKey"]
    assert (
        fake.oauth.token_requests[-1]["form"]["redirect_uri"] == fake.oauth_base_url + "/oauth/code-display"
    )


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        ("token-down", "could not"),
        ("no-key", "API key"),
        ("wrong-state", "state"),
    ],
)
def test_terminal_login_failures_say_why(
    tmp_path: Path, fake: FakeIflow, break_it: str, message: str
) -> None:
    fake.oauth.auto_consent = True
    if break_it == "token-down":
        fake.oauth.fail_next_token("http500", times=3)
    if break_it == "no-key":
        fake.oauth.fail_next_user_info("no_key", times=3)

    def answer(url: str) -> str:
        code = shown_code(consent(url))
        if break_it == "wrong-state":
            return f"{fake.oauth_base_url}/oauth/code-display?code={code}&state=forged"
        return code

    result = run_login(tmp_path / "iflow", fake, answer)
    assert result.returncode == 1
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "iflow" / "oauth_creds.json").exists()


def test_expired_key_is_refreshed_and_the_request_retried(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    home = tmp_path / "iflow"
    login = logged_in_home(home, fake)
    gateway: GatewayProcess = start_gateway(None, oauth_env(fake, IFLOW_HOME=str(home)))
    gateway_home_settings = json.loads((home / "settings.json").read_text())
    assert gateway_home_settings["apiKey"] == login["api_key"]
    fake.enqueue(BusinessError(status="439", msg="token expired"))
    reply = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=20)
    assert reply.status_code == 200, reply.text
    assert fake.oauth.refreshes == 1
    new_key = creds(home)["apiKey"]
    assert new_key != login["api_key"]
    assert fake.received[-1].headers["authorization"] == f"Bearer {new_key}"


def test_refresh_while_requests_are_in_flight_fails_none(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    fake.oauth.token_lifetime = 3
    home = tmp_path / "iflow"
    logged_in_home(home, fake)
    gateway: GatewayProcess = start_gateway(
        None, oauth_env(fake, IFLOW_HOME=str(home), IFLOW2API_REFRESH_LEAD="1")
    )
    deadline = time.monotonic() + 6

    def hammer(_: int) -> list[int]:
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(
                httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=20).status_code
            )
        return statuses

    with ThreadPoolExecutor(3) as pool:
        statuses = [s for batch in pool.map(hammer, range(3)) for s in batch]
    assert fake.oauth.refreshes >= 2, gateway.log()
    assert len(statuses) > 20
    assert set(statuses) == {200}, gateway.log()


def test_a_login_found_inside_the_refresh_lead_is_refreshed_at_startup(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    """A gateway started after days off: ten minutes left, an hour's lead, so refresh now."""
    fake.oauth.token_lifetime = 600
    home = tmp_path / "iflow"
    login = logged_in_home(home, fake)
    fake.oauth.token_lifetime = 7 * 24 * 3600
    gateway: GatewayProcess = start_gateway(
        None, oauth_env(fake, IFLOW_HOME=str(home), IFLOW2API_REFRESH_LEAD="3600")
    )
    deadline = time.monotonic() + 15
    while creds(home)["refresh_token"] == login["refresh_token"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert creds(home)["refresh_token"] != login["refresh_token"], gateway.log()
    assert fake.oauth.refreshes == 1


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"])
def test_the_gateway_refreshes_through_http_proxy_unless_no_proxy_says_not(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, no_proxy: str
) -> None:
    fake.oauth.token_lifetime = 600
    home = tmp_path / "iflow"
    login = logged_in_home(home, fake)
    fake.oauth.token_lifetime = 7 * 24 * 3600
    with ForwardProxy() as proxy:
        env = oauth_env(fake, IFLOW_HOME=str(home), IFLOW2API_REFRESH_LEAD="3600")
        gateway: GatewayProcess = start_gateway(None, {**env, "HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy})
        deadline = time.monotonic() + 15
        while creds(home)["refresh_token"] == login["refresh_token"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert creds(home)["refresh_token"] != login["refresh_token"], gateway.log()
        reply = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=20)
        assert reply.status_code == 200, reply.text
    oauth_origin, upstream_origin = fake.oauth_base_url.rstrip("/"), fake.base_url.rstrip("/")
    seen = [line.split(" ")[:2] for line in proxy.seen()]
    if no_proxy:
        assert seen == []
    else:
        assert ["POST", f"{oauth_origin}/oauth/token"] in seen
        assert any(
            method == "GET" and url.startswith(f"{oauth_origin}/api/oauth/getUserInfo?")
            for method, url in seen
        )
        assert ["POST", f"{upstream_origin}/chat/completions"] in seen


def test_temporary_refresh_failures_keep_the_login(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    fake.oauth.token_lifetime = 3
    home = tmp_path / "iflow"
    login = logged_in_home(home, fake)
    fake.oauth.fail_next_token("busy", times=2)
    gateway: GatewayProcess = start_gateway(
        None, oauth_env(fake, IFLOW_HOME=str(home), IFLOW2API_REFRESH_LEAD="1")
    )
    deadline = time.monotonic() + 8
    while fake.oauth.refreshes == 0 and time.monotonic() < deadline:
        assert (home / "oauth_creds.json").exists()
        time.sleep(0.1)
    assert fake.oauth.refreshes >= 1, gateway.log()
    answers = [r["answer"] for r in fake.oauth.token_requests]
    assert answers[:2] == ["busy", "busy"]
    # The refresh is counted at the token request; the gateway writes the files just after.
    while creds(home)["refresh_token"] == login["refresh_token"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert creds(home)["refresh_token"] != login["refresh_token"]


def test_rejected_refresh_asks_for_a_new_login_and_deletes_nothing(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    fake.oauth.token_lifetime = 3
    home = tmp_path / "iflow"
    logged_in_home(home, fake)
    before = creds(home)
    fake.oauth.fail_next_token("invalid_grant", times=5)
    gateway: GatewayProcess = start_gateway(
        None, oauth_env(fake, IFLOW_HOME=str(home), IFLOW2API_REFRESH_LEAD="1")
    )
    deadline = time.monotonic() + 8
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = httpx.get(gateway.url + "/health", timeout=20).json()
        if health["login"] == "needs-login":
            break
        time.sleep(0.1)
    assert health["login"] == "needs-login", gateway.log()
    assert creds(home) == before
    status = httpx.get(gateway.url + "/api/status", timeout=20).json()
    assert status["login"]["state"] == "needs-login"
    assert gateway.log_matching(r"(?i)log in")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    data_dir = next(p for p in gateway.iflow_home.parent.iterdir() if p.name.startswith("data-"))
    result = subprocess.run(
        [sys.executable, "-m", "iflow2api", "status"],
        env={**env, "IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "refused this login" in result.stdout, result.stdout


def test_logout_from_the_page_api_and_the_terminal(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    home = tmp_path / "iflow"
    logged_in_home(home, fake)
    gateway: GatewayProcess = start_gateway(None, oauth_env(fake, IFLOW_HOME=str(home)))
    assert httpx.post(gateway.url + "/api/logout", json={}, timeout=20).status_code == 200
    assert not (home / "oauth_creds.json").exists()
    settings = json.loads((home / "settings.json").read_text())
    assert "apiKey" not in settings and settings["theme"] == "dark"
    assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=20).status_code == 401
    logged_in_home(home, fake)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    result = subprocess.run(
        [sys.executable, "-m", "iflow2api", "logout"],
        env={**env, "IFLOW_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and "Logged out" in result.stdout
    assert not (home / "oauth_creds.json").exists()


def test_concurrent_refreshes_are_one_call(fake: FakeIflow, tmp_path: Path) -> None:
    import asyncio

    from iflow2api.auth.oauth_client import OAuthClient
    from iflow2api.auth.refresher import Refresher

    home = tmp_path / "iflow"
    logged_in_home(home, fake)

    async def main() -> list[bool]:
        client = OAuthClient(fake.oauth_base_url)
        refresher = Refresher(home, client, lead=86400)
        try:
            return await asyncio.gather(*(refresher.refresh_now() for _ in range(8)))
        finally:
            await client.close()

    assert asyncio.run(main()) == [True] * 8
    assert fake.oauth.refreshes == 1


BROWSER_SCRIPT = """
import re, sys, httpx
url, choice = sys.argv[1], sys.argv[2]
page = httpx.get(url, timeout=20)
link = re.search(r'id="%s"[^>]*href="([^"]+)"|href="([^"]+)"[^>]*id="%s"' % (choice, choice), page.text)
target = next(g for g in link.groups() if g).replace("&amp;", "&")
httpx.get(httpx.URL(url).join(target), follow_redirects=True, timeout=20)
"""


@pytest.mark.parametrize(("choice", "code", "says"), [("allow", 0, "Logged in as"), ("deny", 1, "declined")])
def test_terminal_login_through_the_browser(
    tmp_path: Path, fake: FakeIflow, choice: str, code: int, says: str
) -> None:
    """``iflow2api login`` opens the browser (here a script standing in for one) and waits."""
    script = tmp_path / "browser.py"
    script.write_text(BROWSER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update(
        {
            "IFLOW_HOME": str(tmp_path / "iflow"),
            "IFLOW2API_OAUTH_BASE_URL": fake.oauth_base_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "DISPLAY": ":0",
            "BROWSER": f"{sys.executable} {script} %s {choice}",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "iflow2api", "login"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert says in result.stdout + result.stderr
    if code == 0:
        assert fake.oauth.token_requests[-1]["form"]["redirect_uri"].startswith("http://localhost:")
    assert (tmp_path / "iflow" / "oauth_creds.json").exists() == (code == 0)
