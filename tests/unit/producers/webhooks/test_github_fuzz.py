"""Any JSON object posted as a supported event either normalises or is refused with PayloadError
(the receiver's 400); nothing else may escape, since that would be a 500 for a client's mistake."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.webhooks.github import Ping, normalize
from producers.webhooks.payload import Ignored, PayloadError
from schemas.messages import CiEvent
from tests.support.paths import DATA

CORPUS = DATA / "github-webhooks"
EVENTS = ["workflow_run", "workflow_job", "check_suite", "check_run"]
SAMPLES = {
    event: [json.loads(path.read_text()) for path in sorted((CORPUS / event).glob("*.json"))]
    for event in EVENTS
}
NOW = datetime(2026, 11, 27, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def replace(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    result = copy.deepcopy(document)
    target = result
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = new
    return result


def check(event: str, body: Any) -> None:
    try:
        result = normalize(event, "fuzz-delivery", body, NOW)
    except PayloadError as exc:
        assert str(exc)  # the 400 carries a reason
        return
    assert isinstance(result, CiEvent | Ping | Ignored)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data(), event=st.sampled_from(EVENTS))
def test_corrupting_any_field_of_a_real_payload_is_400_or_normalised(
    data: st.DataObject, event: str
) -> None:
    sample = data.draw(st.sampled_from(SAMPLES[event]))
    path = data.draw(st.sampled_from(paths(sample)))
    check(event, replace(sample, path, data.draw(json_values)))


@settings(max_examples=200, deadline=None)
@given(
    event=st.sampled_from([*EVENTS, "ping", "push"]),
    body=st.dictionaries(st.text(max_size=12), json_values, max_size=5),
)
def test_arbitrary_objects_are_400_or_normalised(event: str, body: dict[str, Any]) -> None:
    check(event, body)


@pytest.mark.parametrize("event", EVENTS)
def test_every_sample_normalises(event: str) -> None:
    for sample in SAMPLES[event]:
        assert isinstance(normalize(event, "d", sample, NOW), CiEvent)
