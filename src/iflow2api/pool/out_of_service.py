"""The error for a request that no account can serve because each is out of service: quarantined,
blocked, or waiting for a person to log in again. It says what to do, in the words of the first
account's reason (the same for all in the common case of one account)."""

from __future__ import annotations

from iflow2api.errors import AccountBlocked, GatewayError, NoAccountAvailable, NotLoggedIn, UpstreamAuthError
from iflow2api.pool.members import CHECK_FAILED, Member


def out_of_service(model: str, out: list[Member]) -> GatewayError:
    """The error for a request no account can serve because each is out of service: the first
    account's reason (the same for all in the common case of one), saying what to do."""
    reasons = "; ".join(
        f"{m.label} ({m.id}): "
        + (
            "its login needs a person"
            if m.shown_state() == "needs-login"
            else m.current_health().reason or ""
        )
        for m in out
    )
    first = out[0]
    code = "not_logged_in" if first.shown_state() == "needs-login" else first.current_health().code
    if code == "not_logged_in":
        return NotLoggedIn(
            f"Every account that serves '{model}' needs its iFlow login renewed by a person ({reasons}). "
            "Log in again with `iflow2api login` or on the gateway's page."
        )
    if code == CHECK_FAILED:
        return NoAccountAvailable(
            f"Every account that serves '{model}' failed its check ({reasons}). Fix it (its key or "
            "base URL), then run `iflow2api accounts test` or press Test on the gateway's page."
        )
    if code == "api_key_expired":
        return UpstreamAuthError(
            f"The API key of every account that serves '{model}' has expired and there is no login to "
            f"renew it ({reasons}). Log in again with `iflow2api login` (or /auth in the iFlow CLI), "
            "or give the account a new key on the gateway's page; a new key is used at once.",
            code="api_key_expired",
        )
    if code == "invalid_api_key":
        return UpstreamAuthError(
            f"The upstream refused the API key of every account that serves '{model}' ({reasons}). "
            "Give it a new key: log in again with `iflow2api login`, or edit the account on the "
            "gateway's page; a new key is used at once."
        )
    return AccountBlocked(
        f"The upstream has blocked every account that serves '{model}' ({reasons}). Add another "
        "account; once the upstream lifts the block, re-enable it with `iflow2api accounts enable "
        "<id>` or the reset on the gateway's page."
    )
