"""``iflow2api serve --workers N``: N gateway processes on one listening socket.

The parent binds the socket once and hands it to N processes (started fresh, ``spawn``: a forked
copy of a parent that already made threads is not safe); the kernel spreads the connections over
them. Each worker is a whole gateway with its own pool and key ring, so the workers agree through
the coordination store (``redis_url``): one in flight per account, key limits, one refresher. They
share the state store as several instances would (SQLite in WAL mode lets one writer at a time in
and makes the others wait up to its ``busy_timeout``; PostgreSQL with ``database_url``).

Each worker runs in a process group of its own, so a Ctrl+C in the terminal reaches only the parent,
which passes every stop signal on once, as SIGTERM: the first is each worker's graceful stop, a
second ends their open requests at once (as for one process, ``Gateway.stop_soon``). A worker that
dies is started again, unless it failed while starting (it would fail the same way again), after a
pause that doubles while it keeps crashing soon after its start (``Restarts``); after
``GIVE_UP`` such quick crashes in a row the parent stops the others and exits with an error.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.context import SpawnProcess
from types import FrameType

from iflow2api.instances import instance_name
from iflow2api.settings import Settings

log = logging.getLogger("iflow2api")

#: uvicorn's exit code for a server that could not start (``uvicorn.config.STARTUP_FAILURE``).
STARTUP_FAILURE = 3


#: The pause before a crashed worker is started again doubles from the first to the last.
FIRST_PAUSE, LAST_PAUSE = 0.5, 30.0
#: A worker that ends within this many seconds of its start crashed "quickly".
QUICK = 10.0
#: Quick crashes in a row of one worker after which the parent gives up.
GIVE_UP = 5


class Restarts:
    """One worker's crashes: how long to wait before starting it again, or whether to give up."""

    def __init__(self) -> None:
        self.quick_in_a_row = 0

    def after_crash(self, lived: float) -> float | None:
        """The pause before the next start of a worker that ran ``lived`` seconds; None: give up.

        >>> restarts = Restarts()
        >>> [restarts.after_crash(1.0) for _ in range(5)]
        [0.5, 1.0, 2.0, 4.0, None]
        """
        # A worker that served a while before it ended starts a new streak (and the short pause).
        self.quick_in_a_row = self.quick_in_a_row + 1 if lived < QUICK else 1
        if self.quick_in_a_row >= GIVE_UP:
            return None
        return min(LAST_PAUSE, FIRST_PAUSE * 2.0 ** (self.quick_in_a_row - 1))


def worker_name(settings: Settings, index: int, parent_pid: int) -> str:
    """Worker ``index``'s instance name: the configured name (or host name and the parent's pid,
    unique on this machine) with the worker's number.

    >>> from iflow2api.settings import load
    >>> worker_name(load(env={"IFLOW2API_INSTANCE_NAME": "gw"}, config_path=None), 2, 40)
    'gw-w2'
    """
    return f"{instance_name(settings.instance_name, pid=parent_pid)}-w{index}"


def run_worker(settings: Settings, sock: socket.socket) -> None:
    """One worker: a whole gateway serving ``sock`` (the parent's), until a stop signal."""
    os.setpgrp()  # the terminal's Ctrl+C is for the parent, which passes it on once
    from iflow2api import logs
    from iflow2api.app import create_app
    from iflow2api.cli.serve import server, uvicorn_config

    logs.setup(settings.log_level)
    # uvicorn raises the stop signal again once it has stopped, for the handler that was there
    # before it: the default one would kill the worker before its last log lines are written.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped)
    app = create_app(settings)
    server(uvicorn_config(settings, app), app).run(sockets=[sock])


def _stopped(_number: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)  # a normal exit: the log's writer thread finishes (``logs.stop`` at exit)


class Workers:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self._settings = settings
        self._sock = sock
        self._spawn = multiprocessing.get_context("spawn")
        self._processes: list[SpawnProcess] = []
        self._signals: list[int] = []

    def _start(self, index: int) -> SpawnProcess:
        # Inside, a worker is one gateway process like any other, under a name of its own.
        name = worker_name(self._settings, index, os.getpid())
        settings = self._settings.replace(instance_name=name, workers=1)
        process = self._spawn.Process(
            target=run_worker, args=(settings, self._sock), name=f"iflow2api-w{index}", daemon=False
        )
        process.start()
        return process

    def run(self) -> int:
        """Start the workers and watch them until a stop signal; the exit code for the command."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, _frame: self._signals.append(number))
        self._processes = [self._start(index) for index in range(1, self._settings.workers + 1)]
        log.info(
            "started %d workers: %s", len(self._processes), ", ".join(str(p.pid) for p in self._processes)
        )
        started = [time.monotonic()] * len(self._processes)
        restarts = [Restarts() for _ in self._processes]
        #: Workers that ended, by index: when (``time.monotonic``) to start them again.
        due: dict[int, float] = {}
        code = 0
        while not self._signals:
            time.sleep(0.2)
            for index, process in enumerate(self._processes):
                if self._signals:
                    break
                if index in due:
                    if time.monotonic() >= due[index]:
                        del due[index]
                        self._processes[index], started[index] = self._start(index + 1), time.monotonic()
                        log.info("started worker %d again: %s", index + 1, self._processes[index].pid)
                    continue
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker %s could not start; stopping the others", process.pid)
                    self._signals.append(signal.SIGTERM)
                    code = 1
                    break
                pause = restarts[index].after_crash(time.monotonic() - started[index])
                if pause is None:
                    log.error(
                        "worker %d crashed %d times in a row, each within %g s of its start; "
                        "giving up: stopping the others (see the log lines above for why it crashed)",
                        index + 1,
                        GIVE_UP,
                        QUICK,
                    )
                    self._signals.append(signal.SIGTERM)
                    code = 1
                    break
                log.warning(
                    "worker %s ended (exit code %s); starting another in %g s",
                    process.pid,
                    process.exitcode,
                    pause,
                )
                due[index] = time.monotonic() + pause
        return self._stop(code)

    def _stop(self, code: int) -> int:
        passed = 0
        while any(process.is_alive() for process in self._processes):
            # Each stop signal the parent got goes to every worker once (the first is graceful).
            while passed < len(self._signals):
                passed += 1
                for process in self._processes:
                    if process.is_alive() and process.pid is not None:
                        os.kill(process.pid, signal.SIGTERM)
            time.sleep(0.1)
        for process in self._processes:
            process.join()
        return code
