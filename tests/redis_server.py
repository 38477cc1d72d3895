"""A private ``redis-server`` for the tests: a free loopback port, a temp dir, no persistence.

One server serves the whole session (``redis_server``); ``redis_url`` hands each test an empty one
(FLUSHALL first). ``stop()`` and ``start()`` let a test take Redis away and bring it back on the same
port, as an outage does; ``pause()`` freezes it (SIGSTOP), so a client meets a server that accepts
but never answers. Never a system server: the tests must not read or wipe someone's data.

    server = RedisServer(tmp_dir)
    server.start()          # redis://127.0.0.1:<port>/0
    server.stop()           # calls now fail fast
    server.start()          # same port, empty
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again) on its port, and return once it answers PING."""
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        log = (self.directory / "redis.log").open("a")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server did not start:\n" + self.log())
            try:
                with redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                    if client.ping():
                        return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING:\n" + self.log())

    def stop(self) -> None:
        """Kill it at once (an outage, not a shutdown): its clients' sockets are closed."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze it: connections are accepted by the kernel, nothing is ever answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def flush(self) -> None:
        with redis.Redis(port=self.port, socket_timeout=2) as client:
            client.flushall()

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """An empty Redis for this test; running again if an earlier test stopped it."""
    if redis_server.process is None:
        redis_server.start()
    else:
        redis_server.resume()
    redis_server.flush()
    return redis_server.url
