"""The page's files as the gateway serves them: every ES module under ``/static/``, and nothing else.

The page's behaviour is for the browser tests (``test_dashboard_ui.py``); these check the serving:
content types, caching, that the modules form one closed graph from ``app.js``, and that no other
path under ``/static/`` reaches a file.
"""

from __future__ import annotations

import http.client
import importlib.resources
import re
import urllib.parse

import httpx
import pytest

from iflow2api.routes.web import PAGE_FILES, PAGE_PATHS
from tests.conftest import GatewayProcess

TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css",
    "json": "application/json",
}
#: The modules' static imports (the page has no dynamic ones): ``from "./dom.js"``.
IMPORT = re.compile(r'^(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)";', re.MULTILINE | re.DOTALL)


def source(name: str) -> str:
    return importlib.resources.files("iflow2api.web").joinpath(name).read_text()


def test_every_page_file_is_served_with_its_type_and_no_caching(gateway: GatewayProcess) -> None:
    for path, name in zip(PAGE_PATHS, PAGE_FILES, strict=True):
        response = httpx.get(gateway.url + path, timeout=5)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == TYPES[name.rsplit(".", 1)[1]], path
        assert response.headers["cache-control"] == "no-store", path
        assert response.content == importlib.resources.files("iflow2api.web").joinpath(name).read_bytes()


def test_the_html_loads_only_the_entry_module() -> None:
    scripts = re.findall(r"<script\b[^>]*>", source("index.html"))
    assert scripts == ['<script type="module" src="/static/app.js">'], "no inline or classic scripts"


def test_the_modules_are_type_checked_and_form_one_graph_from_app_js() -> None:
    modules = [name for name in PAGE_FILES if name.endswith(".js")]
    shipped = sorted(
        entry.name
        for entry in importlib.resources.files("iflow2api.web").iterdir()
        if entry.name.endswith(".js")
    )
    assert sorted(modules) == shipped, "every module in iflow2api/web is served, and only those"
    reached, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        text = source(name)
        assert text.startswith("// @ts-check\n"), name
        reached.add(name)
        for target in IMPORT.findall(text):
            assert target.startswith("./") and target.endswith(".js"), (name, target)
            assert target[2:] in modules, f"{name} imports {target}, which the gateway does not serve"
            todo.append(target[2:])
    assert reached == set(modules), "a module nothing imports"


@pytest.mark.parametrize(
    "path",
    [
        "/static/nothing.js",
        "/static/api.py",
        "/static/__init__.py",
        "/static/index.html",
        "/static/",
        "/static/app.js/",
        "/static/../routes/web.py",
        "/static/%2e%2e/routes/web.py",
        "/static//etc/passwd",
        "/app.js",
    ],
)
def test_no_other_path_reaches_a_file(gateway: GatewayProcess, path: str) -> None:
    # http.client sends the path exactly as written (no dot segments removed on the way).
    address = urllib.parse.urlsplit(gateway.url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 404, (path, body)
    assert response.getheader("content-type") == "application/json"
    error = httpx.Response(404, content=body).json()["error"]
    assert error["code"] == "not_found" and error["type"] == "invalid_request_error", error
