"""api.auth decisions (pure): which paths are exempt, the token and cookie checks, the proxy
header only from a trusted address, and the spec documenting 401s."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from runtime.api_config import ApiAuthConfig
from runtime.config import ConfigError
from sentinel.api.auth import AccessControl, document, exempt, token_check
from sentinel.web.session import TokenCheck

TOKEN = ApiAuthConfig(mode="token")
PROXY = ApiAuthConfig(mode="proxy", trusted_proxies=["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("path", "method", "free"),
    [
        ("/health", "GET", True),
        ("/ready", "GET", True),
        ("/api/webhooks/github", "POST", True),
        ("/api/runs/github:a/b:1:1/junit", "POST", True),
        ("/api/runs/github:a/b:1:1/junit", "GET", False),
        ("/static/style.css", "GET", True),
        ("/metrics", "GET", False),
        ("/api/runs", "GET", False),
        ("/runs", "GET", False),
        ("/api/silences", "POST", False),
    ],
)
def test_exempt_paths(path: str, method: str, free: bool) -> None:
    assert exempt(path, method, TOKEN) is free


def test_public_metrics_opens_only_metrics() -> None:
    config = ApiAuthConfig(mode="token", public_metrics=True)
    assert exempt("/metrics", "GET", config) and not exempt("/api/stats", "GET", config)


def test_token_and_cookie_checks() -> None:
    check = TokenCheck("s3cret")
    assert check.bearer("Bearer s3cret") and check.bearer("bearer  s3cret ")
    assert not check.bearer("Bearer nope") and not check.bearer("Basic s3cret")
    assert not check.bearer(None)
    assert check.cookie(check.session) and not check.cookie("s3cret")
    assert "s3cret" not in check.session


def test_token_mode_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="SENTINEL_API_TOKEN"):
        token_check(TOKEN)
    monkeypatch.setenv("SENTINEL_API_TOKEN", "abc")
    assert token_check(TOKEN) is not None
    assert token_check(ApiAuthConfig()) is None


def test_proxy_mode_needs_valid_trusted_addresses() -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        ApiAuthConfig(mode="proxy")
    with pytest.raises(ValidationError, match="not an IP address"):
        ApiAuthConfig(mode="proxy", trusted_proxies=["proxy.local"])


def call(control: AccessControl, path: str, client: str, headers: dict[str, str]) -> list[Any]:
    sent: list[Any] = []
    scope = {
        "type": "http",
        "path": path,
        "method": "GET",
        "query_string": b"",
        "client": (client, 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        sent.append(("app", scope.get("state", {}).get("user")))

    async def send(message: dict[str, Any]) -> None:
        sent.append(message.get("status"))

    control.app = app
    asyncio.run(control(scope, None, send))  # type: ignore[arg-type]
    return sent


def test_the_proxy_user_header_counts_only_from_a_trusted_proxy() -> None:
    control = AccessControl(None, PROXY, None)  # type: ignore[arg-type]
    assert call(control, "/api/runs", "10.1.2.3", {"X-Forwarded-User": "ana"}) == [("app", "ana")]
    assert call(control, "/api/runs", "127.0.0.1", {"X-Auth-Request-User": "bo"}) == [("app", "bo")]
    refused = call(control, "/api/runs", "192.168.1.9", {"X-Forwarded-User": "ana"})
    assert refused[0] == 401
    assert call(control, "/runs", "10.1.2.3", {})[0] == 401
    assert call(control, "/health", "192.168.1.9", {}) == [("app", None)]


def test_token_mode_sends_browsers_to_sign_in() -> None:
    control = AccessControl(None, TOKEN, TokenCheck("t"))  # type: ignore[arg-type]
    assert call(control, "/runs", "1.2.3.4", {})[0] == 303
    assert call(control, "/api/runs", "1.2.3.4", {})[0] == 401
    assert call(control, "/api/runs", "1.2.3.4", {"Authorization": "Bearer t"}) == [
        ("app", "token")
    ]
    cookie = f"sentinel_session={TokenCheck('t').session}"
    assert call(control, "/runs", "1.2.3.4", {"Cookie": cookie}) == [("app", "token")]


def test_the_spec_documents_401_and_the_bearer_scheme() -> None:
    spec: dict[str, Any] = {
        "paths": {
            "/api/runs": {"get": {"responses": {}}},
            "/health": {"get": {"responses": {}}},
            "/api/webhooks/github": {"post": {"responses": {}}},
        }
    }
    out = document(spec, TOKEN)
    assert "401" in out["paths"]["/api/runs"]["get"]["responses"]
    assert out["paths"]["/api/runs"]["get"]["security"] == [{"bearer": []}]
    assert "401" not in out["paths"]["/health"]["get"]["responses"]
    assert "401" not in out["paths"]["/api/webhooks/github"]["post"]["responses"]
    assert out["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
