"""Geometry of the run timeline (pure): lanes of stages and pods with their phase segments,
ticks and anomaly markers, the time axis and the log error density strip, in SVG user units.
The template (`templates/_timeline.html`) only draws what this returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sentinel.queries.models import AnomalyMarker, PodLane, StageBar, Timeline
from sentinel.web.fmt import duration, local

WIDTH = 1100
LABEL_W = 250
RIGHT_PAD = 12
ROW_H = 24
HEADING_H = 22
AXIS_H = 26
DENSITY_H = 34
TICK_KINDS = {
    "oom": "OOMKilled",
    "restart": "restart",
    "evicted": "evicted",
    "error": "error",
    "warning": "warning",
}


@dataclass
class Segment:
    x: float
    w: float
    cls: str
    title: str


@dataclass
class Mark:
    x: float
    cls: str
    title: str
    label: str = ""
    href: str | None = None


@dataclass
class Lane:
    y: float
    label: str
    sublabel: str
    kind: str  # stage | pod | anomalies
    key: str
    segments: list[Segment] = field(default_factory=list)
    ticks: list[Mark] = field(default_factory=list)
    markers: list[Mark] = field(default_factory=list)


@dataclass
class Bar:
    x: float
    w: float
    h: float
    title: str


@dataclass
class TimelineSvg:
    width: int
    height: float
    x0: float
    plot_w: float
    lanes: list[Lane]
    headings: list[tuple[float, str]]
    axis: list[tuple[float, str]]
    density_y: float
    density: list[Bar]
    start_ms: int
    end_ms: int


class _Scale:
    def __init__(self, start: datetime, end: datetime, x0: float, width: float) -> None:
        self.start, self.end, self.x0, self.width = start, end, x0, width
        self.span = max((end - start).total_seconds(), 0.001)

    def x(self, when: datetime) -> float:
        # Rounded here, so the template prints numbers as they are (a tenth of a unit is finer
        # than a screen pixel at the SVG's width).
        offset = (when - self.start).total_seconds()
        return round(self.x0 + max(0.0, min(1.0, offset / self.span)) * self.width, 1)

    def visible(self, start: datetime, end: datetime) -> bool:
        return end >= self.start and start <= self.end


def layout(timeline: Timeline, tz: ZoneInfo) -> TimelineSvg:
    x0, plot_w = LABEL_W, WIDTH - LABEL_W - RIGHT_PAD
    scale = _Scale(timeline.window_start, timeline.window_end, x0, plot_w)
    open_end = timeline.end if timeline.status not in _ACTIVE else timeline.window_end
    y = AXIS_H
    lanes: list[Lane] = []
    headings: list[tuple[float, str]] = []
    by_lane: dict[str, list[AnomalyMarker]] = {}
    for marker in timeline.anomalies:
        by_lane.setdefault(marker.lane or "", []).append(marker)
    sections: list[tuple[str, list[Lane]]] = [
        ("Stages", [_stage_lane(s, scale, open_end) for s in timeline.stages]),
        ("Pods", [_pod_lane(p, scale, open_end, tz) for p in timeline.pods]),
    ]
    drawn = {lane.key for _, section in sections for lane in section}
    # Markers whose subject is no stage or pod drawn (the run, a Job, a test) get a lane.
    loose = [m for key, ms in list(by_lane.items()) if key not in drawn for m in by_lane.pop(key)]
    if loose:
        run_lane = Lane(0, "run", "anomalies of the run", "anomalies", "run")
        run_lane.markers = [_marker(m, scale) for m in loose]
        sections.append(("Run", [run_lane]))
    for title, section in sections:
        if not section:
            continue
        headings.append((y, title))
        y += HEADING_H
        for lane in section:
            lane.y = y
            lane.markers += [_marker(m, scale) for m in by_lane.pop(lane.key, [])]
            lanes.append(lane)
            y += ROW_H
    density_y = y + 8
    return TimelineSvg(
        width=WIDTH,
        height=density_y + DENSITY_H + 4,
        x0=x0,
        plot_w=plot_w,
        lanes=lanes,
        headings=headings,
        axis=_axis(scale, tz),
        density_y=density_y,
        density=_density(timeline, scale),
        start_ms=int(timeline.window_start.timestamp() * 1000),
        end_ms=int(timeline.window_end.timestamp() * 1000),
    )


_ACTIVE = frozenset({"pending", "running", "unknown"})


def _segment(scale: _Scale, start: datetime, end: datetime, cls: str, title: str) -> Segment | None:
    if not scale.visible(start, end):
        return None
    left, right = scale.x(start), scale.x(end)
    return Segment(x=left, w=round(max(right - left, 1.5), 1), cls=cls, title=title)


def _stage_lane(stage: StageBar, scale: _Scale, open_end: datetime) -> Lane:
    lane = Lane(0, stage.name, stage.status, "stage", f"stage:{stage.stage_id}")
    if stage.start is not None:
        end = stage.end or open_end
        title = f"{stage.name}: {stage.status}, {duration(stage.duration_s)}"
        seg = _segment(scale, stage.start, max(end, stage.start), f"st-{stage.status}", title)
        if seg:
            lane.segments.append(seg)
    return lane


def _pod_lane(pod: PodLane, scale: _Scale, open_end: datetime, tz: ZoneInfo) -> Lane:
    sub = " · ".join(x for x in (pod.phase or "", pod.node or "") if x)
    lane = Lane(0, pod.name, sub, "pod", f"pod:{pod.name}")
    for phase in pod.phases:
        end = phase.end or open_end
        if phase.phase == "terminated" and phase.end is None:
            end = max(open_end, phase.start + timedelta(seconds=scale.span / 200))
        title = f"{pod.name}: {phase.phase} from {local(phase.start, tz)}"
        if phase.end is not None:
            title += f" for {duration((phase.end - phase.start).total_seconds())}"
        cls = f"ph-{phase.phase}"
        if phase.phase == "terminated" and pod.phase == "Failed":
            cls += " ph-failed"
        seg = _segment(scale, phase.start, max(end, phase.start), cls, title)
        if seg:
            lane.segments.append(seg)
    for tick in pod.ticks:
        if not scale.visible(tick.at, tick.at):
            continue
        what = f"{tick.container}: " if tick.container else ""
        title = f"{TICK_KINDS[tick.kind]} — {what}{tick.reason} at {local(tick.at, tz)}"
        if tick.message:
            title += f": {tick.message}"
        label = "OOM" if tick.kind == "oom" else ("↻" if tick.kind == "restart" else "")
        lane.ticks.append(Mark(scale.x(tick.at), f"tick tick-{tick.kind}", title, label))
    return lane


def _marker(marker: AnomalyMarker, scale: _Scale) -> Mark:
    title = f"{marker.severity} · {marker.type}: {marker.summary}"
    return Mark(
        x=scale.x(marker.start),
        cls=f"marker sev-{marker.severity}",
        title=title,
        href=f"#anomaly-{marker.anomaly_id}",
    )


def _axis(scale: _Scale, tz: ZoneInfo, ticks: int = 6) -> list[tuple[float, str]]:
    out = []
    for i in range(ticks + 1):
        at = scale.start + timedelta(seconds=scale.span * i / ticks)
        text = at.astimezone(tz).strftime("%H:%M:%S")
        out.append((scale.x0 + scale.width * i / ticks, text))
    return out


def _density(timeline: Timeline, scale: _Scale) -> list[Bar]:
    peak = max((b.errors for b in timeline.log_density), default=0)
    if peak == 0:
        return []
    width = scale.width / max(len(timeline.log_density), 1)
    bars = []
    for bucket in timeline.log_density:
        if not bucket.errors:
            continue
        h = max(3.0, (DENSITY_H - 6) * bucket.errors / peak)
        title = f"{bucket.errors} error lines of {bucket.lines} from {bucket.start:%H:%M:%S}"
        bars.append(
            Bar(
                x=scale.x(bucket.start),
                w=round(max(width - 0.5, 1.0), 1),
                h=round(h, 1),
                title=title,
            )
        )
    return bars
