"""Source values to signals: a k8s event or log line under a key its value does not give is
refused (it would be processed out of order with its object's or stream's other messages)."""

from __future__ import annotations

from datetime import UTC, datetime

from processors.runs.log_signals import LogSignals
from processors.runs.source_signals import signals_from_source
from runtime.config import TrackingConfig
from schemas.messages import K8sObjectEvent, LogLine

NOW = datetime(2026, 3, 1, tzinfo=UTC)
POD = K8sObjectEvent(
    event_type="ADDED", kind="Pod", api_version="v1", namespace="ci", name="pod-a", uid="u",
    resource_version="1", object={"status": {"phase": "Running"}}, event_time=NOW,
    correlation_key="nightly-42",
).to_bytes()  # fmt: skip
LINE = LogLine(
    namespace="ci", pod="pod-a", container="main", line="ERROR boom", event_time=NOW,
    correlation_key="nightly-42",
).to_bytes()  # fmt: skip


def test_source_values_under_their_own_key_give_signals() -> None:
    logs = LogSignals(TrackingConfig())
    assert signals_from_source(True, POD, logs, key=b"ci/pod-a").signals
    assert signals_from_source(False, LINE, logs, (0, 1), key=b"ci/pod-a/main").signals


def test_a_key_the_value_does_not_give_is_refused_without_signals() -> None:
    logs = LogSignals(TrackingConfig())
    refused = signals_from_source(True, POD, logs, key=b"ci/pod-b")
    assert (refused.error_type, refused.signals) == ("KeyMismatch", [])
    assert "here 'ci/pod-a'" in (refused.error or "")
    line = signals_from_source(False, LINE, logs, (0, 1), key=None)
    assert (line.error_type, line.signals) == ("KeyMismatch", [])
    # Refused lines leave the stream untouched: the same line under its key still counts.
    assert signals_from_source(False, LINE, logs, (0, 2), key=b"ci/pod-a/main").signals


def test_an_unreadable_value_is_a_validation_error_whatever_its_key() -> None:
    outcome = signals_from_source(False, b"\xff{", LogSignals(TrackingConfig()), key=b"x")
    assert outcome.error_type == "ValidationError"
    assert (outcome.error or "").startswith("not a valid LogLine")
