"""Several real gateway processes sharing one PostgreSQL database and one Redis, in front of one fake.

    cluster = Cluster(tmp_path, database_url, redis_url)
    a, b, c = cluster.start(3, iflow_settings(fake))
    httpx.post(a.url + "/v1/chat/completions", json=CHAT)
    cluster.stop()

Every instance reads the same iFlow folder (one settings.json, one oauth_creds.json), so they all
serve the same CLI account under the same id, and the fake tells its requests apart only by key:
exactly the situation where one request in flight per account has to hold across processes. Each
instance has a data folder of its own (logs, nothing shared by accident) and its own name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import GatewayProcess, write_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}


class Cluster:
    """Gateways started together on one database and one Redis; ``stop()`` ends those still running."""

    def __init__(
        self, root: Path, database_url: str, redis_url: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.root = root
        self.iflow_home = root / "iflow"
        self.iflow_home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "IFLOW2API_DATABASE_URL": database_url,
            "IFLOW2API_REDIS_URL": redis_url,
            **(env or {}),
        }
        self.gateways: list[GatewayProcess] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``iflow2api ARGS`` against the cluster's database, as an operator runs it."""
        env = {
            **base_env(),
            **self.env,
            "IFLOW_HOME": str(self.iflow_home),
            "IFLOW2API_DATA_DIR": str(self.root / "cli-data"),
        }
        return subprocess.run(
            [sys.executable, "-m", "iflow2api", *args], env=env, capture_output=True, text=True, timeout=60
        )

    def create_key(self, name: str, *options: str) -> str:
        """A client key made with ``iflow2api keys create``, stored in the shared database."""
        done = self.cli("keys", "create", name, *options)
        keys = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("sk-i2a-")]
        assert done.returncode == 0 and len(keys) == 1, done.stdout + done.stderr
        return keys[0]

    def start(
        self,
        count: int,
        settings: dict[str, Any] | None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> list[GatewayProcess]:
        """Start ``count`` instances at once (as a deployment does), each healthy when returned."""
        if settings is not None:
            write_settings(self.iflow_home, settings)
        first = len(self.gateways)
        names = [f"node{first + number}" for number in range(count)]
        with ThreadPoolExecutor(count) as starting:
            started = list(starting.map(lambda name: self._start_one(name, env or {}, args), names))
        self.gateways += started
        return started

    def _start_one(self, name: str, env: Mapping[str, str], args: Sequence[str]) -> GatewayProcess:
        full_env = {**self.env, "IFLOW2API_INSTANCE_NAME": name, **env}
        gateway = GatewayProcess(self.iflow_home, self.root / f"data-{name}", full_env, args=args)
        gateway.wait_for_health()
        return gateway

    def kill(self, gateway: GatewayProcess) -> None:
        """SIGKILL: no shutdown code runs, so nothing it held is given back by it."""
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait(timeout=10)

    def stop(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.gateways))) as stopping:
            list(stopping.map(GatewayProcess.stop, self.gateways))
        self.gateways.clear()

    def creds(self) -> dict[str, Any]:
        return dict(json.loads((self.iflow_home / "oauth_creds.json").read_text()))


# --- private servers, until tests/redis_server.py and tests/pg_server.py land ----------------------


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within 20 s")


class PrivateRedis:
    """A redis-server of the tests' own on a free loopback port, that can be stopped and started
    again on the same port (its data goes with it: no dump, no append-only file)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="i2a-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.dir)]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, self._process, "redis-server")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], check=True, capture_output=True)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of the tests' own (initdb, pg_ctl) on a free loopback port; as the
    ``postgres`` user when run as root, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="i2a-pg-"))
        self._databases = 0

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=60)

    def start(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        binaries = Path("/usr/lib/postgresql/15/bin")
        data = str(self.dir / "data")
        self._run(str(binaries / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(binaries / "pg_ctl"), "-D", data, "-o", options, "-w", "-l", str(self.dir / "log"), "start"
        )
        return self

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"i2a_{self._databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        binaries = Path("/usr/lib/postgresql/15/bin")
        try:
            self._run(str(binaries / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
