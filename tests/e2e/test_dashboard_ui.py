"""The dashboard page in headless Chromium, against a scripted stand-in for the management API.

A small ``http.server`` on 127.0.0.1 serves the page's real files (``routes.web.load_assets``, at the
paths the gateway's route table ``routing.ROUTES`` lists) and answers ``/api/*`` with canned JSON in the
shapes of the design (/tmp/design/issue5.md), recording every request. So the page is tested before, and
apart from, the backend; a test against the real gateway checks that the two agree.

Every test fails on a console error, an uncaught exception or a JavaScript dialog (``alert`` from
injected markup would be one). ``IFLOW2API_DASHBOARD_SHOTS=<folder>`` also saves screenshots there.
"""

from __future__ import annotations

import copy
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Response,
    ViewportSize,
    expect,
)

from iflow2api.routes.web import load_assets
from iflow2api.routing import ROUTES
from tests.e2e.browser import TIMEOUT_MS

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
#: Names chosen by clients and upstreams reach the page; this one must stay text.
HOSTILE = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery staple"
COOKIE = "iflow2api_session"
NEW_KEY = "sk-i2a-NeWkEyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
Json = dict[str, Any]
#: status, JSON body, extra headers
Reply = tuple[int, Json, list[tuple[str, str]]]


def _error(message: str, kind: str, code: str | None) -> Json:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


ADMIN_REQUIRED = _error("Sign in first.", "authentication_error", "admin_required")


def status_document() -> Json:
    now = time.time()
    return {
        "version": "9.9.9",
        "admin": {"required": False, "signed_in": False},
        "serving": True,
        "serving_accounts": 1,
        "serving_providers": ["iflow"],
        "summary": "serving — 1 account: iflow",
        "providers": [],
        "logged_in": True,
        "account": "user@example.com",
        "auth_type": "oauth-iflow",
        "oauth_login": True,
        "upstream": "iflow",
        "base_url": "https://apis.iflow.cn/v1",
        "api_key": "sk-0…cdef",
        "key_note": "iFlow API keys last 7 days; a login refreshes its key",
        "login": {
            "state": "ok",
            "token_expires_at": now + 20 * 3600,
            "next_refresh_at": now + 18 * 3600,
            "last_refresh_at": now - 600,
            "last_error": None,
        },
        "needs_client_key": True,
        "models": [
            {
                "id": "glm-4.7",
                "object": "model",
                "created": 1700000000,
                "owned_by": "iflow",
                "name": "GLM-4.7",
                "context_length": 200000,
                "max_output_tokens": 128000,
            },
            {"id": HOSTILE, "object": "model", "created": 1700000000, "owned_by": "iflow"},
        ],
        "aliases": {"gpt-4o": "glm-4.7"},
    }


def account(id: str, label: str, kind: str, source: str, state: str, **changes: Any) -> Json:
    """One entry of ``GET /api/accounts``, with defaults."""
    document: Json = {
        "id": id,
        "label": label,
        "kind": kind,
        "source": source,
        "base_url": "https://apis.iflow.cn/v1",
        "provider": "iflow" if kind.startswith("iflow") else "generic",
        "provider_by_host": kind == "openai-compatible",
        "secret": "sk-0…" + id[-4:],
        "models": [],
        "enabled": state != "disabled",
        "state": state,
        "until": None,
        "reason": None,
        "in_flight": 0,
        "limit": 1,
        "waiting": 0,
        "requests": 0,
        "errors": 0,
        "login": None,
    }
    return document | changes


#: What ``GET /api/accounts`` offers the form (``pool.directory.provider_list``), in its order.
PROVIDERS = [
    {"name": "deepseek", "title": "DeepSeek", "base_url": "https://api.deepseek.com"},
    {"name": "moonshot", "title": "Kimi (Moonshot)", "base_url": "https://api.moonshot.ai/v1"},
    {"name": "generic", "title": "Any OpenAI-compatible server", "base_url": ""},
]


def accounts_document() -> Json:
    """One account in each state; the cooling one has 95 s left."""
    cooling = {"until": time.time() + 95, "reason": "rate limited (429)", "in_flight": 1, "waiting": 3}
    openrouter = {
        "base_url": "https://openrouter.example/v1",
        "models": ["gpt-4o-mini", HOSTILE],
        "limit": None,
        "reason": "upstream says 401: invalid key",
    }
    return {
        "strategy": "round-robin",
        "affinity": True,
        "providers": PROVIDERS,
        "accounts": [
            account("acc-00cli1", "user@example.com", "iflow-oauth", "iflow-cli", "ok", requests=120),
            account("acc-00cool", "team key", "iflow-key", "store", "cooling", requests=40, **cooling),
            account("acc-00conf", "openrouter", "openai-compatible", "config", "quarantined", **openrouter),
            account("acc-00off1", "spare", "iflow-key", "store", "disabled"),
            account("acc-00old1", "old login", "iflow-oauth", "store", "needs-login"),
        ],
    }


def key_record(id: str, name: str, **changes: Any) -> Json:
    """One entry of ``GET /api/keys``, with defaults."""
    document: Json = {
        "id": id,
        "name": name,
        "prefix": "sk-i2a-" + id[-4:] + "…",
        "created_at": time.time() - 86400 * 3,
        "admin": False,
        "rpm": None,
        "tokens_per_day": None,
        "models": [],
        "requests_today": 0,
        "tokens_today": 0,
    }
    return document | changes


def keys_document() -> Json:
    return {
        "keys": [
            key_record("key-0001", "laptop", admin=True, requests_today=31, tokens_today=45210),
            key_record("key-0002", HOSTILE, rpm=60, tokens_per_day=1_000_000, models=["glm-*"]),
        ]
    }


def usage_entry(name: str, requests: int, errors: int) -> Json:
    """One entry of ``per_model``, ``per_key``, ``per_account`` or ``per_dialect``."""
    return {
        "name": name,
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "tokens": requests * 1200,
        "p50_ms": 820.0,
        "p95_ms": 2400.0,
    }


def recent_row(at: float, model: str, status: int, error: str | None) -> Json:
    """One entry of ``recent``."""
    return {
        "at": at,
        "key": "laptop",
        "account": "user@example.com",
        "model": model,
        "dialect": "chat",
        "stream": True,
        "status": status,
        "prompt_tokens": 900,
        "completion_tokens": 300,
        "reasoning_tokens": 100,
        "latency_ms": 1830.0,
        "ttft_ms": 420.0,
        "attempts": 1,
        "error": error,
    }


def usage_document(days: int, *, empty: bool = False) -> Json:
    """The ``stats.summarize`` shape: day i (oldest first) has 10*(i+1) requests and i % 3 errors,
    each request 900 prompt and 300 completion tokens, 100 of them reasoning."""
    now = time.time()
    counts = [(0, 0) if empty else (10 * (i + 1), i % 3) for i in range(days)]
    per_day = [
        {
            "day": time.strftime("%Y-%m-%d", time.gmtime(now - (days - 1 - i) * 86400)),
            "requests": requests,
            "errors": errors,
            "prompt_tokens": requests * 900,
            "completion_tokens": requests * 300,
            "reasoning_tokens": requests * 100,
        }
        for i, (requests, errors) in enumerate(counts)
    ]
    requests = sum(r for r, _ in counts)
    errors = sum(e for _, e in counts)
    latency: dict[str, float | None] = {
        "p50_ms": 820.0,
        "p90_ms": 1900.0,
        "p95_ms": 2400.0,
        "p99_ms": 5100.0,
        "ttft_p50_ms": 410.0,
        "ttft_p95_ms": 1200.0,
    }

    def share(part: float) -> int:
        return round(requests * part)

    return {
        "days": days,
        "since": now - days * 86400,
        "until": now,
        "totals": {
            "requests": requests,
            "errors": errors,
            "error_rate": errors / requests if requests else 0.0,
            "prompt_tokens": requests * 900,
            "completion_tokens": requests * 300,
            "reasoning_tokens": requests * 100,
            "total_tokens": requests * 1200,
        },
        "per_day": per_day,
        "per_model": []
        if empty
        else [
            usage_entry("glm-4.7", share(0.6), errors // 2),
            usage_entry("kimi-k2", share(0.3), errors - errors // 2),
            usage_entry(HOSTILE, share(0.1), 0),
        ],
        "per_key": []
        if empty
        else [usage_entry("laptop", share(0.7), errors), usage_entry("(no key)", share(0.3), 0)],
        "per_account": []
        if empty
        else [
            usage_entry("user@example.com", share(0.8), errors),
            usage_entry("team key", share(0.2), 0),
        ],
        "per_dialect": []
        if empty
        else [
            usage_entry("chat", share(0.5), errors),
            usage_entry("anthropic", share(0.4), 0),
            usage_entry("responses", share(0.1), 0),
        ],
        # The design says null without rows; usage/stats.py gives an object of nulls. The page takes both.
        "latency": dict.fromkeys(latency) if empty else latency,
        "recent": []
        if empty
        else [
            recent_row(now - 30, "glm-4.7", 200, None),
            recent_row(now - 90, HOSTILE, 429, "rate_limit_exceeded"),
            recent_row(now - 300, "kimi-k2", 200, None),
        ],
    }


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


@dataclass
class FakeManagementApi:
    """The management API of the design, answering from plain dicts; ``received`` records every call."""

    status: Json = field(default_factory=status_document)
    accounts: Json = field(default_factory=accounts_document)
    keys: Json = field(default_factory=keys_document)
    usage_empty: bool = False
    #: Where the fake runs (for the login address it hands out).
    url: str = ""
    received: list[Received] = field(default_factory=list)
    #: Keys created through the page that may sign in: the whole key → admin.
    created: dict[str, bool] = field(default_factory=dict)

    @property
    def admin_required(self) -> bool:
        """Keys exist: every call but the status and the sign-in needs the session cookie."""
        return bool(self.keys["keys"])

    def posted(self, path: str) -> list[Any]:
        """The JSON bodies POSTed to ``path``, oldest first."""
        return [r.body for r in self.received if r.method == "POST" and r.path == path]

    def answer(self, request: Received, cookie: str) -> Reply:
        signed_in = f"{COOKIE}=ok" in cookie
        if request.method == "POST" and request.content_type != "application/json":
            return (
                400,
                _error("Send JSON (content-type: application/json).", "invalid_request_error", None),
                [],
            )
        route = (request.method, request.path)
        if route == ("GET", "/api/status"):
            document = copy.deepcopy(self.status)
            document["admin"] = {"required": self.admin_required, "signed_in": signed_in}
            if self.admin_required and not signed_in:
                document = {"version": document["version"], "admin": document["admin"]}
            return 200, document, []
        if route == ("POST", "/api/session"):
            body = request.body if isinstance(request.body, dict) else {}
            if body == {"password": PASSWORD} or (set(body) == {"key"} and self.created.get(body["key"])):
                return 200, {"ok": True}, [("set-cookie", f"{COOKIE}=ok; HttpOnly; SameSite=Strict; Path=/")]
            return (
                401,
                _error("Wrong admin password or admin key.", "authentication_error", "admin_required"),
                [],
            )
        if self.admin_required and not signed_in:
            return 401, ADMIN_REQUIRED, []
        return self._managed(request)

    def _managed(self, request: Received) -> Reply:
        route = (request.method, request.path)
        body = request.body if isinstance(request.body, dict) else {}
        if route == ("POST", "/api/session/end"):
            return 200, {"ok": True}, [("set-cookie", f"{COOKIE}=; Max-Age=0; Path=/")]
        if route == ("POST", "/api/login"):
            # Stands in for iFlow's consent page: /consent sends the browser straight back.
            return 200, {"url": self.url + "/consent?state=s1", "state": "s1"}, []
        if route == ("GET", "/api/accounts"):
            return 200, self.accounts, []
        if route == ("POST", "/api/accounts"):
            added = account(
                "acc-new" + str(len(self.accounts["accounts"])), body["label"], body["kind"], "store", "ok"
            )
            if body.get("provider"):
                added |= {"provider": body["provider"], "provider_by_host": False}
            self.accounts["accounts"].append(added)
            return 201, {"account": added}, []
        if route == ("POST", "/api/accounts/action"):
            for entry in self.accounts["accounts"]:
                if entry["id"] == body["id"] and body["action"] in ("enable", "disable"):
                    entry["enabled"] = body["action"] == "enable"
                    entry["state"] = "ok" if entry["enabled"] else "disabled"
            if body["action"] == "remove":
                self.accounts["accounts"] = [a for a in self.accounts["accounts"] if a["id"] != body["id"]]
            return 200, {"ok": True}, []
        if route == ("GET", "/api/keys"):
            return 200, self.keys, []
        if route == ("POST", "/api/keys"):
            record = key_record("key-0003", body["name"], admin=body.get("admin", False))
            self.keys["keys"].append(record)
            self.created[NEW_KEY] = record["admin"]
            return 201, {"key": NEW_KEY, "record": record}, []
        if route == ("POST", "/api/keys/revoke"):
            self.keys["keys"] = [k for k in self.keys["keys"] if k["id"] != body["id"]]
            return 200, {"ok": True}, []
        if route == ("GET", "/api/usage"):
            return 200, usage_document(int(request.query["days"][0]), empty=self.usage_empty), []
        return 404, _error(f"There is no {request.path} here.", "invalid_request_error", "not_found"), []


def handler_for(
    api: FakeManagementApi, assets: dict[str, tuple[bytes, bytes]]
) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            if method == "GET" and url.path in assets:
                asset_type, content = assets[url.path]
                self._send(200, asset_type.decode(), content, [])
                return
            if method == "GET" and url.path == "/consent":
                self._send(302, "text/plain", b"", [("location", "/?login=ok&account=new%40example.com")])
                return
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            sent_type = self.headers.get("content-type")
            request = Received(
                method,
                url.path,
                urllib.parse.parse_qs(url.query),
                sent_type.split(";")[0].strip() if sent_type else None,
                json.loads(raw) if raw else None,
            )
            with lock:
                api.received.append(request)
                status, document, headers = api.answer(request, self.headers.get("cookie") or "")
            self._send(status, "application/json", json.dumps(document).encode(), headers)

        def _send(self, status: int, content_type: str, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", "no-store")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows the test's own failure

    return Handler


@dataclass
class Dashboard:
    page: Page
    api: FakeManagementApi
    url: str
    #: Console errors, uncaught exceptions and dialogs; any left after ``tolerated`` fails the test.
    problems: list[str] = field(default_factory=list)
    #: Substrings of problems a test expects (Chromium logs every 4xx answer to a fetch).
    tolerated: list[str] = field(default_factory=list)

    def open(self, view: str = "") -> None:
        """Load the page at a section and wait for its first status."""
        self.page.goto(self.url + "/" + (f"#{view}" if view else ""))
        expect(self.page.locator("#version")).to_have_text("v9.9.9")

    def sign_in(self) -> None:
        """As if signed in already: the fake's session cookie (the fixture does this first)."""
        self.page.context.add_cookies([{"name": COOKIE, "value": "ok", "url": self.url}])

    def sign_out(self) -> None:
        """The session ends (expires, or was never there)."""
        self.page.context.clear_cookies()

    def post(self, path: str, action: Callable[[], None]) -> Any:
        """Run ``action``, wait for the page's POST to ``path`` to be answered, return the JSON it sent."""

        def is_it(response: Response) -> bool:
            return response.request.method == "POST" and urllib.parse.urlsplit(response.url).path == path

        with self.page.expect_response(is_it):
            action()
        sent = [r for r in self.api.received if r.method == "POST" and r.path == path][-1]
        assert sent.content_type == "application/json"
        return sent.body

    def shot(self, name: str) -> None:
        folder = os.environ.get("IFLOW2API_DASHBOARD_SHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / name), full_page=True)


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    """One browser context for the module (a new one costs more than a test); each test resets its cookies."""
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(
        viewport=VIEWPORT, locale="en-US", permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="module")
def assets() -> dict[str, tuple[bytes, bytes]]:
    """The page's files at the paths the gateway routes: a new asset without a route fails here too."""
    return {path: asset for path, asset in load_assets().items() if path in ROUTES}


@pytest.fixture
def dashboard(context: BrowserContext, assets: dict[str, tuple[bytes, bytes]]) -> Iterator[Dashboard]:
    api = FakeManagementApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(api, assets))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    context.clear_cookies()
    page = context.new_page()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    dashboard = Dashboard(page, api, api.url)
    dashboard.sign_in()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            dashboard.problems.append(f"console: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        dashboard.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: dashboard.problems.append(f"page error: {error}"))
    page.on("dialog", on_dialog)
    try:
        yield dashboard
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    assert [p for p in dashboard.problems if not any(t in p for t in dashboard.tolerated)] == []


def test_sign_in_when_the_gateway_has_keys(dashboard: Dashboard) -> None:
    page, api = dashboard.page, dashboard.api
    dashboard.sign_out()
    dashboard.open("accounts")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#tabs")).to_be_hidden()
    expect(page.locator("#view-accounts")).to_be_hidden()
    expect(page.locator("#signout")).to_be_hidden()
    dashboard.shot("signin.png")
    assert [r.path for r in api.received] == ["/api/status"]  # nothing protected was asked for

    page.check("input[name=signin-kind][value=password]")
    expect(page.locator("#signin-secret-label")).to_have_text("Admin password")
    page.fill("#signin-secret", PASSWORD)
    sent = dashboard.post("/api/session", lambda: page.click("#signin-form button[type=submit]"))
    assert sent == {"password": PASSWORD}

    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#view-accounts")).to_be_visible()
    expect(page.locator("#accounts-table tbody tr")).to_have_count(5)
    expect(page.locator("#signout")).to_be_visible()
    expect(page.locator("#signin-secret")).to_have_value("")

    sent = dashboard.post("/api/session/end", lambda: page.click("#signout"))
    assert sent == {}
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#tabs")).to_be_hidden()


def test_a_wrong_password_is_refused_on_the_form(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.sign_out()
    dashboard.tolerated.append("status of 401")
    dashboard.open()
    page.fill("#signin-secret", "sk-i2a-not-an-admin-key")
    sent = dashboard.post("/api/session", lambda: page.click("#signin-form button[type=submit]"))
    assert sent == {"key": "sk-i2a-not-an-admin-key"}
    expect(page.locator("#signin-message")).to_have_text("That key is not an admin key of this gateway.")
    expect(page.locator("#signin")).to_be_visible()


def test_an_expired_session_shows_the_sign_in(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("keys")
    expect(page.locator("#keys-table tbody tr")).to_have_count(2)
    dashboard.sign_out()  # the session expired: the next call is refused
    dashboard.tolerated.append("status of 401")
    page.fill("#newkey-name", "late")
    dashboard.post("/api/keys", lambda: page.click("#newkey-form button[type=submit]"))
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#view-keys")).to_be_hidden()
    expect(page.locator("#keys-message")).to_be_hidden()


def test_overview_keeps_the_login_and_snippets(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open()
    expect(page.locator("#view-overview")).to_be_visible()
    expect(page.locator("#badge")).to_have_text("serving")
    expect(page.locator("#version")).to_have_text("v9.9.9")
    expect(page.locator("#account")).to_contain_text("user@example.com")
    expect(page.locator("#logout")).to_be_visible()
    expect(page.locator("#signout")).to_be_visible()
    expect(page.locator("#curl")).to_contain_text(dashboard.url + "/v1/chat/completions")
    expect(page.locator("#curl")).to_contain_text("authorization: Bearer sk-...your key...")
    expect(page.locator("#models tbody tr")).to_have_count(2)
    expect(page.locator("#aliases tbody")).to_have_text("gpt-4oglm-4.7")
    expect(page.locator("#tabs a[aria-current=page]")).to_have_text("Overview")

    page.click("#tabs a[data-view=usage]")
    expect(page).to_have_url(dashboard.url + "/#usage")
    expect(page.locator("#view-usage")).to_be_visible()
    expect(page.locator("#view-overview")).to_be_hidden()
    page.go_back()
    expect(page.locator("#view-overview")).to_be_visible()


def test_an_iflow_login_from_the_accounts_comes_back_there(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("accounts")
    sent = dashboard.post("/api/login", lambda: page.click("#account-add-login"))
    assert sent == {"mode": "browser"}
    page.wait_for_url(dashboard.url + "/#accounts")  # via the stand-in consent page and /?login=ok
    expect(page.locator("#view-accounts")).to_be_visible()
    expect(page.locator("#accounts-message")).to_have_text("Logged in as new@example.com.")

    page.goto(dashboard.url + "/?login=error&message=You+declined+access")
    page.wait_for_url(dashboard.url + "/")
    expect(page.locator("#view-overview")).to_be_visible()
    expect(page.locator("#login-message")).to_have_text("Login failed: You declined access")


def test_accounts_show_their_state(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("accounts")
    rows = page.locator("#accounts-table tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator("#accounts-policy [data-testid=strategy]")).to_have_text("round-robin")
    expect(page.locator("#accounts-policy [data-testid=affinity]")).to_have_text("on")
    states = rows.locator("[data-testid=account-state]")
    expect(states).to_have_text(["ok", "cooling", "quarantined", "disabled", "needs-login"])
    for state in ("ok", "cooling", "quarantined", "disabled", "needs-login"):
        expect(page.locator(f"tr[data-state='{state}'] .state-{state}")).to_be_visible()

    cooling = page.locator("tr[data-id=acc-00cool]")
    countdown = cooling.locator("[data-testid=countdown]")
    expect(countdown).to_have_text(re.compile(r"^1:[0-3]\d left$"))  # 95 s from when the fake answered
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)  # it ticks without asking the gateway
    expect(cooling.locator("[data-testid=account-reason]")).to_have_text("rate limited (429)")
    expect(cooling).to_contain_text("1 / 1")
    expect(cooling.locator("td").nth(7)).to_have_text("3")
    quarantined = page.locator("tr[data-id=acc-00conf]")
    expect(quarantined.locator("[data-testid=account-reason]")).to_have_text("upstream says 401: invalid key")
    expect(quarantined).to_contain_text("0 / ∞")
    expect(quarantined).to_contain_text(HOSTILE)
    expect(quarantined).to_contain_text("sk-0…conf")

    # The config file's and the iFlow CLI's accounts are not the page's to remove.
    expect(page.locator("tr[data-source=iflow-cli] button[data-action=remove]")).to_have_count(0)
    expect(page.locator("tr[data-source=config] button[data-action=remove]")).to_have_count(0)
    expect(page.locator("tr[data-source=store] button[data-action=remove]")).to_have_count(3)
    expect(page.locator("tr[data-id=acc-00off1] button[data-action=enable]")).to_be_visible()
    expect(cooling.locator("button[data-action=reset]")).to_be_visible()
    expect(page.locator("tr[data-id=acc-00cli1] button[data-action=reset]")).to_have_count(0)
    dashboard.shot("accounts.png")

    sent = dashboard.post(
        "/api/accounts/action", lambda: cooling.locator("button[data-action=reset]").click()
    )
    assert sent == {"id": "acc-00cool", "action": "reset"}
    sent = dashboard.post(
        "/api/accounts/action", lambda: cooling.locator("button[data-action=disable]").click()
    )
    assert sent == {"id": "acc-00cool", "action": "disable"}
    expect(page.locator("#accounts-message")).to_have_text("Disabled team key.")
    expect(cooling.locator("[data-testid=account-state]")).to_have_text("disabled")


def test_removing_an_account_asks_first(dashboard: Dashboard) -> None:
    page, api = dashboard.page, dashboard.api
    dashboard.open("accounts")
    spare = page.locator("tr[data-id=acc-00off1]")
    spare.locator("button[data-action=remove]").click()
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("spare")
    page.click("#confirm-cancel")
    expect(page.locator("#confirm")).to_be_hidden()
    assert api.posted("/api/accounts/action") == []

    spare.locator("button[data-action=remove]").click()
    sent = dashboard.post("/api/accounts/action", lambda: page.click("#confirm-ok"))
    assert sent == {"id": "acc-00off1", "action": "remove"}
    expect(page.locator("#accounts-table tbody tr")).to_have_count(4)


def test_adding_accounts_posts_the_design_shape(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("accounts")
    page.select_option("#account-kind", "iflow-key")
    expect(page.locator("#account-base-url")).to_be_hidden()
    page.fill("#account-label", "team key 2")
    page.fill("#account-key", "sk-0123456789abcdef0123456789abcdef")
    sent = dashboard.post("/api/accounts", lambda: page.click("#account-form button[type=submit]"))
    assert sent == {
        "kind": "iflow-key",
        "label": "team key 2",
        "api_key": "sk-0123456789abcdef0123456789abcdef",
        "concurrency": None,
    }
    expect(page.locator("#accounts-message")).to_have_text("Added team key 2.")
    expect(page.locator("#account-key")).to_have_value("")
    expect(page.locator("#accounts-table tbody tr")).to_have_count(6)

    page.select_option("#account-kind", "openai-compatible")
    page.select_option("#account-provider", "")
    page.fill("#account-label", "deepseek")
    page.fill("#account-base-url", "https://api.deepseek.example/v1")
    page.fill("#account-key", "ds-secret")
    page.fill("#account-models", "deepseek-chat, deepseek-reasoner,")
    page.fill("#account-concurrency", "4")
    sent = dashboard.post("/api/accounts", lambda: page.click("#account-form button[type=submit]"))
    assert sent == {
        "kind": "openai-compatible",
        "label": "deepseek",
        "api_key": "ds-secret",
        "base_url": "https://api.deepseek.example/v1",
        "models": ["deepseek-chat", "deepseek-reasoner"],
        "concurrency": 4,
    }
    assert "ds-secret" not in page.inner_text("body")


def test_adding_an_account_of_a_provider(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("accounts")
    quarantined = page.locator("tr[data-id=acc-00conf] [data-testid=account-provider]")
    expect(quarantined).to_have_text("generic (by host)")
    expect(page.locator("tr[data-id=acc-00cli1] [data-testid=account-provider]")).to_have_text("iflow")
    provider = page.locator("#account-provider")
    # The page names the providers it knows in its own words (the catalog), not the API's titles.
    expect(provider).to_have_value("deepseek")  # the first preset, though by host comes first
    expect(provider.locator("option")).to_have_text(
        [
            "By its base URL's host (auto)",
            "Any OpenAI-compatible server (generic)",
            "DeepSeek (deepseek)",
            "Kimi (Moonshot AI) (moonshot)",
        ]
    )
    # Choosing a provider fills in its public base URL; going back to any server empties it again.
    page.select_option("#account-provider", "moonshot")
    expect(page.locator("#account-base-url")).to_have_value("https://api.moonshot.ai/v1")
    page.select_option("#account-provider", "generic")
    expect(page.locator("#account-base-url")).to_have_value("")
    page.select_option("#account-provider", "deepseek")
    expect(page.locator("#account-base-url")).to_have_value("https://api.deepseek.com")
    for name, value in (("label", "ds work"), ("key", "ds-secret")):
        page.fill(f"#account-{name}", value)
    sent = dashboard.post("/api/accounts", lambda: page.click("#account-form button[type=submit]"))
    form = {"kind": "openai-compatible", "label": "ds work", "api_key": "ds-secret", "models": []}
    assert sent == form | {
        "provider": "deepseek",
        "base_url": "https://api.deepseek.com",
        "concurrency": None,
    }
    added = page.locator("#accounts-table tbody tr", has_text="ds work")
    expect(added.locator("[data-testid=account-provider]")).to_have_text("deepseek")
    expect(page.locator("#account-provider")).to_have_value("deepseek")  # the form starts over

    # Pinned to pass-through on a known host: "generic" is sent, and shown as given, not by host.
    at_deepseek = form | {"api_key": "ds-other", "base_url": "https://api.deepseek.com", "concurrency": None}
    sent = add_at_deepseeks_host(dashboard, "ds proxy", "generic")
    assert sent == at_deepseek | {"label": "ds proxy", "provider": "generic"}
    pinned = page.locator("#accounts-table tbody tr", has_text="ds proxy")
    expect(pinned.locator("[data-testid=account-provider]")).to_have_text("generic")
    # By host: no provider is sent, so the gateway's host rule picks the profile.
    assert add_at_deepseeks_host(dashboard, "ds auto", "") == at_deepseek | {"label": "ds auto"}


def add_at_deepseeks_host(dashboard: Dashboard, label: str, provider: str) -> Any:
    """Add an OpenAI-compatible account at DeepSeek's host with the form, ``provider`` chosen;
    what the page sent."""
    page = dashboard.page
    page.select_option("#account-kind", "openai-compatible")
    page.select_option("#account-provider", value=provider)
    for name, value in (("label", label), ("key", "ds-other"), ("base-url", "https://api.deepseek.com")):
        page.fill(f"#account-{name}", value)
    return dashboard.post("/api/accounts", lambda: page.click("#account-form button[type=submit]"))


def test_a_new_key_is_shown_once(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("keys")
    rows = page.locator("#keys-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("admin")
    expect(rows.nth(0)).to_contain_text("45,210")
    expect(rows.nth(1)).to_contain_text("60 requests/min · 1,000,000 tokens/day")
    expect(page.locator("#keys-hint")).to_be_hidden()

    page.fill("#newkey-name", "ci runner")
    page.check("#newkey-admin")
    page.fill("#newkey-rpm", "120")
    page.fill("#newkey-tpd", "500000")
    page.fill("#newkey-models", "glm-*, kimi-k2")
    sent = dashboard.post("/api/keys", lambda: page.click("#newkey-form button[type=submit]"))
    assert sent == {
        "name": "ci runner",
        "admin": True,
        "rpm": 120,
        "tokens_per_day": 500000,
        "models": ["glm-*", "kimi-k2"],
    }
    dialog = page.locator("#newkey-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-testid=new-key]")).to_have_text(NEW_KEY)
    expect(dialog).to_contain_text("you will not see it again")
    dashboard.shot("new-key.png")
    page.click("#newkey-copy")
    expect(page.locator("#newkey-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == NEW_KEY
    page.keyboard.press("Escape")  # not by accident
    expect(dialog).to_be_visible()

    page.click("#newkey-close")
    expect(dialog).to_be_hidden()
    assert NEW_KEY not in page.content()
    expect(rows).to_have_count(3)
    expect(page.locator("#newkey-name")).to_have_value("")


def test_the_first_key_signs_the_page_in(dashboard: Dashboard) -> None:
    page, api = dashboard.page, dashboard.api
    api.keys = {"keys": []}  # no keys: no sign-in, the page is open on loopback
    dashboard.sign_out()
    dashboard.open("keys")
    expect(page.locator("#keys-hint")).to_be_visible()
    expect(page.locator("#signout")).to_be_hidden()
    expect(page.locator("#keys-table tbody tr")).to_have_text(["No client keys yet."])

    page.fill("#newkey-name", "me")
    page.click("#newkey-form button[type=submit]")
    expect(page.locator("#confirm-text")).to_contain_text("not an admin key")  # it would lock the page
    page.click("#confirm-cancel")
    assert api.posted("/api/keys") == []

    page.check("#newkey-admin")
    with page.expect_response(lambda r: r.url.endswith("/api/session")):
        dashboard.post("/api/keys", lambda: page.click("#newkey-form button[type=submit]"))
    assert api.posted("/api/session") == [{"key": NEW_KEY}]
    expect(page.locator("#newkey-value")).to_have_text(NEW_KEY)
    page.click("#newkey-close")
    expect(page.locator("#signout")).to_be_visible()
    expect(page.locator("#keys-hint")).to_be_hidden()
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    expect(page.locator("#signin")).to_be_hidden()


def test_revoking_a_key_posts_its_id(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open("keys")
    page.locator("tr[data-id=key-0001] button[data-action=revoke]").click()
    expect(page.locator("#confirm-text")).to_contain_text("laptop")
    sent = dashboard.post("/api/keys/revoke", lambda: page.click("#confirm-ok"))
    assert sent == {"id": "key-0001"}
    expect(page.locator("#keys-table tbody tr")).to_have_count(1)
    expect(page.locator("#keys-message")).to_have_text("Revoked laptop.")


def test_usage_charts(dashboard: Dashboard) -> None:
    page, api = dashboard.page, dashboard.api
    dashboard.open("usage")
    expect(page.locator("#usage-charts")).to_be_visible()
    assert [r.query for r in api.received if r.path == "/api/usage"] == [{"days": ["7"]}]
    week = usage_document(7)
    expect(page.locator("#usage-csv")).to_have_attribute("href", "/api/usage.csv?days=7")
    expect(page.locator("[data-stat=requests] .value")).to_have_text("280")
    expect(page.locator("[data-stat=requests] .sub")).to_have_text("6 errors")
    expect(page.locator("[data-stat=error-rate] .value")).to_have_text("2.1%")
    expect(page.locator("[data-stat=latency] .value")).to_have_text("820 ms / 2.40 s")
    expect(page.locator("[data-stat=ttft] .value")).to_have_text("410 ms")

    requests = page.locator("#chart-requests svg[role=img]")
    expect(requests).to_have_attribute("aria-label", "Requests per day")
    expect(requests.locator(":scope > title")).to_have_text("Requests per day")
    bars = requests.locator("g.bar")
    expect(bars).to_have_count(7)
    last = week["per_day"][-1]
    expect(bars.nth(6).locator("title")).to_have_text(f"{last['day']}: 70 requests, 0 errors")
    expect(bars.nth(1).locator("title")).to_have_text(f"{week['per_day'][1]['day']}: 20 requests, 1 error")
    expect(bars.nth(1).locator("rect.segment")).to_have_count(2)  # answered + errors, stacked
    expect(requests.locator(".axis-title")).to_have_text(["requests", "day (UTC)"])
    expect(requests.locator(".axis.x text")).to_contain_text([last["day"][5:]])

    tokens = page.locator("#chart-tokens svg g.bar")
    expect(tokens).to_have_count(7)
    expect(tokens.nth(0).locator("rect.segment")).to_have_count(3)  # prompt, completion, reasoning
    expect(tokens.nth(0).locator("title")).to_have_text(
        f"{week['per_day'][0]['day']}: 12,000 tokens "
        "(prompt 9,000, completion 3,000, of which reasoning 1,000)"
    )
    models = page.locator("#chart-models svg g.bar")
    expect(models).to_have_count(3)
    expect(models.nth(2).locator("title")).to_have_text(
        f"{HOSTILE}: 28 requests, 0 errors (0%), 33,600 tokens, p50 820 ms, p95 2.40 s"
    )
    expect(page.locator("#chart-keys svg g.bar")).to_have_count(2)
    expect(page.locator("#chart-accounts svg g.bar")).to_have_count(2)
    expect(page.locator("#chart-dialects svg g.bar")).to_have_count(3)
    latency = page.locator("#chart-latency svg g.bar title")
    expect(latency).to_have_text(
        ["p50: 820 ms", "p90: 1.90 s", "p95: 2.40 s", "p99: 5.10 s", "first token p50: 410 ms",
         "first token p95: 1.20 s"]
    )  # fmt: skip
    recent = page.locator("#usage-recent tbody tr")
    expect(recent).to_have_count(3)
    expect(recent.nth(1)).to_contain_text("rate_limit_exceeded")
    expect(recent.nth(1).locator(".state-error")).to_have_text("429")
    dashboard.shot("usage.png")

    page.click("#usage-range button[data-days='30']")
    expect(page.locator("#chart-requests svg g.bar")).to_have_count(30)
    expect(page.locator("#usage-csv")).to_have_attribute("href", "/api/usage.csv?days=30")
    expect(page.locator("#usage-range button[data-days='30']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#usage-range button[data-days='7']")).to_have_attribute("aria-pressed", "false")
    page.click("#usage-range button[data-days='1']")
    expect(page.locator("#chart-requests svg g.bar")).to_have_count(1)
    expect(page.locator("#usage-csv")).to_have_attribute("href", "/api/usage.csv?days=1")
    assert [r.query["days"] for r in api.received if r.path == "/api/usage"][-2:] == [["30"], ["1"]]


def test_usage_without_requests_says_so(dashboard: Dashboard) -> None:
    page, api = dashboard.page, dashboard.api
    api.usage_empty = True
    dashboard.open("usage")
    expect(page.locator("#usage-empty")).to_be_visible()
    expect(page.locator("#usage-empty")).to_contain_text(
        "Nothing went through the gateway in the last 7 days"
    )
    expect(page.locator("#usage-charts")).to_be_hidden()
    expect(page.locator("[data-stat=requests] .value")).to_have_text("0")
    expect(page.locator("[data-stat=latency] .value")).to_have_text("\N{EN DASH}")
    expect(page.locator("[data-stat=latency] .sub")).to_have_text("")
    assert page.locator("#usage-charts svg").count() == 0


def test_names_from_clients_stay_text(dashboard: Dashboard) -> None:
    page = dashboard.page
    dashboard.open()
    tables = {"overview": "#models", "accounts": "#accounts-table", "keys": "#keys-table"}
    for view, where in (*tables.items(), ("usage", "#usage-recent")):
        page.click(f"#tabs a[data-view={view}]")
        expect(page.locator(where)).to_contain_text(HOSTILE)
        assert page.locator("img").count() == 0
    expect(page.locator("#chart-models svg text.label").nth(2)).to_have_text(HOSTILE)
    expect(page.locator("#chart-models svg g.bar").nth(2)).to_have_attribute("data-name", HOSTILE)


def test_a_phone_screen_scrolls_nothing_sideways(dashboard: Dashboard) -> None:
    page = dashboard.page
    page.set_viewport_size({"width": 390, "height": 844})
    dashboard.open()
    for view in ("overview", "accounts", "keys", "usage"):
        page.click(f"#tabs a[data-view={view}]")
        expect(page.locator(f"#view-{view}")).to_be_visible()
        if view == "usage":
            expect(page.locator("#chart-requests svg")).to_be_visible()
            assert float(page.locator("#chart-requests svg").get_attribute("width") or 0) < 390
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    dashboard.shot("usage-phone.png")
