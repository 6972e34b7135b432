"""The generic webhook format (producers/webhooks/generic.py, docs/webhooks.md).

Expected values are written from the payloads by hand, not produced by the code.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.webhooks.generic import derive_event_id, normalize, parse
from producers.webhooks.payload import PayloadError
from schemas.messages import CiEvent, CiEventKind, RunStatus

RECEIVED = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)

RUNNING = {
    "run_id": "buildkite:shop-e2e:1842",
    "pipeline": "shop-e2e",
    "status": "running",
    "event_time": "2026-11-27T10:00:05Z",
    "started_at": "2026-11-27T10:00:05Z",
    "repository": "shop/api",
    "branch": "main",
    "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "url": "https://buildkite.com/shop/shop-e2e/builds/1842",
    "labels": {"team": "checkout"},
    "agent": {"name": "bk-agent-3"},  # unknown: accepted, kept in raw
}
STAGE = {
    "run_id": "buildkite:shop-e2e:1842",
    "status": "running",
    "event_time": "2026-11-27T12:04:10+02:00",
    "event_id": "bk-evt-991",
    "stage": {
        "id": "integration",
        "name": "Integration tests",
        "status": "failed",
        "started_at": "2026-11-27T10:01:00Z",
        "finished_at": "2026-11-27T10:04:10Z",
    },
}
NUMBERED = {
    "pipeline": "nightly",
    "run_number": 311,
    "status": "failed",
    "attempt": 2,
    "event_time": "2026-11-27T10:05:00Z",
    "finished_at": "2026-11-27T10:05:00Z",
}


def test_run_event_carries_every_field() -> None:
    [e] = normalize(RUNNING, RECEIVED)
    assert e.provider == "generic"
    assert e.kind is CiEventKind.RUN
    assert e.run_id == "buildkite:shop-e2e:1842"  # verbatim: matches sentinel.io/run-id pods
    assert e.provider_run_id == "buildkite:shop-e2e:1842"
    assert e.status is RunStatus.RUNNING
    assert e.raw_status == "running"
    assert e.pipeline == "shop-e2e"
    assert e.repository == "shop/api"
    assert e.branch == "main"
    assert e.commit_sha == "9fceb02d0ae598e95dc970b74767f19372d61af8"
    assert e.url == "https://buildkite.com/shop/shop-e2e/builds/1842"
    assert e.labels == {"team": "checkout"}
    assert e.attempt == 1
    assert e.event_time == datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
    assert e.started_at == datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
    assert e.finished_at is None
    assert e.received_at == RECEIVED
    assert e.raw == RUNNING
    assert e.event_id.startswith("generic-")


def test_stage_post_gives_run_and_stage_events() -> None:
    run, stage = normalize(STAGE, RECEIVED)
    assert run.kind is CiEventKind.RUN and run.status is RunStatus.RUNNING
    assert run.event_id == "bk-evt-991"
    assert stage.kind is CiEventKind.STAGE
    assert stage.event_id == "bk-evt-991:stage"
    assert stage.status is RunStatus.FAILED
    assert stage.stage_id == "integration"
    assert stage.stage_name == "Integration tests"
    assert stage.started_at == datetime(2026, 11, 27, 10, 1, tzinfo=UTC)
    assert stage.finished_at == datetime(2026, 11, 27, 10, 4, 10, tzinfo=UTC)
    # +02:00 converted to UTC
    assert run.event_time == stage.event_time == datetime(2026, 11, 27, 10, 4, 10, tzinfo=UTC)
    assert run.run_id == stage.run_id


def test_pipeline_and_run_number_make_the_run_id() -> None:
    [e] = normalize(NUMBERED, RECEIVED)
    assert e.run_id == "nightly#311"
    assert e.status is RunStatus.FAILED
    assert e.attempt == 2
    assert e.finished_at == datetime(2026, 11, 27, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize("status", [s.value for s in RunStatus])
def test_every_status_is_accepted_as_is(status: str) -> None:
    [e] = normalize({**NUMBERED, "status": status}, RECEIVED)
    assert e.status.value == status
    assert (e.finished_at is not None) == e.status.terminal


def test_derived_event_id_is_deterministic_and_content_sensitive() -> None:
    first = normalize(RUNNING, RECEIVED)[0].event_id
    assert normalize(copy.deepcopy(RUNNING), RECEIVED)[0].event_id == first
    # a new fact is a new event; unrelated fields (url, labels) do not make it one
    assert normalize({**RUNNING, "status": "succeeded"}, RECEIVED)[0].event_id != first
    later = {**RUNNING, "event_time": "2026-11-27T10:00:06Z"}
    assert normalize(later, RECEIVED)[0].event_id != first
    assert normalize({**RUNNING, "url": "https://x"}, RECEIVED)[0].event_id == first
    # the same instant written with another offset is the same event
    shifted = {**RUNNING, "event_time": "2026-11-27T11:00:05+01:00"}
    assert normalize(shifted, RECEIVED)[0].event_id == first
    assert derive_event_id(parse(RUNNING)) == first


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({k: v for k, v in RUNNING.items() if k != "status"}, "status"),
        ({**RUNNING, "status": "done"}, "status"),
        ({k: v for k, v in RUNNING.items() if k != "event_time"}, "event_time"),
        ({**RUNNING, "event_time": "2026-11-27T10:00:05"}, "event_time"),  # no offset
        ({**RUNNING, "event_time": "soon"}, "event_time"),
        ({"status": "running", "event_time": "2026-11-27T10:00:05Z"}, "run_id"),
        ({"pipeline": "p", "status": "running", "event_time": "2026-11-27T10:00:05Z"}, "run_id"),
        ({**RUNNING, "run_id": ""}, "run_id"),
        ({**RUNNING, "attempt": 0}, "attempt"),
        ({**RUNNING, "labels": {"a": 1}}, "labels.a"),
        ({**STAGE, "stage": {"name": "x", "status": "failed"}}, "stage.id"),
        ({**STAGE, "stage": {"id": "x", "status": "broken"}}, "stage.status"),
        ({**STAGE, "stage": "integration"}, "stage"),
    ],
)
def test_payload_errors_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        normalize(payload, RECEIVED)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
FIELDS = "run_id pipeline run_number status event_time event_id attempt labels started_at"
keys = st.sampled_from([*FIELDS.split(), "finished_at", "stage", "url", "commit"])


def check(body: Any) -> None:
    try:
        events = normalize(body, RECEIVED)
    except PayloadError as exc:
        assert str(exc)
        return
    for e in events:
        CiEvent.model_validate_json(e.to_bytes())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.text(max_size=10) | keys, json_values, max_size=6))
def test_fuzz_arbitrary_objects_only_raise_payload_error(body: dict[str, Any]) -> None:
    check(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(keys, json_values, max_size=4), st.sampled_from([RUNNING, STAGE, NUMBERED]))
def test_fuzz_mutated_posts_only_raise_payload_error(
    changes: dict[str, Any], base: dict[str, Any]
) -> None:
    check({**copy.deepcopy(base), **changes})
