"""Token mode's check and the sign-in cookie of the pages (see sentinel.api.auth)."""

from __future__ import annotations

import hashlib
import hmac

SESSION_COOKIE = "sentinel_session"


class TokenCheck:
    """The configured token: compares a presented one, and makes / checks the session cookie."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self.session = hmac.new(self._token, b"sentinel-session-v1", hashlib.sha256).hexdigest()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(self._token, presented.strip().encode("utf-8", "replace"))

    def bearer(self, authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").strip().partition(" ")
        return scheme.lower() == "bearer" and self.matches(given)

    def cookie(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(self.session, value)
