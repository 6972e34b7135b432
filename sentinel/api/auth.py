"""Access control (`api.auth`): none, a static bearer token, or a trusted proxy's user header.

One ASGI middleware in front of every route, so a router added later (alerts, silences) is
covered without doing anything. Exempt, whatever the mode: /health and /ready (probes), the
webhook and JUnit upload endpoints (their own tokens and signatures), the stylesheet and script,
the sign-in page, and the OpenAPI spec and its viewer (they hold no data); /metrics too with
`public_metrics`.

Token mode: ``Authorization: Bearer <token>`` on every request; browsers sign in once on
/login, which sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the
token). The cookie is accepted for GET and HEAD only: a write always needs the header (or the
proxy's user), so no other site can make a signed-in browser write.

Proxy mode (oauth2-proxy and the like): the first of `user_headers` present names the user,
believed only when the connection comes from `trusted_proxies` (the peer address as the socket
sees it: the CLI runs uvicorn without proxy_headers, so X-Forwarded-For cannot fake it).
"""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from ipaddress import ip_address
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.api_config import ApiAuthConfig, AuthMode
from runtime.config import ConfigError
from sentinel.web.session import SESSION_COOKIE, TokenCheck

_EXEMPT_PREFIXES = ("/api/webhooks/", "/static/")
_EXEMPT_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/login",
        "/logout",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/docs/oauth2-redirect",
        "/favicon.ico",
    }
)
_JUNIT = re.compile(r"^/api/runs/.+/junit$")
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def token_check(config: ApiAuthConfig) -> TokenCheck | None:
    """The token check of token mode (a ConfigError if no token is set), else None."""
    if config.mode != AuthMode.TOKEN:
        return None
    try:
        token = config.token()
    except OSError as exc:
        raise ConfigError("api.auth", [f"api.auth.token_file: not readable ({exc})"]) from exc
    if token is None:
        raise ConfigError(
            "api.auth",
            ["api.auth.mode: token needs a token in SENTINEL_API_TOKEN or api.auth.token_file"],
        )
    return TokenCheck(token.get_secret_value())


def exempt(path: str, method: str, config: ApiAuthConfig) -> bool:
    if path in _EXEMPT_PATHS or path.startswith(_EXEMPT_PREFIXES):
        return True
    if method == "POST" and _JUNIT.match(path):
        return True
    return path == "/metrics" and config.public_metrics


def is_page(path: str) -> bool:
    return not (path.startswith("/api/") or path == "/metrics")


class AccessControl:
    def __init__(self, app: ASGIApp, config: ApiAuthConfig, check: TokenCheck | None) -> None:
        self.app = app
        self.config = config
        self.check = check
        self.networks = config.networks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.config.mode == AuthMode.NONE:
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        user = None if exempt(path, method, self.config) else self.user(scope)
        if user is None and not exempt(path, method, self.config):
            await self.refuse(scope, send)
            return
        if user is not None:
            scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)

    def user(self, scope: Scope) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.config.mode == AuthMode.TOKEN:
            assert self.check is not None
            if self.check.bearer(headers.get("authorization")):
                return "token"
            if scope["method"] in _SAFE_METHODS:
                cookie = SimpleCookie(headers.get("cookie", ""))
                morsel = cookie.get(SESSION_COOKIE)
                if self.check.cookie(morsel.value if morsel else None):
                    return "token"
            return None
        return self.proxy_user(scope, headers)

    def proxy_user(self, scope: Scope, headers: dict[str, str]) -> str | None:
        client = scope.get("client")
        try:
            peer = ip_address(client[0]) if client else None
        except ValueError:
            peer = None
        if peer is None or not any(peer in net for net in self.networks):
            return None
        for name in self.config.user_headers:
            value = headers.get(name.lower(), "").strip()
            if value:
                return value
        return None

    async def refuse(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        if is_page(path) and scope["method"] in _SAFE_METHODS:
            if self.config.mode == AuthMode.TOKEN:
                query = scope.get("query_string", b"").decode("latin-1")
                target = path + (f"?{query}" if query else "")
                location = f"/login?next={quote(target, safe='')}"
                await _respond(send, 303, b"", [(b"location", location.encode())])
                return
            body = b"<!doctype html><title>Sign in</title><p>Sign in through the proxy.</p>"
            await _respond(send, 401, body, [(b"content-type", b"text/html; charset=utf-8")])
            return
        detail = (
            "missing or wrong bearer token (Authorization: Bearer <token>)"
            if self.config.mode == AuthMode.TOKEN
            else "not signed in: no user header from a trusted proxy"
        )
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        if self.config.mode == AuthMode.TOKEN:
            headers.append((b"www-authenticate", b'Bearer realm="sentinel"'))
        await _respond(send, 401, json.dumps({"detail": detail}).encode(), headers)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def document(spec: dict[str, Any], config: ApiAuthConfig) -> dict[str, Any]:
    """The spec with the 401s (and the bearer scheme) of the protected operations."""
    if config.mode == AuthMode.NONE:
        return spec
    if config.mode == AuthMode.TOKEN:
        schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if exempt(path, method.upper(), config) or _JUNIT.match(path):
                continue
            if config.mode == AuthMode.TOKEN:
                operation["security"] = [{"bearer": []}]
            operation.setdefault("responses", {}).setdefault(
                "401",
                {
                    "description": "not signed in",
                    "content": {"application/json": {"schema": problem}},
                },
            )
    return spec
