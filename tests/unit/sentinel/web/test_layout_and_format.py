"""What the pages draw and print: timeline geometry, charts, durations, times, zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sentinel.queries.common import BadRequest
from sentinel.queries.models import (
    AnomalyMarker,
    DensityBucket,
    PodLane,
    PodPhase,
    PodTick,
    StageBar,
    Timeline,
    TrendDay,
)
from sentinel.web import fmt
from sentinel.web.charts import duration_chart, failure_rate_chart
from sentinel.web.timeline_svg import LABEL_W, WIDTH, layout

T0 = datetime(2026, 2, 3, 7, 0, tzinfo=UTC)
UTC_ZONE = fmt.zone(None)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def timeline(start: float = 0, end: float = 100, status: str = "failed") -> Timeline:
    return Timeline(
        run_id="r",
        status=status,
        start=T0,
        end=at(100),
        window_start=at(start),
        window_end=at(end),
        bucket_s=10,
        stages=[StageBar(stage_id="1", name="build", status="succeeded", start=at(0), end=at(50))],
        pods=[
            PodLane(
                uid="u",
                namespace="ci",
                name="pod-a",
                phases=[
                    PodPhase(phase="pending", start=at(0), end=at(10)),
                    PodPhase(phase="running", start=at(10), end=at(80)),
                    PodPhase(phase="terminated", start=at(80), end=None),
                ],
                ticks=[PodTick(at=at(80), kind="oom", container="c", reason="OOMKilled")],
            )
        ],
        anomalies=[
            AnomalyMarker(
                anomaly_id="a1",
                type="oom_killed",
                category="infra",
                severity="error",
                subject="pod-a/c",
                summary="OOM",
                start=at(75),
                end=at(80),
                lane="pod:pod-a",
            ),
            AnomalyMarker(
                anomaly_id="a2",
                type="missing_tests",
                category="test",
                severity="warning",
                subject="ci",
                summary="gone",
                start=at(0),
                end=at(100),
                lane=None,
            ),
        ],
        log_density=[DensityBucket(start=at(i * 10), lines=5, errors=i % 3) for i in range(10)],
    )


def test_lanes_segments_ticks_and_markers_are_placed_on_the_time_scale() -> None:
    svg = layout(timeline(), UTC_ZONE)
    plot = WIDTH - LABEL_W - 12
    assert [lane.kind for lane in svg.lanes] == ["stage", "pod", "anomalies"]
    stage, pod, run = svg.lanes
    assert stage.segments[0].x == LABEL_W and stage.segments[0].w == pytest.approx(plot / 2)
    assert [s.cls for s in pod.segments] == ["ph-pending", "ph-running", "ph-terminated"]
    [tick] = pod.ticks
    assert tick.label == "OOM" and tick.x == pytest.approx(LABEL_W + plot * 0.8)
    assert "OOMKilled" in tick.title
    assert [m.href for m in pod.markers] == ["#anomaly-a1"]
    assert [m.href for m in run.markers] == ["#anomaly-a2"]
    assert len(svg.density) == 6  # buckets with errors
    assert [label for _, label in svg.axis][:2] == ["07:00:00", "07:00:16"]


def test_zooming_clips_to_the_window() -> None:
    svg = layout(timeline(start=60, end=100), UTC_ZONE)
    _stage, pod, _run = svg.lanes
    assert _stage.segments == []  # the stage ended before the window
    assert pod.segments[0].cls == "ph-running" and pod.segments[0].x == LABEL_W


def test_charts() -> None:
    days = [
        TrendDay(
            day=date(2026, 2, 3),
            runs=8,
            failed=1,
            failure_rate=0.125,
            duration_p50_s=34,
            duration_p95_s=35,
        ),
        TrendDay(day=date(2026, 2, 4), runs=7, failed=0, failure_rate=0.0),
    ]
    bars = failure_rate_chart(days).bars
    assert bars[0][3] > bars[1][3] and "1 of 8 runs failed" in bars[0][4]
    lines = duration_chart(days).lines
    assert [name for name, _, _ in lines] == ["p95", "p50"]
    assert len(lines[0][2]) == 1  # the day without durations has no point
    assert failure_rate_chart([]).empty and duration_chart(days[1:]).empty


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, fmt.NONE),
        (0.35, "350ms"),
        (12.44, "12.4s"),
        (185, "3m 05s"),
        (3720, "1h 02m"),
        (200000, "2d 7h"),
    ],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert fmt.duration(seconds) == shown


def test_times_relative_exact_and_in_a_zone() -> None:
    assert fmt.relative(at(0), at(30)) == "just now"
    assert fmt.relative(at(0), at(3 * 3600)) == "3 h ago"
    assert fmt.relative(at(600), at(0)) == "in 10 min"
    assert fmt.local(T0, fmt.zone("Europe/Berlin")) == "2026-02-03 08:00:00 CET"
    assert fmt.utc_title(T0) == "2026-02-03 07:00:00.000 UTC"
    assert fmt.iso(T0) == "2026-02-03T07:00:00Z"
    assert fmt.signed_duration(-5) == fmt.MINUS + "5.0s"
    for bad in ("Mars/Olympus", "../../etc/passwd", "x" * 80):
        with pytest.raises(BadRequest, match="tz"):
            fmt.zone(bad)
