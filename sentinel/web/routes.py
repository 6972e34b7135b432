"""The pages: runs list, run page (timeline and tabs), pipelines, one pipeline, flaky tests,
and the sign-in page of token mode. Handlers only parse, call `ReadService`, and render."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from schemas.messages import RunStatus
from sentinel.queries import logs as lq
from sentinel.queries import tests as tq
from sentinel.queries.common import decode_cursor, encode_cursor
from sentinel.run_queries import RunFilters
from sentinel.views.service import ReadService, RunData
from sentinel.web.charts import duration_chart, failure_rate_chart
from sentinel.web.pages import Query, Renderer
from sentinel.web.session import SESSION_COOKIE, TokenCheck
from sentinel.web.timeline_svg import layout

STATUSES = tuple(status.value for status in RunStatus)
TABS = ("anomalies", "tests", "logs", "compare")
LOG_LEVELS = ("error", "warning", "all")
LOG_PAGE = 300
TESTS_PAGE = 100
LINE_CONTEXT = 40
RUNS_PAGE = 50


def mount_pages(app: FastAPI, service: ReadService, check: TokenCheck | None) -> None:
    renderer = Renderer()
    app.state.page_error = lambda request, status, detail: renderer.page(
        request, "error.html", {"status": status, "detail": detail}, status
    )
    app.mount("/static", StaticFiles(packages=[("sentinel.web", "static")]), name="static")
    router = APIRouter(include_in_schema=False)
    _runs_pages(router, service, renderer)
    _catalog_pages(router, service, renderer)
    if check is not None:
        _login_pages(router, renderer, check)
    app.include_router(router)


def _runs_pages(router: APIRouter, service: ReadService, renderer: Renderer) -> None:
    @router.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/runs", status_code=307)

    @router.get("/runs", response_class=HTMLResponse)
    async def runs_page(request: Request) -> HTMLResponse:
        q = Query(request)
        filters = RunFilters(
            status=q.choice("status", STATUSES),
            provider=q.text("provider"),
            repository=q.text("repository"),
            pipeline=q.text("pipeline"),
            branch=q.text("branch"),
        )
        refresh = q.number("refresh", 5, 3600)
        page = await service.runs(filters, RUNS_PAGE, q.text("cursor", 2000))
        return renderer.page(
            request,
            "runs.html",
            {"page": page, "filters": filters, "statuses": STATUSES, "refresh": refresh},
        )

    @router.get("/runs/{run_id:path}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> HTMLResponse:
        q = Query(request)
        tab = q.choice("tab", TABS, "anomalies") or "anomalies"
        start, end = q.time("from"), q.time("to")
        data = await service.run_data(run_id, tests=tab in ("tests", "compare"))
        timeline = await service.timeline(data, start, end)
        context: dict[str, Any] = {
            "run": data.run,
            "data": data,
            "tab": tab,
            "timeline": timeline,
            "svg": layout(timeline, q.tz),
            "zoom": _zoom_links(timeline),
            "counts": data.test_counts,
            "errors": sum(1 for line in data.lines if lq.is_error(line)),
            "refresh": _run_refresh(q, data),
        }
        if tab == "tests":
            context.update(_tests_tab(q, data))
        elif tab == "logs":
            context.update(_logs_tab(q, data))
        elif tab == "compare":
            context["comparison"] = await service.compare(data, q.text("with", 1000))
        return renderer.page(request, "run.html", context)


def _run_refresh(q: Query, data: RunData) -> int | None:
    """Seconds between reloads of an active run's page (default 15; refresh=0 turns it off);
    none once the run has ended."""
    if data.run.status.terminal:
        return None
    seconds = q.number("refresh", 0, 3600, 15)
    return seconds or None


def _zoom_links(timeline: Any) -> dict[str, dict[str, str] | None]:
    start, end = timeline.window_start, timeline.window_end
    span = end - start
    mid = start + span / 2

    def clip(a: Any, b: Any) -> dict[str, str] | None:
        a, b = max(a, timeline.start), min(b, timeline.end)
        return {"from": a.isoformat(), "to": b.isoformat()} if b > a else None

    zoomed = start > timeline.start or end < timeline.end
    return {
        "in": clip(mid - span / 4, mid + span / 4) if span > timedelta(seconds=2) else None,
        "out": clip(mid - span, mid + span) if zoomed else None,
        "left": clip(start - span / 2, end - span / 2) if start > timeline.start else None,
        "right": clip(start + span / 2, end + span / 2) if end < timeline.end else None,
        "reset": {} if zoomed else None,
    }


def _tests_tab(q: Query, data: RunData) -> dict[str, Any]:
    status = q.choice("status", tq.STATUS_FILTERS)
    text = q.text("q")
    cursor = q.text("cursor", 2000)
    after = decode_cursor(cursor, (int, str)) if cursor else None
    chosen = [case for case in data.tests if tq.matches(case, status, text)]
    cases, last = tq.page(chosen, after, TESTS_PAGE)
    return {
        "cases": cases,
        "test_status": status,
        "test_q": text,
        "tests_next": encode_cursor(*last) if last else None,
        "tests_shown": len(chosen),
    }


def _logs_tab(q: Query, data: RunData) -> dict[str, Any]:
    line = q.number("line", 1, 10**9)
    level = q.choice("level", LOG_LEVELS, "all" if line else "error")
    filters = lq.LogFilters(
        level=None if level == "all" else level,
        q=q.text("q"),
        template_id=q.text("template", 200),
        pod=q.text("pod", 253),
    )
    after = lq.after_for(line, LINE_CONTEXT) if line else 0
    cursor = q.text("cursor", 200)
    if cursor:
        after = decode_cursor(cursor, (int,))[0]
    items, last = lq.page(data.lines, filters, after, LOG_PAGE)
    return {
        "lines": items,
        "log_level": level,
        "log_filters": filters,
        "log_next": encode_cursor(last) if last is not None else None,
        "log_start": after,
        "templates": lq.template_counts(line for line in data.lines if lq.is_error(line))[:20],
        "target_line": line,
        "total_lines": len(data.lines),
    }


def _catalog_pages(router: APIRouter, service: ReadService, renderer: Renderer) -> None:
    @router.get("/pipelines", response_class=HTMLResponse)
    async def pipelines_page(request: Request) -> HTMLResponse:
        q = Query(request)
        days = q.number("days", 1, 3650, 30) or 30
        pipelines = await service.pipelines(days, 500)
        return renderer.page(request, "pipelines.html", {"pipelines": pipelines, "days": days})

    @router.get("/pipelines/{name:path}", response_class=HTMLResponse)
    async def pipeline_page(request: Request, name: str) -> HTMLResponse:
        q = Query(request)
        days = q.number("days", 1, 3650, 30) or 30
        trends = await service.trends(name, q.text("repository"), days, 10)
        context = {
            "trends": trends,
            "days": days,
            "failure_chart": failure_rate_chart(trends.daily),
            "duration_chart": duration_chart(trends.daily),
        }
        return renderer.page(request, "pipeline.html", context)

    @router.get("/tests/flaky", response_class=HTMLResponse)
    async def flaky_page(request: Request) -> HTMLResponse:
        q = Query(request)
        days = q.number("days", 1, 3650, 30) or 30
        pipeline = q.text("pipeline")
        tests = await service.flaky(days, pipeline, 200)
        return renderer.page(
            request, "flaky.html", {"tests": tests, "days": days, "pipeline": pipeline}
        )


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never "//host" or "https://host" (an open redirect).
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


def _login_pages(router: APIRouter, renderer: Renderer, check: TokenCheck) -> None:
    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> HTMLResponse:
        target = _safe_next(request.query_params.get("next"))
        return renderer.page(request, "login.html", {"next": target, "failed": False})

    @router.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        body = (await request.body())[:8192].decode("utf-8", "replace")
        form = parse_qs(body)
        target = _safe_next(form.get("next", [""])[0])
        if not check.matches((form.get("token") or [""])[0]):
            return renderer.page(request, "login.html", {"next": target, "failed": True}, 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            check.session,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout", response_model=None)
    async def logout() -> Response:
        response = RedirectResponse(f"/login?next={quote('/runs')}", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response
