"""The HTTP app: operations, the read API, the pages, and whatever routers the caller adds
(webhooks, JUnit uploads, alerts and silences)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from runtime.api_config import ApiAuthConfig
from sentinel.api import auth, errors
from sentinel.api.catalog import catalog_router
from sentinel.api.ops import ops_router, package_version
from sentinel.api.runs import runs_router
from sentinel.kafka_offsets import OffsetsProbe
from sentinel.views.reader import Reader, RunStore
from sentinel.views.service import ReadService


def create_api(
    store: RunStore,
    broker_ready: Callable[[], bool],
    page_size_max: int = 500,
    extra_routers: list[APIRouter] | None = None,
    *,
    auth_config: ApiAuthConfig | None = None,
    offsets: OffsetsProbe | None = None,
    pages: bool = True,
    components: Callable[[], Mapping[str, str]] | None = None,
) -> FastAPI:
    """The app over `store`. `auth_config` (default: none) guards pages, the read API and the
    writes of `extra_routers`; `offsets` feeds /api/stats and the lag metrics from the broker;
    `components` adds to /ready what else must run (`sentinel up`'s supervised children)."""
    auth_config = auth_config or ApiAuthConfig()
    check = auth.token_check(auth_config)
    app = FastAPI(
        title="Automation Run Sentinel",
        version=package_version(),
        description="Runs of CI and test automation: their stages, pods, tests, logs and the "
        "anomalies found in them. Pages for people at /runs.",
    )
    errors.install(app)
    reader = Reader(store)
    service = ReadService(reader)
    app.include_router(ops_router(reader, broker_ready, offsets, components))
    app.include_router(runs_router(service, page_size_max))
    app.include_router(catalog_router(service, page_size_max))
    if pages:
        from sentinel.web.routes import mount_pages

        mount_pages(app, service, check)
    for router in extra_routers or []:
        app.include_router(router)
    app.add_middleware(auth.AccessControl, config=auth_config, check=check)
    _serve_documented_spec(app, auth_config)
    return app


def _serve_documented_spec(app: FastAPI, config: ApiAuthConfig) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = auth.document(errors.document_400_not_422(spec), config)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
