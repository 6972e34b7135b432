"""Pure normalisation of Kubernetes objects: noise, correlation keys, event time, keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from producers.k8s.objects import (
    K8sNormalizer,
    correlation_key,
    object_key,
    object_time,
    strip_noise,
    to_object_event,
)
from runtime.config import CorrelationRule, K8sConfig

RECEIVED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CONFIG = K8sConfig()


def pod(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "build-1-abc",
        "namespace": "ci",
        "uid": "uid-1",
        "resourceVersion": "42",
        "creationTimestamp": "2026-01-01T10:00:00Z",
        "labels": labels or {},
    }
    if annotations is not None:
        meta["annotations"] = annotations
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, **extra}


def test_strip_noise_drops_managed_fields_and_last_applied_without_mutating() -> None:
    obj = pod(
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "keep": "me",
        }
    )
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    clean = strip_noise(obj)
    assert "managedFields" not in clean["metadata"]
    assert clean["metadata"]["annotations"] == {"keep": "me"}
    assert "managedFields" in obj["metadata"]  # input untouched
    only_noise = pod(annotations={"kubectl.kubernetes.io/last-applied-configuration": "x"})
    assert "annotations" not in strip_noise(only_noise)["metadata"]


def test_correlation_order_follows_design() -> None:
    labels = {
        "job-name": "j",
        "tekton.dev/taskRun": "tr",
        "tekton.dev/pipelineRun": "pr",
        "workflows.argoproj.io/workflow": "wf",
    }
    assert correlation_key(pod(labels), CONFIG) == "tekton:ci/pr"
    assert correlation_key(pod({**labels, "sentinel.io/run-id": "run-7"}), CONFIG) == "run-7"
    assert correlation_key(pod({"tekton.dev/taskRun": "tr"}), CONFIG) == "tekton-taskrun:ci/tr"
    assert correlation_key(pod({"workflows.argoproj.io/workflow": "wf"}), CONFIG) == "argo:ci/wf"
    jenkins = pod({"job-name": "j"}, {"runUrl": "job/app/42/"})
    assert correlation_key(jenkins, CONFIG) == "jenkins:job/app/42/"
    arc = pod({"actions.github.com/scale-set-name": "linux"})
    assert correlation_key(arc, CONFIG) == "github-runner:build-1-abc"
    assert correlation_key(pod({"batch.kubernetes.io/job-name": "nightly"}), CONFIG) == (
        "job:ci/nightly"
    )
    assert correlation_key(pod({"job-name": "nightly"}), CONFIG) == "job:ci/nightly"
    assert correlation_key(pod({"app": "web"}), CONFIG) is None


def test_correlation_is_configurable() -> None:
    config = K8sConfig(
        correlation=[CorrelationRule(annotation="ci/run", template="x:{value}")],
        job_correlation=None,
    )
    assert correlation_key(pod({"sentinel.io/run-id": "r"}, {"ci/run": "9"}), config) == "x:9"
    job = {"kind": "Job", "metadata": {"name": "nightly", "namespace": "ci"}}
    assert correlation_key(job, config) is None
    assert correlation_key(job, CONFIG) == "job:ci/nightly"


def test_event_inherits_key_of_involved_object() -> None:
    event = {
        "kind": "Event",
        "metadata": {"name": "build-1-abc.17", "namespace": "ci", "uid": "e1"},
        "involvedObject": {"kind": "Pod", "name": "build-1-abc", "namespace": "ci", "uid": "uid-1"},
        "lastTimestamp": "2026-01-01T10:05:00Z",
    }
    assert correlation_key(event, CONFIG) is None
    normalizer = K8sNormalizer(CONFIG)
    normalizer.normalize("ADDED", pod({"job-name": "nightly"}), RECEIVED)
    assert normalizer.normalize("ADDED", event, RECEIVED).correlation_key == "job:ci/nightly"
    normalizer.normalize("DELETED", pod({"job-name": "nightly"}), RECEIVED)
    # Events about a pod keep arriving after it is deleted.
    assert normalizer.normalize("ADDED", event, RECEIVED).correlation_key == "job:ci/nightly"
    about_job = {**event, "involvedObject": {"kind": "Job", "name": "n", "namespace": "ci"}}
    assert correlation_key(about_job, CONFIG) == "job:ci/n"


def test_normalizer_memory_is_bounded() -> None:
    normalizer = K8sNormalizer(CONFIG, max_tracked=10)
    for i in range(100):
        obj = pod({"job-name": f"j{i}"})
        obj["metadata"]["uid"] = f"u{i}"
        normalizer.normalize("ADDED", obj, RECEIVED)
    assert len(normalizer) == 10


def test_event_time_of_events_prefers_last_timestamp() -> None:
    event = {
        "kind": "Event",
        "metadata": {"creationTimestamp": "2026-01-01T09:00:00Z"},
        "firstTimestamp": "2026-01-01T09:01:00Z",
        "lastTimestamp": "2026-01-01T09:03:00Z",
    }
    assert object_time(event) == datetime(2026, 1, 1, 9, 3, tzinfo=UTC)
    micro = {"kind": "Event", "eventTime": "2026-01-01T09:04:00.123456Z", "lastTimestamp": None}
    assert object_time(micro) == datetime(2026, 1, 1, 9, 4, 0, 123456, tzinfo=UTC)
    series = {**micro, "series": {"lastObservedTime": "2026-01-01T09:09:00.000001Z"}}
    assert object_time(series) == datetime(2026, 1, 1, 9, 9, 0, 1, tzinfo=UTC)


def test_event_time_of_pods_is_newest_status_time() -> None:
    status = {
        "startTime": "2026-01-01T10:00:01Z",
        "conditions": [{"type": "Ready", "lastTransitionTime": "2026-01-01T10:00:05Z"}],
        "containerStatuses": [
            {
                "name": "main",
                "state": {
                    "terminated": {
                        "startedAt": "2026-01-01T10:00:04Z",
                        "finishedAt": "2026-01-01T10:02:00Z",
                    }
                },
            }
        ],
    }
    assert object_time(pod(status=status)) == datetime(2026, 1, 1, 10, 2, tzinfo=UTC)
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T11:00:30Z"
    deleting["metadata"]["deletionGracePeriodSeconds"] = 30
    assert object_time(deleting) == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def test_to_object_event_fields_and_fallback_time() -> None:
    obj = pod({"sentinel.io/run-id": "r1"}, {"a": "b"})
    obj["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "j", "uid": "ju"}]
    obj["metadata"]["managedFields"] = [{}]
    event = to_object_event("MODIFIED", obj, RECEIVED, CONFIG)
    assert (event.kind, event.api_version, event.namespace, event.name) == (
        "Pod",
        "v1",
        "ci",
        "build-1-abc",
    )
    assert (event.uid, event.resource_version, event.correlation_key) == ("uid-1", "42", "r1")
    assert event.owner_refs == [{"kind": "Job", "name": "j", "uid": "ju"}]
    assert "managedFields" not in event.object["metadata"]
    assert event.event_time == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert object_key(event) == "ci/build-1-abc"
    no_time = {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "s", "uid": "u"}}
    timeless = to_object_event("DELETED", no_time, RECEIVED, CONFIG)
    assert timeless.event_time == RECEIVED and timeless.event_type == "DELETED"
    assert object_key(timeless) == "s"
