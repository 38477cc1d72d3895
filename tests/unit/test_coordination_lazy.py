"""One process without ``redis_url`` must not need the cluster extra: the gateway imports its Redis
client (and PostgreSQL's) only when a URL asks for them."""

from __future__ import annotations

import subprocess
import sys

LOADED = (
    "import sys, iflow2api.cli, iflow2api.app, iflow2api.coordination\n"
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'psycopg', 'psycopg_pool'}))\n"
)


def test_the_gateway_imports_no_cluster_driver_until_asked() -> None:
    out = subprocess.run([sys.executable, "-c", LOADED], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
