"""Geometry of the pipeline page's charts (pure): failure rate per day as bars, run duration
p50 and p95 per day as two lines, in SVG user units."""

from __future__ import annotations

from dataclasses import dataclass, field

from sentinel.queries.models import TrendDay
from sentinel.web.fmt import duration

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 30


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[tuple[float, float, float, float, str]] = field(default_factory=list)
    lines: list[tuple[str, str, list[tuple[float, float, str]]]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    empty: bool = True


def _x_slots(days: list[TrendDay]) -> tuple[float, list[float]]:
    plot = WIDTH - LEFT - RIGHT
    slot = plot / max(len(days), 1)
    return slot, [LEFT + slot * i for i in range(len(days))]


def _labels(days: list[TrendDay], xs: list[float], slot: float) -> list[tuple[float, str]]:
    step = max(1, len(days) // 8)
    return [(xs[i] + slot / 2, days[i].day.strftime("%m-%d")) for i in range(0, len(days), step)]


def failure_rate_chart(days: list[TrendDay]) -> Chart:
    chart = Chart(empty=not days)
    plot_h = HEIGHT - TOP - BOTTOM
    slot, xs = _x_slots(days)
    for x, day in zip(xs, days, strict=True):
        h = plot_h * day.failure_rate
        title = f"{day.day}: {day.failed} of {day.runs} runs failed ({day.failure_rate:.0%})"
        chart.bars.append((x + slot * 0.15, TOP + plot_h - h, slot * 0.7, max(h, 0.5), title))
    chart.y_ticks = [(TOP + plot_h * (1 - f), f"{f:.0%}") for f in (0, 0.25, 0.5, 0.75, 1)]
    chart.x_labels = _labels(days, xs, slot)
    return chart


def duration_chart(days: list[TrendDay]) -> Chart:
    known = [d for d in days if d.duration_p95_s is not None or d.duration_p50_s is not None]
    chart = Chart(empty=not known)
    if not known:
        return chart
    top = max(max(d.duration_p95_s or 0, d.duration_p50_s or 0) for d in known) or 1.0
    plot_h = HEIGHT - TOP - BOTTOM
    slot, xs = _x_slots(days)
    for name, attr in (("p95", "duration_p95_s"), ("p50", "duration_p50_s")):
        points = []
        for x, day in zip(xs, days, strict=True):
            value = getattr(day, attr)
            if value is not None:
                y = TOP + plot_h * (1 - value / top)
                points.append((x + slot / 2, y, f"{day.day} {name}: {duration(value)}"))
        chart.lines.append((name, f"line-{name}", points))
    chart.y_ticks = [(TOP + plot_h * (1 - f), duration(top * f)) for f in (0, 0.5, 1)]
    chart.x_labels = _labels(days, xs, slot)
    return chart
