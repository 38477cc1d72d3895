"""The image's HEALTHCHECK: exit 0 when the gateway in this container answers ``GET /health``.

Standard library only, and no curl: slim images have none. It asks the address and port the gateway
was told to listen on (``IFLOW2API_HOST``, ``IFLOW2API_PORT``), loopback when that is every address.
/health is the one path that needs no client key, and it answers 200 whether or not an account
serves yet, so a fresh container is healthy and its page reachable to add the first account.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

#: Addresses that mean "every interface": asked on loopback, which they include.
_EVERYWHERE = {"", "0.0.0.0", "::", "[::]"}


def health_url(env: dict[str, str]) -> str:
    """>>> health_url({"IFLOW2API_PORT": "9000"})
    'http://127.0.0.1:9000/health'
    >>> health_url({"IFLOW2API_HOST": "::1"})
    'http://[::1]:8000/health'
    """
    host = env.get("IFLOW2API_HOST", "").strip()
    if host in _EVERYWHERE:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = env.get("IFLOW2API_PORT", "").strip() or "8000"
    return f"http://{host}:{port}/health"


def main() -> int:
    url = health_url(dict(os.environ))
    # No proxy: a container's HTTP_PROXY must not carry a check of its own loopback elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:  # HTTPError is a URLError: a non-2xx answer
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"healthy: {url}: {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
