"""Keys derived from values: a message whose key does not say what its value says is refused."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.keys import expected_key, key_problem
from schemas.messages import K8sObjectEvent, LogLine
from schemas.topics import ALERT_DELIVERIES, CI, DLQ, K8S, LOGS, RUNS

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def pod(namespace: str | None, name: str) -> K8sObjectEvent:
    return K8sObjectEvent(
        event_type="ADDED", kind="Pod", api_version="v1", namespace=namespace, name=name,
        uid="u", resource_version="1", object={}, event_time=NOW,
    )  # fmt: skip


def test_each_keyed_topic_derives_its_key_from_the_value() -> None:
    assert expected_key(CI, {"run_id": "github:o/r:1:1"}) == "github:o/r:1:1"
    assert expected_key(K8S, pod("ci", "pod-a")) == "ci/pod-a"
    assert expected_key(K8S, pod(None, "node-1")) == "node-1"  # cluster-scoped
    # The sink checks rows, where an absent namespace is ''.
    assert expected_key(K8S, {"namespace": "", "name": "node-1"}) == "node-1"
    line = LogLine(namespace="ci", pod="p", container="main", line="x", event_time=NOW)
    assert expected_key(LOGS, line) == "ci/p/main"


def test_keys_not_derived_from_the_value_alone_are_not_checked() -> None:
    assert expected_key(ALERT_DELIVERIES, {"channel": "slack", "group_key": "g"}) is None
    assert key_problem(DLQ, b"anything", {"origin_topic": "t"}) is None
    assert key_problem(RUNS, b"k", {"no_run_id": 1}) is None  # the schema check says what is wrong


def test_a_matching_key_is_fine() -> None:
    assert key_problem(RUNS, b"github:o/r:1:1", {"run_id": "github:o/r:1:1"}) is None
    assert key_problem(K8S, b"node-1", pod(None, "node-1")) is None


def test_a_wrong_or_missing_key_is_refused_naming_the_key_expected() -> None:
    value = {"run_id": "github:o/r:1:1"}
    assert key_problem(RUNS, b"github:o/r:2:1", value) == (
        "key 'github:o/r:2:1' does not match the value: messages on runs are keyed by the "
        "run_id of their RunState, here 'github:o/r:1:1'"
    )
    assert key_problem(RUNS, None, value) == (
        "the message has no key: messages on runs are keyed by the run_id of their RunState, "
        "here 'github:o/r:1:1'"
    )
    # A key naming another namespace or container is as wrong as garbage.
    assert "here 'ci/pod-a'" in (key_problem(K8S, b"other/pod-a", pod("ci", "pod-a")) or "")
    line = LogLine(namespace="ci", pod="p", container="main", line="x", event_time=NOW)
    problem = key_problem(LOGS, b"ci/p/sidecar", line) or ""
    assert problem.startswith("key 'ci/p/sidecar' does not match")
    assert "\ufffd" in (key_problem(LOGS, b"\xff", line) or "")  # undecodable keys still shown
