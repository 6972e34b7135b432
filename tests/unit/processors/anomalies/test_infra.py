"""Infrastructure detectors: each rule firing and not, stable ids across pod updates, severity
overrides, and infra attribution of failed runs (pod shapes as the kubelet reports them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.anomalies.infra import INFRA_CAUSES, attribute, detect_infra, overlaps
from runtime.config import InfraDetectorsConfig
from schemas.messages import (
    AnomalyCategory,
    ContainerState,
    K8sEventInfo,
    PodState,
    RunState,
    RunStatus,
    Severity,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONFIG = InfraDetectorsConfig()  # pending 300 s, 3 restarts per 600 s


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def container(name: str = "tests", **fields: Any) -> ContainerState:
    return ContainerState(name=name, **fields)


def running(name: str = "tests", start: float = 8, **fields: Any) -> ContainerState:
    return container(name, state="running", started_at=at(start), **fields)


def pod(
    name: str = "e2e-x2kzq",
    containers: list[ContainerState] | None = None,
    *,
    phase: str = "Running",
    created: float = 0,
    started: float | None = 2,
    updated: float = 10,
    node: str | None = "n1",
    **fields: Any,
) -> PodState:
    return PodState(
        uid=f"uid-{name}",
        namespace="ci",
        name=name,
        phase=phase,
        node=node,
        created_at=at(created),
        started_at=at(started) if started is not None else None,
        containers=containers if containers is not None else [running()],
        updated_at=at(updated),
        **fields,
    )


def event(
    reason: str,
    message: str,
    *,
    involved: str = "e2e-x2kzq",
    kind: str = "Pod",
    first: float = 5,
    last: float | None = None,
    count: int = 1,
    node: str | None = None,
) -> K8sEventInfo:
    return K8sEventInfo(
        uid=f"ev-{reason}-{involved}-{first}",
        type="Warning",
        reason=reason,
        message=message,
        involved_kind=kind,
        involved_name=involved,
        node=node,
        count=count,
        first_seen=at(first),
        last_seen=at(last if last is not None else first),
    )


def run(
    pods: list[PodState],
    events: list[K8sEventInfo] | None = None,
    *,
    status: RunStatus = RunStatus.RUNNING,
    end: float | None = None,
    updated: float = 60,
    **fields: Any,
) -> RunState:
    return RunState(
        run_id="job:ci/e2e-123",
        provider="k8s",
        provider_run_id="job:ci/e2e-123",
        pipeline="e2e",
        status=status,
        created_at=T0,
        started_at=T0,
        finished_at=at(end) if end is not None else None,
        pods=pods,
        k8s_events=events or [],
        first_event_at=T0,
        updated_at=at(updated),
        **fields,
    )


def types(state: RunState, now: float | None = None, **config: Any) -> list[str]:
    found = detect_infra(
        state, at(now) if now is not None else None, CONFIG.model_copy(update=config)
    )
    return sorted(a.type for a in found)


def oom_pod(**fields: Any) -> PodState:
    oom = container(
        state="terminated",
        reason="OOMKilled",
        exit_code=137,
        started_at=at(8),
        finished_at=at(95),
    )
    return pod(containers=[oom], phase="Failed", updated=96, finished_at=at(95), **fields)


# --- clean input -----------------------------------------------------------------------------


def test_clean_pods_give_nothing() -> None:
    done = container(state="terminated", reason="Completed", exit_code=0, started_at=at(8))
    state = run([pod(), pod("e2e-b", [done], phase="Succeeded")], status=RunStatus.SUCCEEDED)
    assert detect_infra(state, at(600), CONFIG) == []


def test_disabled_gives_nothing() -> None:
    assert types(run([oom_pod()]), enabled=False) == []


# --- OOM -------------------------------------------------------------------------------------


def test_oom_killed_container() -> None:
    [anomaly] = detect_infra(run([oom_pod()]), None, CONFIG)
    assert anomaly.type == "oom_killed"
    assert anomaly.category is AnomalyCategory.INFRA
    assert anomaly.severity is Severity.ERROR
    assert anomaly.subject == "e2e-x2kzq/tests"
    assert anomaly.summary == "pod e2e-x2kzq container tests was OOMKilled (exit 137) on node n1"
    assert (anomaly.window_start, anomaly.window_end) == (at(8), at(95))
    assert anomaly.detected_at == at(95)
    assert anomaly.evidence["exit_code"] == 137
    assert anomaly.evidence["node"] == "n1"
    assert len(anomaly.anomaly_id) == 32


def test_oom_id_stable_across_pod_updates_and_events() -> None:
    first = detect_infra(run([oom_pod()]), None, CONFIG)
    kernel = event("OOMKilling", "Memory cgroup out of memory: Killed process 4242 (python)")
    later = run([oom_pod(deleted=True)], [kernel], updated=300)
    second = detect_infra(later, at(400), CONFIG)
    assert [a.anomaly_id for a in first] == [a.anomaly_id for a in second]
    assert second[0].evidence["events"][0]["reason"] == "OOMKilling"


def test_oom_of_previous_instance_and_of_a_new_one_are_two_findings() -> None:
    again = container(
        state="terminated",
        reason="OOMKilled",
        exit_code=137,
        restarts=1,
        last_reason="OOMKilled",
        started_at=at(120),
        finished_at=at(180),
        last_started_at=at(8).isoformat(),
        last_finished_at=at(95).isoformat(),
        last_exit_code=137,
    )
    first = detect_infra(run([oom_pod()]), None, CONFIG)
    second = detect_infra(run([pod(containers=[again], updated=181)]), None, CONFIG)
    ooms = [a for a in second if a.type == "oom_killed"]
    assert len(ooms) == 2
    assert first[0].anomaly_id in {a.anomaly_id for a in ooms}


def test_oom_event_alone_is_a_finding() -> None:
    kernel = event("OOMKilling", "Memory cgroup out of memory: Killed process 4242 (java)")
    assert types(run([pod()], [kernel])) == ["oom_killed"]


# --- crash loop and restarts ------------------------------------------------------------------


def crash_looping(restarts: int, last: str = "Error") -> ContainerState:
    return container(
        state="waiting",
        reason="CrashLoopBackOff",
        restarts=restarts,
        last_reason=last,
        message="back-off 40s restarting failed container=tests pod=e2e-x2kzq_ci(uid)",
    )


def test_crash_loop_fires_and_stays_one_finding() -> None:
    one = detect_infra(run([pod(containers=[crash_looping(1)], updated=30)]), None, CONFIG)
    two = detect_infra(run([pod(containers=[crash_looping(2)], updated=70)]), None, CONFIG)
    assert [a.type for a in one] == ["crash_loop"]
    assert [a.anomaly_id for a in one] == [a.anomaly_id for a in two if a.type == "crash_loop"]
    assert "back-off 40s" in one[0].evidence["message"]


def test_restart_burst_within_window() -> None:
    state = run([pod(containers=[running(start=200, restarts=3, last_reason="Error")])])
    [anomaly] = detect_infra(state, None, CONFIG)
    assert anomaly.type == "restart_burst"
    assert anomaly.severity is Severity.WARNING
    assert anomaly.evidence["observed"] == 3
    assert anomaly.evidence["threshold"] == 3


def test_restarts_spread_over_hours_are_not_a_burst() -> None:
    # 4 restarts over 2 h: no 10-minute window is guaranteed to hold 3 of them.
    state = run([pod(containers=[running(start=7200, restarts=4)])])
    assert types(state) == []


def test_restart_burst_below_threshold() -> None:
    assert types(run([pod(containers=[running(start=60, restarts=2)])])) == []


# --- pending ---------------------------------------------------------------------------------


def pull_backoff(name: str = "tests") -> ContainerState:
    return container(
        name,
        state="waiting",
        reason="ImagePullBackOff",
        message='Back-off pulling image "registry.example.com/e2e:missing"',
    )


def test_pod_pending_20s_gives_nothing() -> None:
    state = run([pod(containers=[running(start=20)], started=1)])
    assert types(state, now=600) == []


def test_pending_too_long_resolved_and_still_pending_share_id() -> None:
    creating = container(state="waiting", reason="ContainerCreating")
    still = run([pod(containers=[creating], phase="Pending", started=None, updated=100)])
    resolved = run([pod(containers=[running(start=900)], started=890, updated=900)])
    [pending] = detect_infra(still, at(400), CONFIG)
    [late] = detect_infra(resolved, at(950), CONFIG)
    assert pending.type == late.type == "pending_too_long"
    assert pending.anomaly_id == late.anomaly_id
    assert pending.evidence["still_pending"] is True
    assert late.evidence["observed"] == 900
    assert pending.summary.startswith("pod e2e-x2kzq was still Pending for 400s (limit 300s)")


def test_still_pending_below_limit_gives_nothing() -> None:
    creating = container(state="waiting", reason="ContainerCreating")
    state = run([pod(containers=[creating], phase="Pending", started=None)])
    assert types(state, now=120) == []


# --- image pull ------------------------------------------------------------------------------


def test_image_pull_backoff() -> None:
    state = run([pod(containers=[pull_backoff()], phase="Pending", updated=40)])
    [anomaly] = detect_infra(state, at(60), CONFIG)
    assert anomaly.type == "image_pull_failure"
    assert anomaly.subject == "e2e-x2kzq"
    assert anomaly.evidence["containers"][0]["message"].startswith("Back-off pulling image")


def test_image_pull_id_stable_when_events_arrive() -> None:
    pulls = [
        event(
            "Failed",
            'Failed to pull image "registry.example.com/e2e:missing": not found',
            first=4,
            last=40,
            count=3,
        ),
        event("Failed", "Error: ErrImagePull", first=4, last=40, count=3),
        event("BackOff", 'Back-off pulling image "registry.example.com/e2e:missing"', first=6),
    ]
    waiting = pod(containers=[pull_backoff()], phase="Pending", updated=40)
    before = detect_infra(run([waiting]), at(60), CONFIG)
    after = detect_infra(run([waiting], pulls), at(60), CONFIG)
    assert [a.anomaly_id for a in before] == [a.anomaly_id for a in after]
    assert len(after[0].evidence["events"]) == 3


def test_backoff_restarting_container_is_not_an_image_pull() -> None:
    restart = event("BackOff", "Back-off restarting failed container tests in pod e2e-x2kzq")
    assert types(run([pod()], [restart])) == []


# --- eviction --------------------------------------------------------------------------------


def evicted_pod(**fields: Any) -> PodState:
    killed = container(
        state="terminated", reason="Error", exit_code=137, started_at=at(8), finished_at=at(300)
    )
    return pod(
        containers=[killed],
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 92Mi.",
        updated=301,
        finished_at=at(301),
        **fields,
    )


def test_evicted_pod() -> None:
    [anomaly] = detect_infra(run([evicted_pod()]), None, CONFIG)
    assert anomaly.type == "evicted"
    assert anomaly.subject == "e2e-x2kzq"
    assert "The node was low on resource: memory" in anomaly.summary
    assert (anomaly.window_start, anomaly.window_end) == (at(2), at(300))


def test_evicted_id_stable_when_deleted_later() -> None:
    evicted = event("Evicted", "The node was low on resource: memory.", first=299, node="n1")
    first = detect_infra(run([evicted_pod()]), None, CONFIG)
    gone = evicted_pod(deleted=True)
    second = detect_infra(
        run([gone.model_copy(update={"updated_at": at(900)})], [evicted]), None, CONFIG
    )
    assert [a.anomaly_id for a in first] == [a.anomaly_id for a in second]


def test_eviction_is_one_finding_whether_its_event_or_the_pod_status_comes_first() -> None:
    # The kubelet's Evicted Event and the pod's update travel on different partitions.
    evicted = event("Evicted", "The node was low on resource: memory.", first=299, node="n1")
    event_first = detect_infra(run([pod()], [evicted]), None, CONFIG)
    status_first = detect_infra(run([evicted_pod()]), None, CONFIG)
    both = detect_infra(run([evicted_pod()], [evicted]), None, CONFIG)
    ids = {a.anomaly_id for a in [*event_first, *status_first, *both]}
    assert len(ids) == 1


def test_evicted_event_without_pod_status() -> None:
    evicted = event("Evicted", "The node was low on resource: ephemeral-storage.", node="n2")
    assert types(run([pod()], [evicted])) == ["evicted"]


# --- scheduling ------------------------------------------------------------------------------


UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient cpu."


def test_transient_failed_scheduling_is_not_reported() -> None:
    events = [event("FailedScheduling", UNSCHEDULABLE, first=1, last=20, count=2)]
    state = run([pod(containers=[running(start=40)], started=25)], events)
    assert types(state, now=600) == []


def test_failed_scheduling_still_unscheduled_past_limit() -> None:
    events = [event("FailedScheduling", UNSCHEDULABLE, first=1, last=400, count=9)]
    waiting = pod(containers=[], phase="Pending", started=None, node=None, updated=1)
    found = detect_infra(run([waiting], events), at(450), CONFIG)
    assert sorted(a.type for a in found) == ["failed_scheduling", "pending_too_long"]
    scheduling = next(a for a in found if a.type == "failed_scheduling")
    assert scheduling.severity is Severity.WARNING
    assert scheduling.evidence["outcome"] == "still unscheduled"
    assert UNSCHEDULABLE in scheduling.summary
    assert scheduling.evidence["events"][0]["count"] == 9


def test_failed_scheduling_still_unscheduled_within_limit_waits() -> None:
    events = [event("FailedScheduling", UNSCHEDULABLE, first=1, last=30, count=2)]
    waiting = pod(containers=[], phase="Pending", started=None, node=None)
    assert types(run([waiting], events), now=60) == []


def test_failed_scheduling_id_same_while_waiting_and_after_late_start() -> None:
    events = [event("FailedScheduling", UNSCHEDULABLE, first=1, last=400, count=9)]
    waiting = pod(containers=[], phase="Pending", started=None, node=None, updated=1)
    late = pod(containers=[running(start=520)], started=500, updated=520)
    one = detect_infra(run([waiting], events), at(450), CONFIG)
    two = detect_infra(run([late], events), at(600), CONFIG)
    ids = {a.anomaly_id for a in one if a.type == "failed_scheduling"}
    assert ids == {a.anomaly_id for a in two if a.type == "failed_scheduling"}


def test_failed_scheduling_of_a_pod_that_ended_unscheduled() -> None:
    events = [event("FailedScheduling", UNSCHEDULABLE, first=1, last=50, count=3)]
    gone = pod(containers=[], phase="Pending", started=None, node=None, deleted=True)
    state = run([gone], events, status=RunStatus.TIMED_OUT, end=60)
    assert types(state) == ["failed_scheduling"]


# --- job and node ----------------------------------------------------------------------------


def test_job_backoff_limit_from_conclusion_and_event_share_id() -> None:
    failed = run([oom_pod()], status=RunStatus.FAILED, end=100, conclusion="BackoffLimitExceeded")
    limit = event(
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
        kind="Job",
        involved="e2e-123",
        first=100,
    )
    one = [a for a in detect_infra(failed, None, CONFIG) if a.type == "job_backoff_limit"]
    two = [
        a
        for a in detect_infra(failed.model_copy(update={"k8s_events": [limit]}), None, CONFIG)
        if a.type == "job_backoff_limit"
    ]
    assert [a.anomaly_id for a in one] == [a.anomaly_id for a in two]
    assert two[0].evidence["jobs"] == ["e2e-123"]
    assert two[0].severity is Severity.ERROR


def test_node_not_ready_during_run() -> None:
    notready = event("NodeNotReady", "Node is not ready", first=50, node="n1")
    [anomaly] = detect_infra(run([pod()], [notready]), None, CONFIG)
    assert anomaly.type == "node_not_ready"
    assert anomaly.subject == "n1"


def test_node_not_ready_after_the_run_is_ignored() -> None:
    notready = event("NodeNotReady", "Node is not ready", first=500, node="n1")
    state = run([pod()], [notready], status=RunStatus.SUCCEEDED, end=200, updated=500)
    assert types(state) == []


# --- determinism and config ------------------------------------------------------------------


def test_sorted_by_id_and_deterministic() -> None:
    state = run([oom_pod(), evicted_pod(name="e2e-b")], status=RunStatus.FAILED, end=400)
    first = detect_infra(state, at(500), CONFIG)
    assert [a.anomaly_id for a in first] == sorted(a.anomaly_id for a in first)
    assert first == detect_infra(state, at(500), CONFIG)


def test_severity_override() -> None:
    found = detect_infra(
        run([oom_pod()]), None, CONFIG.model_copy(update={"severity": {"oom_killed": "critical"}})
    )
    assert found[0].severity is Severity.CRITICAL


def test_pending_limit_from_config() -> None:
    state = run([pod(containers=[running(start=20)], started=1)])
    assert types(state, pending_limit_s=10) == ["pending_too_long"]


# --- attribution -----------------------------------------------------------------------------


def test_succeeded_run_is_not_attributed() -> None:
    state = run([oom_pod()], status=RunStatus.SUCCEEDED, end=100)
    assert attribute(state, detect_infra(state, None, CONFIG)) is None


def test_failed_run_with_oom_is_infrastructure() -> None:
    state = run([oom_pod()], status=RunStatus.FAILED, end=100, conclusion="BackoffLimitExceeded")
    found = detect_infra(state, None, CONFIG)
    attribution = attribute(state, found)
    assert attribution is not None
    oom = next(a for a in found if a.type == "oom_killed")
    assert attribution.cause == "infrastructure"
    assert attribution.anomaly_ids == (oom.anomaly_id,)
    assert attribution.types == ("oom_killed",)
    assert "OOMKilled" in attribution.summary


def test_failed_run_with_only_an_app_crash_loop_is_not_infrastructure() -> None:
    state = run([pod(containers=[crash_looping(5)])], status=RunStatus.FAILED, end=100)
    found = detect_infra(state, None, CONFIG)
    assert {a.type for a in found} >= {"crash_loop", "restart_burst"}
    assert attribute(state, found) is None


def test_infra_fault_outside_the_run_window_is_not_attributed() -> None:
    state = run([evicted_pod()], status=RunStatus.FAILED, end=100)
    found = detect_infra(state, None, CONFIG)
    shifted = [a.model_copy(update={"window_start": at(200), "window_end": at(300)}) for a in found]
    assert attribute(state, shifted) is None


def test_overlaps() -> None:
    [oom] = detect_infra(run([oom_pod()]), None, CONFIG)
    assert overlaps(oom, at(90), at(120))
    assert overlaps(oom, None, at(8))
    assert not overlaps(oom, at(96), None)
    assert not overlaps(oom, at(0), at(7))


@pytest.mark.parametrize("kind", sorted(INFRA_CAUSES))
def test_infra_causes_are_error_by_default(kind: str) -> None:
    from processors.anomalies.infra import DEFAULT_SEVERITY

    assert DEFAULT_SEVERITY[kind] is Severity.ERROR


def test_input_order_does_not_matter_and_anomalies_serialise() -> None:
    events = [
        event("FailedScheduling", UNSCHEDULABLE, involved="e2e-c", first=1, last=400, count=9),
        event("NodeNotReady", "Node is not ready", first=50, node="n1"),
        event("OOMKilling", "Memory cgroup out of memory: Killed process 7 (java)", first=95),
    ]
    waiting = pod("e2e-c", containers=[], phase="Pending", started=None, node=None)
    pods = [oom_pod(), evicted_pod(name="e2e-b"), waiting]
    forward = detect_infra(run(pods, events), at(450), CONFIG)
    backward = detect_infra(run(pods[::-1], events[::-1]), at(450), CONFIG)
    assert forward == backward
    assert {a.type for a in forward} == {
        "oom_killed",
        "evicted",
        "node_not_ready",
        "failed_scheduling",
        "pending_too_long",
    }
    for anomaly in forward:
        assert type(anomaly).from_bytes(anomaly.to_bytes()) == anomaly


def test_crash_looping_pod_is_not_pending() -> None:
    state = run([pod(containers=[crash_looping(4, "OOMKilled")], updated=30)])
    assert "pending_too_long" not in types(state, now=900)
