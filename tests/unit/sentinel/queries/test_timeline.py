"""Pod lanes from stored Pod objects and Events: phases, the OOMKilled tick, restarts, markers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.capture import read_capture
from schemas.messages import (
    Anomaly,
    AnomalyCategory,
    ContainerState,
    PodState,
    RunState,
    RunStatus,
    Severity,
    StageState,
)
from sentinel.queries.timeline import markers, phases, pod_lanes, run_span, stage_bars
from tests.support.paths import DATA

T0 = datetime(2026, 2, 3, 7, 0, tzinfo=UTC)
POD = "orders-api-tests-29501700-qdtmx"
UID = "ac507518-7509-5ed0-9e03-0ae43a650867"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def oom_rows() -> list[dict[str, Any]]:
    """The OOMKilled run's Pod objects and Events, as k8s_events rows hold them."""
    rows = []
    for record in read_capture(DATA / "anomaly_scenarios" / "oom_mid_test.jsonl"):
        if record.type != "k8s":
            continue
        obj = record.object  # type: ignore[union-attr]
        meta = obj["metadata"]
        if "29501700" not in meta["name"] and "29501700" not in json.dumps(
            obj.get("involvedObject", {})
        ):
            continue
        rows.append(
            {
                "event_time": record.ts,
                "kind": obj["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
                "reason": obj.get("reason", ""),
                "message": obj.get("message", ""),
                "object": json.dumps(obj),
            }
        )
    return rows


def oom_run(**changes: Any) -> RunState:
    pod = PodState(
        uid=UID,
        namespace="ci",
        name=POD,
        phase="Failed",
        node="gke-ci-pool-1-7f3a2c1e-m2vd",
        containers=[
            ContainerState(name="pytest", state="terminated", reason="OOMKilled", exit_code=137)
        ],
        updated_at=at(26),
    )
    values: dict[str, Any] = {
        "run_id": "job:ci/orders-api-tests-29501700",
        "provider": "kubernetes",
        "provider_run_id": "job:ci/orders-api-tests-29501700",
        "status": RunStatus.FAILED,
        "namespace": "ci",
        "pods": [pod],
        "first_event_at": T0,
        "updated_at": at(26),
        "finished_at": at(26),
    }
    values.update(changes)
    return RunState(**values)


def test_an_oom_killed_pod_has_its_phases_and_one_oom_tick() -> None:
    [lane] = pod_lanes(oom_run(), oom_rows())
    assert lane.name == POD
    # Created and scheduled at 07:00:00 (PodScheduled), the image was already present (no
    # pulling), the container ran from 07:00:03 until the kill at 07:00:25.
    assert [(p.phase, p.start, p.end) for p in lane.phases] == [
        ("scheduled", at(0), at(3)),
        ("running", at(3), at(25)),
        ("terminated", at(25), None),
    ]
    [tick] = lane.ticks
    assert (tick.kind, tick.reason, tick.container, tick.at) == (
        "oom",
        "OOMKilled",
        "pytest",
        at(25),
    )


def test_without_stored_objects_the_snapshot_gives_the_lane() -> None:
    pod = PodState(
        uid="u1",
        name="e2e-x2kzq",
        created_at=at(0),
        started_at=at(10),
        finished_at=at(70),
        phase="Succeeded",
        containers=[
            ContainerState(
                name="tests", restarts=2, last_reason="OOMKilled", last_finished_at=at(40)
            )
        ],
        updated_at=at(70),
    )
    [lane] = pod_lanes(oom_run(pods=[pod]), [])
    assert [p.phase for p in lane.phases] == ["pending", "running", "terminated"]
    assert lane.restarts == 2
    assert [(t.kind, t.at) for t in lane.ticks] == [("oom", at(40))]


def test_restarts_from_the_containers_last_state_are_ticks() -> None:
    obj = {
        "metadata": {"creationTimestamp": "2026-02-03T07:00:00Z"},
        "status": {
            "containerStatuses": [
                {
                    "name": "tests",
                    "restartCount": 1,
                    "state": {"running": {"startedAt": "2026-02-03T07:00:50Z"}},
                    "lastState": {
                        "terminated": {
                            "reason": "Error",
                            "exitCode": 1,
                            "startedAt": "2026-02-03T07:00:05Z",
                            "finishedAt": "2026-02-03T07:00:45Z",
                        }
                    },
                }
            ]
        },
    }
    pod = PodState(uid="u2", name="p", updated_at=at(60))
    rows = [{"event_time": at(50), "kind": "Pod", "name": "p", "uid": "u2", "object": obj}]
    [lane] = pod_lanes(oom_run(pods=[pod]), rows)
    assert [(t.kind, t.reason, t.at) for t in lane.ticks] == [("restart", "Error", at(45))]
    assert lane.phases[-1].phase == "running" and lane.phases[-1].end is None


def test_phases_skip_unknown_times_and_fold_ones_out_of_order() -> None:
    got = phases([("pending", at(0)), ("scheduled", None), ("pulling", at(5)), ("running", at(3))])
    assert [(p.phase, p.start, p.end) for p in got] == [
        ("pending", at(0), at(5)),
        ("pulling", at(5), None),
    ]


def test_markers_sit_on_the_lane_of_their_subject() -> None:
    run = oom_run(
        stages=[StageState(stage_id="7", name="build", status=RunStatus.FAILED, updated_at=T0)]
    )

    def anomaly(subject: str) -> Anomaly:
        return Anomaly(
            anomaly_id=subject,
            run_id=run.run_id,
            category=AnomalyCategory.INFRA,
            type="t",
            severity=Severity.ERROR,
            subject=subject,
            summary="s",
            window_start=T0,
            window_end=T0,
        )

    lanes = [
        m.lane
        for m in markers(
            [anomaly(f"{POD}/pytest"), anomaly("build"), anomaly("job/x"), anomaly(f"ci/{POD}")],
            run,
        )
    ]
    assert lanes == [f"pod:{POD}", "stage:7", None, f"pod:{POD}"]


def test_span_and_stage_bars() -> None:
    run = oom_run(
        stages=[
            StageState(
                stage_id="2",
                name="test",
                status=RunStatus.RUNNING,
                started_at=at(9),
                updated_at=at(9),
            ),
            StageState(
                stage_id="1",
                name="lint",
                status=RunStatus.SUCCEEDED,
                started_at=at(1),
                finished_at=at(8),
                duration_s=7,
                updated_at=at(8),
            ),
        ]
    )
    assert run_span(run, run.pods) == (T0, at(26))
    bars = stage_bars(run)
    assert [(b.name, b.end) for b in bars] == [("lint", at(8)), ("test", None)]
