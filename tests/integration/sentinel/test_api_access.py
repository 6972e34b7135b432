"""api.auth over real HTTP (uvicorn on loopback, the embedded store): a bearer token, the
pages' sign-in cookie, a trusted proxy's user header; probes and webhooks keep their rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import APIRouter

from runtime.api_config import ApiAuthConfig
from runtime.config import Settings
from schemas.messages import RunState, RunStatus
from sentinel.api import create_api
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.rows import RUN_COLUMNS, run_state_to_row
from sinks.clickhouse.store import Store, open_store
from tests.support.helpers import ServerThread

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token"


def silences_router() -> APIRouter:
    """A write route as another router adds one (the alert dispatcher's silences)."""
    router = APIRouter()

    @router.post("/api/silences", status_code=201)
    async def add_silence() -> dict[str, str]:
        return {"id": "s1"}

    return router


@pytest.fixture
def store(make_settings: Callable[..., Settings]) -> Iterator[Store]:
    opened = open_store(make_settings())
    migrate(opened)
    run = RunState(
        run_id="github:acme/app:1:1",
        provider="github",
        provider_run_id="1",
        status=RunStatus.SUCCEEDED,
        first_event_at=T0,
        updated_at=T0,
    )
    opened.insert("runs", [run_state_to_row(run)], RUN_COLUMNS)
    try:
        yield opened
    finally:
        opened.close()


def serve(store: Store, config: ApiAuthConfig) -> ServerThread:
    app = create_api(
        store, broker_ready=lambda: True, extra_routers=[silences_router()], auth_config=config
    )
    return ServerThread(app)


def test_token_mode(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_API_TOKEN", TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serve(store, ApiAuthConfig(mode="token")) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        refused = client.get("/api/runs")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith(
            "Bearer"
        )
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/runs", headers=bearer).json()["items"][0]["run_id"]
        assert client.get("/metrics").status_code == 401
        for free in ("/health", "/ready", "/openapi.json", "/static/style.css"):
            assert client.get(free).status_code == 200, free
        # Webhook paths keep their own rules: api.auth lets them through to their routes
        # (none is served by this app: a 404 or a redirect, never api.auth's 401).
        for hook in ("/api/webhooks/generic", "/api/runs/github:acme/app:1:1/junit"):
            assert client.post(hook, content=b"{}").status_code in (307, 404), hook
        # A browser is sent to sign in, and comes back with a cookie that is not the token.
        page = client.get("/runs?status=failed")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fruns%3Fstatus%3Dfailed"
        assert client.post("/login", data={"token": "wrong", "next": "/runs"}).status_code == 401
        signed = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert signed.status_code == 303 and signed.headers["location"] == "/runs"
        cookie = signed.cookies["sentinel_session"]
        assert TOKEN not in cookie and "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        assert client.get("/runs").status_code == 200
        assert client.get("/api/runs").status_code == 200  # reads with the cookie
        # Writes need the header: the cookie alone cannot be used by another site's form.
        assert client.post("/api/silences").status_code == 401
        assert client.post("/api/silences", headers=bearer).status_code == 201
        spec = client.get("/openapi.json").json()
        assert spec["paths"]["/api/runs"]["get"]["security"] == [{"bearer": []}]


def test_token_mode_without_a_token_is_a_config_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.config import ConfigError

    monkeypatch.delenv("SENTINEL_API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"api\.auth"):
        create_api(store, broker_ready=lambda: True, auth_config=ApiAuthConfig(mode="token"))


def test_proxy_mode(store: Store) -> None:
    trusted = ApiAuthConfig(mode="proxy", trusted_proxies=["127.0.0.0/8"], public_metrics=True)
    user = {"X-Forwarded-User": "ana@example.com"}
    with serve(store, trusted) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/api/runs").status_code == 401
        assert client.get("/api/runs", headers=user).status_code == 200
        assert client.get("/api/runs", headers={"X-Auth-Request-User": "bo"}).status_code == 200
        assert client.post("/api/silences", headers=user).status_code == 201
        page = client.get("/runs", headers=user)
        assert page.status_code == 200 and "Signed in as ana@example.com" in page.text
        assert client.get("/runs").status_code == 401
        assert client.get("/metrics").status_code == 200  # public_metrics
    # The header from anywhere but the proxy counts for nothing.
    elsewhere = ApiAuthConfig(mode="proxy", trusted_proxies=["10.0.0.0/8"])
    with serve(store, elsewhere) as server:
        assert httpx.get(f"{server.url}/api/runs", headers=user).status_code == 401
