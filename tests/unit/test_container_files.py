"""The container files, checked without building anything: the Dockerfile, .dockerignore,
compose.yaml and the image's health check (docker/healthcheck.py, run against real sockets).

Building the image takes minutes and a registry or a bootstrapped base (scripts/build-image), so it
is not part of the suite; these checks catch what a change to the files could break.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from iflow2api.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = {setting.env_name for setting in SETTINGS}
UID = "10001"


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined.

    >>> instructions("FROM a AS b\\n# note\\nRUN x \\\\\\n    && y\\n")
    [('FROM', 'a AS b'), ('RUN', 'x && y')]
    """
    joined = re.sub(r"\s*\\\n(\s*#.*\n)*\s*", " ", text)
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def env_pairs(args: str) -> dict[str, str]:
    """An ENV line's variables, quotes removed.

    >>> env_pairs('A=1 B=$PATH C="x y"')
    {'A': '1', 'B': '$PATH', 'C': 'x y'}
    """
    return dict(word.partition("=")[::2] for word in shlex.split(args))


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text())


def final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    return dockerfile[last_from:]


def image_env(dockerfile: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in final_stage(dockerfile):
        if keyword == "ENV":
            env |= env_pairs(args)
    return env


def test_the_base_is_a_build_argument_used_by_every_stage(dockerfile: list[tuple[str, str]]) -> None:
    assert dockerfile[0] == ("ARG", "BASE=python:3.12-slim-bookworm")
    froms = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: the venv is built in one stage and copied into another"
    assert all(args.split()[0] == "${BASE}" for args in froms), froms
    copies = [args for keyword, args in final_stage(dockerfile) if keyword == "COPY"]
    assert any(args.startswith("--from=build /opt/iflow2api ") for args in copies), copies


def test_the_venv_is_made_with_python3_and_has_the_cluster_extra(dockerfile: list[tuple[str, str]]) -> None:
    """python3 -m venv works on python:slim and on Debian's python3 (/usr/bin/python3) alike."""
    runs = " ".join(args for keyword, args in dockerfile if keyword == "RUN")
    assert "python3 -m venv /opt/iflow2api" in runs
    assert re.search(r"pip install \S*\.\[cluster\]", runs), runs


def test_the_gateway_runs_as_a_fixed_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for keyword, args in final_stage(dockerfile) if keyword == "USER"]
    args = dict(a.partition("=")[::2] for keyword, a in final_stage(dockerfile) if keyword == "ARG")
    assert users, "the final stage must set a USER"
    user = users[-1].replace("${UID}", args.get("UID", "")).replace("${GID}", args.get("GID", ""))
    assert user == f"{UID}:{UID}", "numeric, so volumes can be prepared for it and runtimes check it"
    runs = " ".join(a for keyword, a in final_stage(dockerfile) if keyword == "RUN")
    assert '--uid "${UID}"' in runs and '--gid "${GID}"' in runs


def test_data_is_a_volume_writable_by_group_0(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    volumes = [json.loads(args) for keyword, args in stage if keyword == "VOLUME"]
    assert ["/data"] in volumes
    runs = " ".join(args for keyword, args in stage if keyword == "RUN")
    # Owned by the user and group 0, group-writable: an arbitrary UID in group 0 (OpenShift) writes.
    assert re.search(r'chown -R "\$\{UID\}:0" /data\b', runs), runs
    mode = re.search(r"chmod -R (\d{4}) /data\b", runs)
    assert mode and int(mode.group(1), 8) & 0o070 == 0o070, runs


def test_the_environment_points_everything_at_data(dockerfile: list[tuple[str, str]]) -> None:
    env = image_env(dockerfile)
    assert env["IFLOW2API_DATA_DIR"] == "/data"
    assert env["IFLOW_HOME"].startswith("/data/")
    assert env["HOME"] == "/home/app"
    # Read-only root filesystem: Python must not try to write bytecode next to the sources.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["IFLOW2API_HOST"] == "0.0.0.0"
    assert env["PATH"].startswith("/opt/iflow2api/bin:")


def test_every_gateway_variable_of_the_image_is_a_setting(dockerfile: list[tuple[str, str]]) -> None:
    """A renamed setting would leave the image configuring nothing, silently."""
    env = image_env(dockerfile)
    ours = {name for name in env if name.startswith(("IFLOW2API_", "IFLOW_"))}
    assert ours and ours <= ENV_NAMES, ours - ENV_NAMES


def test_the_exposed_port_is_the_one_the_gateway_listens_on(dockerfile: list[tuple[str, str]]) -> None:
    exposed = [args for keyword, args in final_stage(dockerfile) if keyword == "EXPOSE"]
    assert exposed == [image_env(dockerfile)["IFLOW2API_PORT"]]


def test_the_healthcheck_runs_the_script_with_python(dockerfile: list[tuple[str, str]]) -> None:
    stage = final_stage(dockerfile)
    checks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split(" CMD ", 1)[1])
    assert not {"curl", "wget"} & {Path(part).name for part in command}, "slim images have neither"
    assert command[0] == "/opt/iflow2api/bin/python"
    copied = [args.split() for keyword, args in stage if keyword == "COPY" and not args.startswith("--")]
    assert ["docker/healthcheck.py", command[1]] in copied
    assert (ROOT / "docker" / "healthcheck.py").is_file()
    assert stage[-1][0] == "CMD" and json.loads(stage[-1][1])[:2] == ["iflow2api", "serve"]


def test_dockerignore_keeps_what_the_build_copies(dockerfile: list[tuple[str, str]]) -> None:
    """.dockerignore excludes everything, then lets back in what the Dockerfile's COPY lines need."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            pattern = rule.lstrip("!").rstrip("/")
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
                keep = rule.startswith("!")
        return keep

    sources = [
        source
        for keyword, args in dockerfile
        if keyword == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    assert "src" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert included(source), f"{source} is copied by the Dockerfile but left out by .dockerignore"
    for kept_out in (".venv/bin/python", ".git/config", "tests/conftest.py", "src/x/__pycache__/a.pyc"):
        assert not included(kept_out), kept_out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def gateways(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items() if "build" in service}


def test_compose_runs_one_gateway_by_default(compose: dict[str, Any]) -> None:
    default = [name for name, service in compose["services"].items() if not service.get("profiles")]
    assert default == ["iflow2api"]
    service = compose["services"]["iflow2api"]
    assert service["ports"] == ["127.0.0.1:8000:8000"], "loopback only: published wider, it is open"
    assert any(volume.endswith(":/data") for volume in service["volumes"])
    assert "IFLOW2API_DATABASE_URL" not in service.get("environment", {})


def test_compose_cluster_has_two_gateways_on_healthy_postgres_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    cluster = {name for name, service in services.items() if "cluster" in service.get("profiles", [])}
    assert {"postgres", "redis"} <= cluster
    members = {name: service for name, service in gateways(compose).items() if name in cluster}
    assert len(members) == 2
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    urls = set()
    for service in members.values():
        env = service["environment"]
        assert env["IFLOW2API_DATABASE_URL"].startswith("postgresql://")
        assert env["IFLOW2API_DATABASE_URL"].split("@")[1].startswith("postgres:")
        assert env["IFLOW2API_REDIS_URL"].startswith("redis://redis:")
        urls.add((env["IFLOW2API_DATABASE_URL"], env["IFLOW2API_REDIS_URL"]))
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert len(urls) == 1, "the gateways of a cluster share one database and one Redis"
    names = [service["environment"]["IFLOW2API_INSTANCE_NAME"] for service in members.values()]
    assert len(set(names)) == 2, "each instance its own name, for /metrics' instance label"
    ports = [port for service in members.values() for port in service["ports"]]
    assert len(set(ports)) == len(ports) and all(port.startswith("127.0.0.1:") for port in ports)


def test_compose_gateways_are_read_only_with_rotated_logs(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["logging"]["options"]["max-size"], name
        assert int(service["logging"]["options"]["max-file"]) >= 2, name
    for name, service in gateways(compose).items():
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name
        env = service.get("environment", {})
        assert set(env) <= ENV_NAMES, (name, set(env) - ENV_NAMES)
        assert service["build"]["args"]["BASE"].endswith(":-python:3.12-slim-bookworm}")


def test_the_readmes_document_containers_and_several_instances() -> None:
    for readme, headings in (
        ("README.md", ("## Running several instances", "## Container")),
        ("README.zh-CN.md", ("## 运行多个实例", "## 容器")),
    ):
        text = (ROOT / readme).read_text()
        for heading in headings:
            assert f"\n{heading}\n" in text, (readme, heading)
        assert "bench/README.md#results-the-lease-round-trip" in text, readme  # item 9's numbers
        assert "docker compose --profile cluster up" in text, readme


# The health check script, run as the image runs it, against real sockets.


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "docker" / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8000/health"),
        ({"IFLOW2API_HOST": "0.0.0.0", "IFLOW2API_PORT": "9001"}, "http://127.0.0.1:9001/health"),
        ({"IFLOW2API_HOST": "::"}, "http://127.0.0.1:8000/health"),
        ({"IFLOW2API_HOST": "10.0.0.5"}, "http://10.0.0.5:8000/health"),
        ({"IFLOW2API_HOST": "fd00::5", "IFLOW2API_PORT": " 81 "}, "http://[fd00::5]:81/health"),
    ],
)
def test_healthcheck_asks_where_the_gateway_listens(
    healthcheck: ModuleType, env: dict[str, str], url: str
) -> None:
    assert healthcheck.health_url(env) == url


@pytest.fixture
def health_server() -> Iterator[tuple[int, list[int]]]:
    """A server answering /health with the status at the head of the list it yields."""
    statuses = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()


def run_check(port: int) -> subprocess.CompletedProcess[str]:
    env = {
        "IFLOW2API_PORT": str(port),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "docker" / "healthcheck.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_healthcheck_passes_on_200_and_fails_otherwise(health_server: tuple[int, list[int]]) -> None:
    port, statuses = health_server
    healthy = run_check(port)
    assert healthy.returncode == 0, healthy.stderr
    statuses[0] = 503
    unhealthy = run_check(port)
    assert unhealthy.returncode == 1
    assert "503" in unhealthy.stderr


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_check(port)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}/health" in result.stderr
