"""Properties of the engine over arbitrary input orders (hypothesis): every anomaly is told
firing exactly once (and resolved once), redelivery changes nothing, and an ended run's group
ends resolved."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.messages import Anomaly, RunState, RunStatus
from sinks.alerts.backtest import Simulated, backtest
from tests.support.alerts import alerting, anomaly, run_state

RUN = "github:acme/shop:1:1"

events = st.lists(
    st.tuples(st.floats(min_value=0, max_value=300), st.integers(min_value=0, max_value=5)),
    min_size=1,
    max_size=12,
)


def scenario(found: list[tuple[float, int]], end_at: float) -> list[tuple[RunState | Anomaly, int]]:
    items: list[tuple[RunState | Anomaly, int]] = [(run_state(RUN, when=0), 0)]
    for when, index in found:
        item = anomaly(subject=f"pod-{index}", when=index)  # same index: same anomaly id
        item = item.model_copy(update={"detected_at": item.detected_at + timedelta(seconds=when)})
        items.append((item, 0))
    ended = run_state(RUN, RunStatus.FAILED, version=2, when=end_at)
    items.append((ended, 0))
    return items


def told(sent: list[Simulated]) -> list[str]:
    return sorted(aid for s in sent for aid in s.notification.new_firing)


@settings(max_examples=60, deadline=None)
@given(
    found=events,
    end_at=st.floats(min_value=1, max_value=400),
    wait=st.sampled_from([0, 5, 30]),
    interval=st.sampled_from([1, 20, 60]),
    send_resolved=st.booleans(),
)
def test_each_anomaly_is_told_once_and_redelivery_changes_nothing(
    found: list[tuple[float, int]],
    end_at: float,
    wait: int,
    interval: int,
    send_resolved: bool,
) -> None:
    config = alerting(
        route={
            "group_wait_s": wait,
            "group_interval_s": interval,
            "send_resolved": send_resolved,
        },
        run_wait_s=0,
    )
    sent = backtest(config, scenario(found, end_at))
    distinct = {anomaly(subject=f"pod-{index}", when=index).anomaly_id for _w, index in found}
    assert told(sent) == sorted(distinct)
    # Every message says something new (this config has no repeats within the horizon).
    assert all(s.notification.new_firing or s.notification.new_resolved or
               s.notification.reason == "resolved" for s in sent)  # fmt: skip
    again = backtest(config, scenario(found + found, end_at))
    assert [(s.at, s.notification.delivery_id) for s in again] == [
        (s.at, s.notification.delivery_id) for s in sent
    ]
    if send_resolved:
        # Each is told resolved once too (resolved alerts leave the group once told), and
        # the group's last message says it is all over.
        assert sorted(aid for s in sent for aid in s.notification.new_resolved) == sorted(distinct)
        assert sent[-1].notification.status == "resolved"
