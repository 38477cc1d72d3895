"""Several real gateway processes sharing one PostgreSQL database and one Redis, in front of one fake.

    cluster = Cluster(tmp_path, postgres_url, redis_url)  # tests.pg_server, tests.redis_server
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
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import GatewayProcess, write_settings


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
