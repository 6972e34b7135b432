"""Rendering: the Jinja2 environment, the context every page gets, query-string parsing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from sentinel.queries.common import BadRequest, in_store_range
from sentinel.web import fmt

COMMON_ZONES = (
    "UTC",
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Kyiv",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("sentinel.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        dur=fmt.duration,
        signed=fmt.signed_duration,
        iso=fmt.iso,
        utc=fmt.utc_title,
        rel=fmt.relative,
    )
    env.globals.update(icon=lambda status: fmt.STATUS_ICONS.get(str(status), "•"))
    return env


class Query:
    """The query string of a page request, parsed with the same rules as the API's."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.params = request.query_params
        self.tz: ZoneInfo = fmt.zone(self.text("tz", 64))

    def text(self, name: str, max_length: int = 500) -> str | None:
        value = self.params.get(name)
        if value is None or value.strip() == "":
            return None
        if len(value) > max_length or "\x00" in value:
            raise BadRequest(f"{name}: at most {max_length} characters")
        return value.strip()

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.text(name, 64)
        if value is None:
            return default
        if value not in choices:
            raise BadRequest(f"{name}: expected one of {', '.join(choices)}")
        return value

    def number(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.text(name, 20)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise BadRequest(f"{name}: expected a whole number") from exc
        if not low <= number <= high:
            raise BadRequest(f"{name}: expected {low} to {high}")
        return number

    def time(self, name: str) -> datetime | None:
        value = self.text(name, 64)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise BadRequest(f"{name}: expected an RFC 3339 time") from exc
        return in_store_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), name)


class Renderer:
    def __init__(self) -> None:
        self.env = environment()

    def page(
        self, request: Request, template: str, context: Mapping[str, Any], status: int = 200
    ) -> HTMLResponse:
        query = request.query_params
        tz_name = query.get("tz") or "UTC"

        def url(path: str, **params: Any) -> str:
            """`path` with `params` (None dropped; an empty `line` is put last, for a line number
            to be appended), keeping the viewer's time zone."""
            open_line = params.pop("line", None) == ""
            merged = {k: v for k, v in params.items() if v is not None and v != ""}
            if tz_name != "UTC" and "tz" not in merged:
                merged["tz"] = tz_name
            query = urlencode(merged)
            if open_line:
                query = f"{query}&line=" if query else "line="
            return path + (f"?{query}" if query else "")

        def here(**changes: Any) -> str:
            """This page with some query parameters changed (None removes one)."""
            merged: dict[str, Any] = dict(query)
            merged.update(changes)
            return url(request.url.path, **merged)

        try:
            tz = fmt.zone(tz_name)
        except BadRequest:  # the error page about that very parameter still renders
            tz_name, tz = "UTC", fmt.zone(None)
        html = self.env.get_template(template).render(
            **{"refresh": None, **context},
            request=request,
            url=url,
            here=here,
            tz=tz,
            tz_name=tz_name,
            zones=COMMON_ZONES,
            local=lambda when, seconds=True: fmt.local(when, tz, seconds),
            now=datetime.now(UTC),
            user=request.scope.get("state", {}).get("user"),
            path=request.url.path,
        )
        return HTMLResponse(html, status_code=status)
