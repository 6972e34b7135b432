"""The dispatcher's decisions (sinks.alerts.engine): grouping, dedup, resolution, silences."""

from __future__ import annotations

from datetime import timedelta

from schemas.messages import (
    AlertGroupState,
    DeliveryOutcome,
    LabelMatcher,
    PipelineHealth,
    RunStatus,
    Silence,
)
from sinks.alerts.engine import AlertEngine
from sinks.alerts.notification import Notification
from tests.support.alerts import alerting, anomaly, at, run_state

RUN = "github:acme/shop:1:1"


def engine(**route: object) -> AlertEngine:
    base = {"group_wait_s": 10, "group_interval_s": 60, "receivers": ["console"]}
    return AlertEngine(alerting(route={**base, **route}, run_wait_s=0))


def deliver(eng: AlertEngine, notes: list[Notification], when: float, ts: str = "1.0") -> None:
    for note in notes:
        eng.completed(note, True, at(when), thread_ts=ts, thread_channel="C1")


def test_four_anomalies_within_group_wait_are_one_message_and_later_ones_follow_up() -> None:
    eng = engine()
    eng.observe_run(run_state(), 0, at(0))
    for index in range(4):
        eng.observe_anomaly(anomaly(subject=f"pod-{index}"), 0, at(1 + index))
    assert eng.tick(at(10)) == []  # group_wait counts from the first alert (t=1)
    (first,) = eng.tick(at(11))
    assert (first.reason, first.sequence, len(first.firing)) == ("new", 1, 4)
    deliver(eng, [first], 11, ts="111.1")
    eng.observe_anomaly(anomaly(subject="pod-late"), 0, at(20))
    assert eng.tick(at(70)) == []  # group_interval after the first flush
    (second,) = eng.tick(at(71))
    assert second.reason == "update" and second.sequence == 2
    assert len(second.firing) == 5 and len(second.new_firing) == 1
    assert second.thread_ts == "111.1"  # follow-ups go into the first message's thread


def test_the_same_anomaly_twice_is_one_message_even_after_its_group_ended() -> None:
    eng = engine(send_resolved=True)
    eng.observe_run(run_state(), 0, at(0))
    found = anomaly()
    eng.observe_anomaly(found, 0, at(1))
    eng.observe_anomaly(found, 0, at(2))
    (first,) = eng.tick(at(11))
    assert len(first.firing) == 1
    deliver(eng, [first], 11)
    eng.observe_run(run_state(status=RunStatus.FAILED, version=2, when=30), 0, at(30))
    (resolved,) = eng.tick(at(71))
    assert resolved.reason == "resolved" and [a.alert_id for a in resolved.resolved] == [
        found.anomaly_id
    ]
    deliver(eng, [resolved], 71)
    eng.observe_anomaly(found, 0, at(500))  # redelivered long after (a worker replay)
    for second in (510, 600, 700):
        assert eng.tick(at(second)) == []


def test_a_run_end_resolves_its_alerts_and_without_send_resolved_sends_nothing_more() -> None:
    eng = engine(send_resolved=False)
    eng.observe_run(run_state(), 0, at(0))
    eng.observe_anomaly(anomaly(), 0, at(1))
    deliver(eng, eng.tick(at(11)), 11)
    eng.observe_run(run_state(status=RunStatus.SUCCEEDED, version=2, when=20), 0, at(20))
    assert eng.tick(at(71)) == []
    group = next(iter(eng.groups.values()))
    assert group.alerts == [] and group.notifications["console"].firing_ids == []


def test_a_finding_judged_after_its_run_ended_is_told_firing_then_resolved() -> None:
    eng = engine(send_resolved=True)
    eng.observe_run(run_state(status=RunStatus.FAILED, when=50), 0, at(50))
    eng.observe_anomaly(anomaly("flaky_test", "test_x", when=50), 0, at(110))
    (told,) = eng.tick(at(120))
    assert told.status == "firing" and len(told.firing) == 1
    deliver(eng, [told], 120)
    (resolved,) = eng.tick(at(180))
    assert resolved.status == "resolved" and resolved.sequence == 2


def test_a_silenced_alert_is_recorded_suppressed_once_and_sent_when_the_silence_ends() -> None:
    eng = engine()
    eng.observe_silence(
        Silence(
            silence_id="s1",
            matchers=[LabelMatcher(name="type", value="oom_killed")],
            starts_at=at(0),
            ends_at=at(100),
            created_by="ops",
            comment="known node issue",
            updated_at=at(0),
        )
    )
    eng.observe_run(run_state(), 0, at(0))
    eng.observe_anomaly(anomaly(), 0, at(1))
    eng.observe_anomaly(anomaly("crash_loop", "pod-b"), 0, at(2))
    (note,) = eng.tick(at(11))
    assert [a.labels["type"] for a in note.firing] == ["crash_loop"]
    suppressed = eng.take_changes().deliveries
    assert [(d.outcome, d.silence_ids, len(d.anomaly_ids)) for d in suppressed] == [
        (DeliveryOutcome.SUPPRESSED, ["s1"], 1)
    ]
    deliver(eng, [note], 11)
    assert eng.tick(at(71)) == [] and eng.take_changes().deliveries == []
    (after,) = eng.tick(at(131))  # the silence ended at t=100
    assert {a.labels["type"] for a in after.firing} == {
        "crash_loop",
        "oom_killed",
    }
    assert len(after.new_firing) == 1


def test_routes_match_in_order_with_continue_and_inherit_their_parents_options() -> None:
    config = alerting(
        route={
            "receivers": ["console"],
            "group_wait_s": 5,
            "routes": [
                {"matchers": ['team="payments"'], "receivers": ["pay"], "continue": True},
                {"matchers": ['severity=~"error|critical"'], "receivers": ["oncall"]},
                {"matchers": ['branch="main"'], "receivers": ["main"]},
            ],
        },
        receivers=[{"name": name, "console": {}} for name in ("console", "pay", "oncall", "main")],
        run_wait_s=0,
    )
    eng = AlertEngine(config)
    eng.observe_run(run_state(labels={"team": "payments"}), 0, at(0))
    eng.observe_anomaly(anomaly(), 0, at(1))
    eng.observe_anomaly(anomaly("log_silence", "pod-z", severity="warning"), 0, at(1))
    receivers = sorted((n.receiver, len(n.firing)) for n in eng.tick(at(6)))
    # error: payments (continue) then oncall; warning: payments then main (oncall did not match)
    assert receivers == [("main", 1), ("oncall", 1), ("pay", 2)]


def test_run_summaries_go_only_to_routes_that_ask_for_them() -> None:
    config = alerting(
        route={
            "receivers": ["console"],
            "group_wait_s": 0,
            "routes": [
                {
                    "matchers": ['branch="main"', 'status=~"failed|timed_out"'],
                    "receivers": ["main-failures"],
                    "run_summary": True,
                }
            ],
        },
        receivers=[{"name": n, "console": {}} for n in ("console", "main-failures")],
    )
    eng = AlertEngine(config)
    eng.observe_run(run_state(status=RunStatus.SUCCEEDED, when=5), 0, at(5))
    eng.observe_run(run_state("github:acme/shop:2:1", RunStatus.FAILED, when=6), 1, at(6))
    (note,) = eng.tick(at(6))
    assert note.receiver == "main-failures" and note.firing[0].labels["status"] == "failed"
    deliver(eng, [note], 6)
    assert eng.tick(at(600)) == []  # told once; a summary never "resolves"


def test_a_pipeline_scoped_alert_resolves_when_a_later_run_is_judged_without_it() -> None:
    eng = AlertEngine(
        alerting(
            route={"group_wait_s": 0, "group_interval_s": 60, "send_resolved": True},
            pipeline_judge_wait_s=30,
            run_wait_s=0,
        )
    )
    first, second, third = (f"github:acme/shop:{n}:1" for n in (1, 2, 3))
    eng.observe_run(run_state(first, RunStatus.FAILED, when=10), 0, at(10))
    spike = anomaly("failure_rate_spike", "ci", first, when=10)
    eng.observe_anomaly(spike, 0, at(15))
    deliver(eng, eng.tick(at(15)), 15)
    # The next run still spikes: the first run's alert keeps firing.
    eng.observe_run(run_state(second, RunStatus.FAILED, when=100, version=1), 0, at(100))
    eng.observe_anomaly(anomaly("failure_rate_spike", "ci", second, when=100), 0, at(105))
    deliver(eng, eng.tick(at(105)), 105)
    deliver(eng, eng.tick(at(200)), 200)
    published = eng.take_changes().pipelines
    assert [(p.run_id, p.findings) for p in published] == [
        (first, ["failure_rate_spike/ci"]),
        (second, ["failure_rate_spike/ci"]),
    ]
    first_group = next(g for g in eng.groups.values() if g.group_labels["run_id"] == first)
    assert [a.alert_id for a in first_group.alerts] == [spike.anomaly_id]
    # A clean run, judged 30 s after it ended, resolves both.
    eng.observe_run(run_state(third, RunStatus.SUCCEEDED, when=300), 0, at(300))
    notes = eng.tick(at(331))
    assert sorted(n.status for n in notes) == ["resolved", "resolved"]
    assert all(a.ends_at == at(300) for n in notes for a in n.resolved)


def test_health_from_another_replica_resolves_and_an_older_run_does_not() -> None:
    eng = AlertEngine(alerting(route={"group_wait_s": 0}, run_wait_s=0))
    eng.observe_run(run_state(status=RunStatus.FAILED, when=100), 0, at(100))
    eng.observe_anomaly(anomaly("duration_regression", "test_a", when=100), 0, at(100))
    deliver(eng, eng.tick(at(100)), 100)
    older = PipelineHealth(
        pipeline="ci", branch="main", run_id="x:0", finished_at=at(50), judged_at=at(101)
    )
    eng.observe_pipeline_health(older)
    assert eng.tick(at(160)) == []
    newer = older.model_copy(update={"run_id": "x:2", "finished_at": at(200), "judged_at": at(201)})
    eng.observe_pipeline_health(newer)
    (note,) = eng.tick(at(220))
    assert note.status == "resolved"


def test_an_anomaly_waits_for_its_run_snapshot_for_the_labels_it_routes_on() -> None:
    config = alerting(
        route={
            "group_wait_s": 0,
            "routes": [{"matchers": ['team="payments"'], "receivers": ["pay"]}],
        },
        receivers=[{"name": n, "console": {}} for n in ("console", "pay")],
        run_wait_s=2,
    )
    eng = AlertEngine(config)
    eng.observe_anomaly(anomaly(), 0, at(1))
    assert eng.tick(at(1.5)) == []
    eng.observe_run(run_state(labels={"team": "payments"}), 0, at(1.6))
    (note,) = eng.tick(at(1.6))
    assert note.receiver == "pay"
    # Without a snapshot within run_wait_s, the anomaly goes with what is known.
    eng.observe_anomaly(anomaly(run_id="github:acme/other:9:1"), 1, at(10))
    assert eng.next_due() == at(12)
    (late,) = eng.tick(at(12))
    assert late.receiver == "console"


def test_a_finding_reported_again_with_new_words_is_one_alert_with_the_newest_words() -> None:
    # The tracker reports a finding again when more of its run's inputs arrived (issue 17).
    config = alerting(
        route={"group_wait_s": 10, "group_interval_s": 60, "receivers": ["console"]},
        run_wait_s=5,
    )
    eng = AlertEngine(config)
    first = anomaly(kind="job_backoff_limit", subject="job/nightly")
    newer = first.model_copy(update={"summary": "job nightly-1 reached its backoff limit"})
    eng.observe_anomaly(first, 0, at(1))  # before the run's snapshot: waits
    eng.observe_anomaly(newer, 0, at(2))
    eng.observe_run(run_state(), 0, at(3))
    (note,) = eng.tick(at(13))
    assert [a.summary for a in note.firing] == [newer.summary]
    deliver(eng, [note], 13)
    newest = newer.model_copy(update={"summary": "job nightly-1 reached it after 2 failed pods"})
    eng.observe_anomaly(newest, 0, at(20))
    for second in (80, 200, 400):  # no new message: nothing new is firing
        assert eng.tick(at(second)) == []
    eng.observe_anomaly(anomaly(subject="pod-late/pytest"), 0, at(401))
    due = eng.next_due()
    assert due is not None
    (update,) = eng.tick(due)
    assert update.new_firing == frozenset({anomaly(subject="pod-late/pytest").anomaly_id})
    assert newest.summary in [a.summary for a in update.firing]


def test_repeat_interval_resends_a_still_firing_group() -> None:
    eng = engine(repeat_interval_s=300)
    eng.observe_run(run_state(), 0, at(0))
    eng.observe_anomaly(anomaly(), 0, at(0))
    deliver(eng, eng.tick(at(10)), 10)
    for second in range(70, 310, 60):
        assert eng.tick(at(second)) == []
    (again,) = eng.tick(at(310))
    assert again.reason == "repeat"


def test_a_restored_group_with_a_message_in_flight_is_decided_again_at_once() -> None:
    eng = engine()
    eng.observe_run(run_state(), 0, at(0))
    eng.observe_anomaly(anomaly(), 0, at(0))
    (note,) = eng.tick(at(10))
    changes = eng.take_changes()
    (saved,) = changes.groups
    assert saved.inflight == ["console"]
    # The process died before the message went out; another replica restores the state.
    other = engine()
    for facts in changes.runs:
        other.restore_run(facts)
    other.restore_group(AlertGroupState.model_validate_json(saved.to_bytes()), at(40))
    (again,) = other.tick(at(40))
    assert again.delivery_id == note.delivery_id  # same decision, same id: receivers can dedupe
    deliver(other, [again], 40)
    # ...and once logged as sent, a restore never sends it again.
    third = engine()
    for facts in other.take_changes().runs + changes.runs:
        third.restore_run(facts)
    (logged,) = other.take_changes().groups or [other.groups[note.group_key]]
    third.restore_group(AlertGroupState.model_validate_json(logged.to_bytes()), at(50))
    assert third.tick(at(50)) == [] and third.tick(at(200)) == []


def test_a_message_in_flight_decided_again_with_more_alerts_is_recorded_superseded() -> None:
    eng = engine()
    eng.observe_run(run_state(), 0, at(0))
    eng.observe_anomaly(anomaly(subject="pod-a"), 0, at(0))
    (note,) = eng.tick(at(10))
    eng.observe_anomaly(anomaly(subject="pod-b"), 0, at(12))  # waits for the message in flight
    changes = eng.take_changes()
    # The process dies while the message is retried; the next owner restores the group and
    # decides again with both alerts: a new message, a new delivery id. The old id's record
    # trail (its `retrying` attempts) must end somewhere, saying what became of it.
    other = engine()
    for facts in changes.runs:
        other.restore_run(facts)
    (saved,) = changes.groups
    other.restore_group(AlertGroupState.model_validate_json(saved.to_bytes()), at(40))
    (again,) = other.tick(at(40))
    assert again.delivery_id != note.delivery_id and len(again.firing) == 2
    (record,) = other.take_changes().deliveries
    assert (record.delivery_id, record.outcome) == (note.delivery_id, DeliveryOutcome.SUPERSEDED)
    assert (record.channel, record.group_key) == ("console", note.group_key)
    assert record.anomaly_ids == note.anomaly_ids
    assert again.delivery_id in (record.error or "")
    # Decided again, it is in flight under its new id: a second restore supersedes that one.
    third = engine()
    for facts in changes.runs:
        third.restore_run(facts)
    (saved,) = other.take_changes().groups or [other.groups[note.group_key]]
    third.restore_group(AlertGroupState.model_validate_json(saved.to_bytes()), at(50))
    (same,) = third.tick(at(50))
    assert same.delivery_id == again.delivery_id  # the same decision: its trail goes on
    assert third.take_changes().deliveries == []


def test_groups_and_runs_are_forgotten_after_the_retention() -> None:
    eng = AlertEngine(alerting(route={"group_wait_s": 0}, retention_hours=1, run_wait_s=0))
    eng.observe_run(run_state(status=RunStatus.FAILED, when=0), 3, at(0))
    eng.observe_anomaly(anomaly(when=0), 3, at(0))
    deliver(eng, eng.tick(at(0)), 0)
    deliver(eng, eng.tick(at(60)), 60)
    eng.take_changes()
    eng.tick(at(60) + timedelta(hours=1, seconds=1))
    changes = eng.take_changes()
    assert [p for _k, p in changes.group_tombstones] == [3]
    assert changes.run_tombstones == [(RUN, 3)]
    assert eng.groups == {} and eng.runs == {}


def test_a_failed_delivery_is_not_logged_and_the_next_flush_tries_while_it_still_fires() -> None:
    eng = engine()
    eng.observe_run(run_state(), 0, at(0))
    eng.observe_anomaly(anomaly(), 0, at(0))
    (note,) = eng.tick(at(10))
    eng.completed(note, False, at(11))
    (again,) = eng.tick(at(70))
    assert again.reason == "new" and again.sequence == 1


def test_the_documented_failures_on_main_route_makes_one_thread_per_failed_run() -> None:
    eng = AlertEngine(
        alerting(
            route={
                "receivers": ["console"],
                "group_wait_s": 0,
                "routes": [
                    {
                        "matchers": ['branch="main"', 'status!~"succeeded|cancelled"'],
                        "receivers": ["ci-main"],
                        "run_summary": True,
                    }
                ],
            },
            receivers=[{"name": n, "console": {}} for n in ("console", "ci-main")],
            run_wait_s=0,
        )
    )
    failed, passed = "github:acme/shop:1:1", "github:acme/shop:2:1"
    eng.observe_run(run_state(failed), 0, at(0))
    eng.observe_anomaly(anomaly(run_id=failed), 0, at(1))
    eng.observe_run(run_state(failed, RunStatus.FAILED, version=2, when=2), 0, at(2))
    eng.observe_run(run_state(passed, RunStatus.SUCCEEDED, when=2), 1, at(2))
    eng.observe_run(run_state("github:acme/shop:3:1", RunStatus.FAILED, branch="dev"), 2, at(2))
    notes = eng.tick(at(2))
    assert [(n.receiver, n.run_ids, len(n.firing)) for n in notes] == [("ci-main", [failed], 2)]
    assert {a.kind for a in notes[0].firing} == {"anomaly", "run_finished"}
