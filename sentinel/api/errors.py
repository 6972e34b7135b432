"""Client mistakes as 4xx with a reason, documented in the OpenAPI spec.

Request validation errors are answered 400 (not FastAPI's 422) like every other client mistake
of this API, and the spec says so; a read that names nothing is 404.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentinel.api.auth import is_page
from sentinel.queries.common import BadRequest
from sentinel.views.service import NotFound

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    # Pydantic's lax mode also takes "0.5" (seconds since 1970) and times without an offset;
    # the spec says date-time (RFC 3339), so that is what is accepted.
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2026-02-03T07:00:00Z")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]


class Problem(BaseModel):
    """Why a request was refused: a sentence, or FastAPI's list of invalid parameters."""

    detail: str | list[dict[str, Any]]


BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a parameter is invalid; the detail says which"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such run (or pipeline)"}
}


def _answer(request: Request, status: int, detail: Any) -> Response:
    """JSON for the API; the error page for a page (`app.state.page_error`, set by the pages)."""
    page_error = getattr(request.app.state, "page_error", None)
    if page_error is not None and is_page(request.url.path):
        text = (
            detail
            if isinstance(detail, str)
            else "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in detail
            )
        )
        response: Response = page_error(request, status, text)
        return response
    return _AsciiJSON({"detail": detail}, status_code=status)


class _AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: an error echoes the client's input, which
    may hold what UTF-8 cannot encode (an unpaired surrogate sent as ``\\ud800``)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def allowed_methods(routes: Iterable[Any], path: str) -> list[str]:
    """Every method some route serves at `path` (Starlette's 405 names only the first route's).
    Walks included routers too (FastAPI keeps them as wrappers around the original router)."""
    methods: set[str] = set()
    for route in routes:
        regex, verbs = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and verbs and regex.match(path):
            methods |= set(verbs)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            methods |= set(allowed_methods(inner.routes, path))
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request.app.router.routes, request.url.path)
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{k: v for k, v in e.items() if k != "ctx"} for e in exc.errors()]
        return _answer(request, 400, jsonable_encoder(errors))

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return _answer(request, 400, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _answer(request, 404, str(exc))


def document_400_not_422(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as served: validation errors are 400 with a `Problem` body."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                del responses["422"]
                responses.setdefault(
                    "400",
                    {
                        "description": "a parameter is invalid; the detail says which",
                        "content": {"application/json": {"schema": problem_ref}},
                    },
                )
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if "Problem" not in schemas:
        schemas["Problem"] = Problem.model_json_schema()
    return spec
