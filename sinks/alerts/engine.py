"""The dispatcher's decisions: runs and anomalies in, messages and state records out (pure).

No I/O and no clock: every method takes ``now``. The Kafka adapter (`sinks.alerts.service`)
passes the wall clock; `sinks.alerts.backtest` passes event time, so `sentinel analyze` shows
what each receiver would have been sent.

Lifecycle (docs/alerts.md has the user's view):

1. A run snapshot updates what is known of the run (`AlertRun`). An anomaly becomes an alert
   (`sinks.alerts.labels`) once its run's snapshot is known, or after `run_wait_s` with what is
   known; a run's first final snapshot also becomes a ``run_finished`` alert.
2. The alert is routed (`sinks.alerts.routing`) into one aggregation group per route it lands on
   (group key = route, input partition, group labels). A new group flushes after `group_wait`,
   then every `group_interval` while it has alerts.
3. A flush splits the group's alerts into firing and resolved (`_resolved_at`), leaves out the
   silenced ones (recording each as suppressed, once per receiver) and, per receiver, asks
   `nflog.needs_update` whether a message is due; if so it returns a `Notification`.
4. `completed` writes what was sent into the receiver's notification log entry. When every
   receiver of a flush is done, its alerts count as announced and its resolved alerts leave the
   group. A group with no alerts keeps its log for `retention_hours`, so a redelivered anomaly
   is not announced again.

What resolves an alert: a run-scoped alert when its run has ended; a pipeline-scoped one
(`pipeline_scoped_types`) when a later run of the same pipeline and branch has been judged
without the same finding (type and subject), as reported by the `PipelineHealth` record that
the dispatcher owning that run publishes `pipeline_judge_wait_s` after it ended. Either way only
once it has been announced as firing, so a finding judged after its run ended is still told.
A ``run_finished`` alert is told once and then leaves its group (it never "resolves").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runtime.alerting_config import AlertingConfig
from schemas.messages import (
    AlertDelivery,
    AlertGroupState,
    AlertInstance,
    AlertRun,
    Anomaly,
    DeliveryOutcome,
    InflightMessage,
    NotificationLogEntry,
    PipelineHealth,
    RunState,
    RunStatus,
    Silence,
)
from sinks.alerts.labels import RUN_FINISHED, anomaly_alert, run_finished_alert
from sinks.alerts.matchers import matches_all
from sinks.alerts.nflog import needs_update
from sinks.alerts.notification import Notification, Reason, delivery_id, thread_id
from sinks.alerts.routing import Route, build_tree, group_key

EXPIRE_EVERY = timedelta(seconds=60)
PipelineKey = tuple[str, str | None]


@dataclass
class StateChanges:
    """What to persist since the last `take_changes` (the adapter writes, then commits)."""

    runs: list[AlertRun] = field(default_factory=list)
    run_tombstones: list[tuple[str, int]] = field(default_factory=list)
    groups: list[AlertGroupState] = field(default_factory=list)
    group_tombstones: list[tuple[str, int]] = field(default_factory=list)
    pipelines: list[PipelineHealth] = field(default_factory=list)
    deliveries: list[AlertDelivery] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (
                self.runs,
                self.run_tombstones,
                self.groups,
                self.group_tombstones,
                self.pipelines,
                self.deliveries,
            )
        )


@dataclass
class _Flush:
    """A flush whose messages are out: its alerts, those resolved, receivers still pending."""

    ids: frozenset[str]
    resolved: frozenset[str]
    waiting: set[str]


def finding(alert_type: str, subject: str) -> str:
    return f"{alert_type}/{subject}"


class AlertEngine:
    def __init__(self, config: AlertingConfig) -> None:
        self.config = config
        self.tree = build_tree(config.route)
        self.routes = {route.route_id: route for route in self.tree.walk()}
        self.kinds = {receiver.name: receiver.kind for receiver in config.receivers}
        self.resend_s = {
            receiver.name: receiver.alertmanager.resend_interval_s
            for receiver in config.receivers
            if receiver.alertmanager is not None
        }
        self.pipeline_types = frozenset(config.pipeline_scoped_types)
        self.runs: dict[str, AlertRun] = {}
        self.groups: dict[str, AlertGroupState] = {}
        self.silences: dict[str, Silence] = {}
        self.pipelines: dict[PipelineKey, PipelineHealth] = {}
        self._flushes: dict[str, _Flush] = {}
        # Restored groups' messages that were in flight, until the group is decided again.
        self._restored_inflight: dict[str, dict[str, InflightMessage]] = {}
        self._dirty_runs: set[str] = set()
        self._dirty_groups: set[str] = set()
        # Runs time may act on (an anomaly waiting for the snapshot, a judgement due), so that
        # `tick` and `next_due` do not walk every run known for the retention period.
        self._watch: set[str] = set()
        self._changes = StateChanges()
        self._expired_at: datetime | None = None

    # -- input ------------------------------------------------------------------------------

    def observe_run(self, run: RunState, partition: int, now: datetime) -> None:
        facts = self.runs.get(run.run_id)
        if facts is not None and facts.known and run.version < facts.version:
            return  # an older snapshot delivered late: newest wins
        if facts is None:
            facts = self.runs[run.run_id] = AlertRun(
                run_id=run.run_id, partition=partition, first_seen=now, updated_at=now
            )
        first_end = run.status.terminal and facts.ended_seen is None
        facts.known, facts.partition, facts.version = True, partition, run.version
        for name in (
            "provider",
            "provider_run_id",
            "repository",
            "pipeline",
            "branch",
            "namespace",
            "commit_sha",
        ):
            setattr(facts, name, getattr(run, name))
        facts.status, facts.url, facts.labels = run.status.value, run.url, dict(run.labels)
        facts.started_at, facts.finished_at = run.started_at, run.finished_at
        facts.duration_s, facts.tests = run.duration_s, run.tests
        facts.updated_at = now
        if first_end:
            facts.ended_seen = now
            facts.judgeable = (
                run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED) and run.attribution is None
            )
            self._route(run_finished_alert(facts, self.config.owners, now), facts, now)
            self._watch.add(run.run_id)
        pending, facts.pending = facts.pending, []
        for anomaly in pending:
            self._admit(anomaly, facts, now)
        self._dirty_runs.add(run.run_id)

    def observe_anomaly(self, anomaly: Anomaly, partition: int, now: datetime) -> None:
        facts = self.runs.get(anomaly.run_id)
        if facts is None:
            facts = self.runs[anomaly.run_id] = AlertRun(
                run_id=anomaly.run_id, partition=partition, known=False, first_seen=now,
                updated_at=now,
            )  # fmt: skip
        self._dirty_runs.add(anomaly.run_id)
        if not facts.known and now < facts.first_seen + self._run_wait:
            # A finding is reported again when its words change (issue 17): the newest words
            # wait in the first report's place.
            ids = [waiting.anomaly_id for waiting in facts.pending]
            if anomaly.anomaly_id in ids:
                facts.pending[ids.index(anomaly.anomaly_id)] = anomaly
            else:
                facts.pending.append(anomaly)
            self._watch.add(anomaly.run_id)
            return
        self._admit(anomaly, facts, now)

    def observe_silence(self, silence: Silence) -> None:
        known = self.silences.get(silence.silence_id)
        if known is None or silence.updated_at >= known.updated_at:
            self.silences[silence.silence_id] = silence

    def observe_pipeline_health(self, record: PipelineHealth) -> None:
        key = (record.pipeline, record.branch)
        known = self.pipelines.get(key)
        if known is None or (record.finished_at, record.judged_at) >= (
            known.finished_at,
            known.judged_at,
        ):
            self.pipelines[key] = record

    def restore_run(self, facts: AlertRun) -> None:
        self.runs[facts.run_id] = facts
        self._watch.add(facts.run_id)

    def restore_group(self, group: AlertGroupState, now: datetime) -> None:
        if group.inflight:
            # A message was decided and perhaps not delivered before the last owner stopped:
            # decide again now (the notification log says whether it was).
            self._restored_inflight[group.group_key] = dict(group.inflight_messages)
            group.inflight, group.inflight_messages = [], {}
            group.next_flush_at = now
        self.groups[group.group_key] = group

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the runs and groups of partitions this replica no longer owns."""
        gone = set(partitions)
        for run_id in [r for r, facts in self.runs.items() if facts.partition in gone]:
            del self.runs[run_id]
            self._dirty_runs.discard(run_id)
            self._watch.discard(run_id)
        for key in [k for k, group in self.groups.items() if group.partition in gone]:
            del self.groups[key]
            self._flushes.pop(key, None)
            self._restored_inflight.pop(key, None)
            self._dirty_groups.discard(key)

    # -- decisions --------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Notification]:
        """Everything time decides: waiting anomalies, pipeline judgements, due flushes."""
        self._release_pending(now)
        self._judge_pipelines(now)
        notifications: list[Notification] = []
        for group in list(self.groups.values()):
            due = group.next_flush_at
            if due is not None and due <= now and group.group_key not in self._flushes:
                notifications.extend(self._flush(group, now))
        if self._expired_at is None or now - self._expired_at >= EXPIRE_EVERY:
            self._expire(now)
            self._expired_at = now
        return notifications

    def next_due(self) -> datetime | None:
        """The earliest time `tick` has something to do (None: nothing scheduled)."""
        times = [
            group.next_flush_at
            for key, group in self.groups.items()
            if group.next_flush_at is not None and key not in self._flushes
        ]
        wait = self._run_wait
        judge = timedelta(seconds=self.config.pipeline_judge_wait_s)
        for facts in self._watched():
            if facts.pending and not facts.known:
                times.append(facts.first_seen + wait)
            if self._awaits_judgement(facts):
                assert facts.ended_seen is not None
                times.append(facts.ended_seen + judge)
        return min(times) if times else None

    def completed(
        self,
        notification: Notification,
        sent: bool,
        now: datetime,
        thread_ts: str | None = None,
        thread_channel: str | None = None,
    ) -> None:
        """A message is done: delivered (`sent`), or failed for good (not logged as told)."""
        group = self.groups.get(notification.group_key)
        if group is None:
            self._flushes.pop(notification.group_key, None)
            return  # the partition moved to another replica meanwhile
        receiver = notification.receiver
        if sent:
            previous = group.notifications.get(receiver)
            group.notifications[receiver] = NotificationLogEntry(
                receiver=receiver,
                firing_ids=sorted(alert.alert_id for alert in notification.firing),
                resolved_ids=sorted(alert.alert_id for alert in notification.resolved),
                sent_at=now,
                delivery_id=notification.delivery_id,
                messages=(previous.messages + 1) if previous else 1,
                thread_ts=(previous.thread_ts if previous else None) or thread_ts,
                thread_channel=(previous.thread_channel if previous else None) or thread_channel,
            )
        if receiver in group.inflight:
            group.inflight.remove(receiver)
        group.inflight_messages.pop(receiver, None)
        flush = self._flushes.get(group.group_key)
        if flush is not None:
            flush.waiting.discard(receiver)
            if not flush.waiting:
                del self._flushes[group.group_key]
                self._finish_flush(group, flush.ids, flush.resolved)
        group.updated_at = now
        self._dirty_groups.add(group.group_key)

    def take_changes(self) -> StateChanges:
        changes, self._changes = self._changes, StateChanges()
        changes.runs = [self.runs[r] for r in sorted(self._dirty_runs) if r in self.runs]
        changes.groups = [self.groups[k] for k in sorted(self._dirty_groups) if k in self.groups]
        self._dirty_runs.clear()
        self._dirty_groups.clear()
        return changes

    # -- admitting and routing --------------------------------------------------------------

    @property
    def _run_wait(self) -> timedelta:
        return timedelta(seconds=self.config.run_wait_s)

    def _admit(self, anomaly: Anomaly, facts: AlertRun, now: datetime) -> None:
        scope = "pipeline" if anomaly.type in self.pipeline_types else "run"
        if scope == "pipeline":
            found = finding(anomaly.type, anomaly.subject)
            if found not in facts.findings:
                facts.findings.append(found)
                if facts.health_published:
                    self._publish_health(facts, now)  # a late finding: the judgement changed
        alert = anomaly_alert(anomaly, facts, scope, self.config.owners, now)
        self._route(alert, facts, now)

    def _route(self, alert: AlertInstance, facts: AlertRun, now: datetime) -> None:
        for route in self.tree.match(alert.labels):
            if alert.kind == RUN_FINISHED and not route.run_summary:
                continue
            key = group_key(route, alert.labels, facts.partition)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = AlertGroupState(
                    group_key=key,
                    route_id=route.route_id,
                    partition=facts.partition,
                    receivers=list(route.receivers),
                    group_labels=route.group_labels(alert.labels),
                    created_at=now,
                    updated_at=now,
                )
            self._add(group, route, alert, now)

    def _add(
        self, group: AlertGroupState, route: Route, alert: AlertInstance, now: datetime
    ) -> None:
        if alert.alert_id in group.finished:
            return  # resolved, told and gone: a redelivery changes nothing
        known = next((a for a in group.alerts if a.alert_id == alert.alert_id), None)
        if known is not None:
            # The same anomaly again (redelivery, a re-judged run): newest words, same alert.
            known.summary, known.evidence, known.severity = (
                alert.summary,
                alert.evidence,
                alert.severity,
            )
        else:
            group.alerts.append(alert.model_copy())
            if group.next_flush_at is None:
                group.next_flush_at = now + timedelta(seconds=route.group_wait_s)
        group.updated_at = now
        self._dirty_groups.add(group.group_key)

    def _watched(self) -> list[AlertRun]:
        """The watched runs that still need time to act; the others leave the watch."""
        found = []
        for run_id in list(self._watch):
            facts = self.runs.get(run_id)
            if facts is not None and (
                (facts.pending and not facts.known) or self._awaits_judgement(facts)
            ):
                found.append(facts)
            else:
                self._watch.discard(run_id)
        return found

    def _release_pending(self, now: datetime) -> None:
        for facts in self._watched():
            if facts.pending and not facts.known and now >= facts.first_seen + self._run_wait:
                pending, facts.pending = facts.pending, []
                for anomaly in pending:
                    self._admit(anomaly, facts, now)
                self._dirty_runs.add(facts.run_id)

    # -- pipeline judgements ------------------------------------------------------------------

    def _awaits_judgement(self, facts: AlertRun) -> bool:
        return (
            facts.ended_seen is not None
            and facts.judgeable
            and not facts.health_published
            and bool(facts.pipeline)
        )

    def _judge_pipelines(self, now: datetime) -> None:
        wait = timedelta(seconds=self.config.pipeline_judge_wait_s)
        for facts in self._watched():
            if self._awaits_judgement(facts):
                assert facts.ended_seen is not None
                if now >= facts.ended_seen + wait:
                    self._publish_health(facts, now)

    def _publish_health(self, facts: AlertRun, now: datetime) -> None:
        assert facts.pipeline is not None
        record = PipelineHealth(
            pipeline=facts.pipeline,
            branch=facts.branch,
            run_id=facts.run_id,
            finished_at=facts.finished_at or facts.ended_seen or now,
            findings=sorted(facts.findings),
            judged_at=now,
        )
        facts.health_published = True
        self._dirty_runs.add(facts.run_id)
        self.observe_pipeline_health(record)
        self._changes.pipelines.append(record)

    # -- flushing -----------------------------------------------------------------------------

    def _flush(self, group: AlertGroupState, now: datetime) -> list[Notification]:
        route = self.routes.get(group.route_id, self.tree)
        firing, resolved = self._split(group)
        notifications = []
        for receiver in group.receivers:
            if receiver not in self.kinds:
                continue  # removed from the config since the group was made
            notification = self._flush_receiver(group, route, receiver, firing, resolved, now)
            if notification is not None:
                notifications.append(notification)
        self._supersede(group, notifications, now)
        ids = frozenset(alert.alert_id for alert in group.alerts)
        gone = frozenset(alert.alert_id for alert in resolved)
        group.last_flush_at, group.flushes, group.updated_at = now, group.flushes + 1, now
        group.next_flush_at = now + timedelta(seconds=self._interval(group, route))
        if notifications:
            group.inflight = [n.receiver for n in notifications]
            group.inflight_messages = {
                n.receiver: InflightMessage(delivery_id=n.delivery_id, anomaly_ids=n.anomaly_ids)
                for n in notifications
            }
            waiting = {n.receiver for n in notifications}
            self._flushes[group.group_key] = _Flush(ids, gone, waiting)
        else:
            self._finish_flush(group, ids, gone)
        self._dirty_groups.add(group.group_key)
        return notifications

    def _supersede(
        self, group: AlertGroupState, notifications: list[Notification], now: datetime
    ) -> None:
        """Messages in flight when the last owner stopped, now decided again differently (with
        the alerts that came meanwhile, so under another delivery id): no attempt of theirs
        will follow, so their record trail ends here rather than at a `retrying` forever."""
        before = self._restored_inflight.pop(group.group_key, None)
        if not before:
            return
        decided = {n.receiver: n for n in notifications}
        for receiver, old in sorted(before.items()):
            new = decided.get(receiver)
            if new is not None and new.delivery_id == old.delivery_id:
                continue  # the same decision: its attempts go on under the same id
            self._changes.deliveries.append(
                AlertDelivery(
                    delivery_id=old.delivery_id,
                    channel=receiver,
                    channel_type=self.kinds.get(receiver),
                    group_key=group.group_key,
                    anomaly_ids=list(old.anomaly_ids),
                    outcome=DeliveryOutcome.SUPERSEDED,
                    error=(
                        f"decided again after a restart: delivery {new.delivery_id}"
                        if new is not None
                        else "decided again after a restart: nothing left to send"
                    ),
                    attempted_at=now,
                )
            )

    def _interval(self, group: AlertGroupState, route: Route) -> float:
        interval = route.group_interval_s
        for receiver in group.receivers:
            if receiver in self.resend_s:  # Alertmanager forgets what is not re-sent
                interval = min(interval, self.resend_s[receiver])
        return interval

    def _finish_flush(
        self, group: AlertGroupState, ids: frozenset[str], resolved: frozenset[str]
    ) -> None:
        announced = set(group.announced)
        group.announced.extend(sorted(ids - announced))
        kept = []
        for alert in group.alerts:
            if alert.alert_id in resolved or (alert.kind == RUN_FINISHED and alert.alert_id in ids):
                group.finished.append(alert.alert_id)
            else:
                kept.append(alert)
        group.alerts = kept
        if not group.alerts:
            group.next_flush_at = None

    def _split(self, group: AlertGroupState) -> tuple[list[AlertInstance], list[AlertInstance]]:
        announced = set(group.announced)
        firing, resolved = [], []
        for alert in group.alerts:
            ends = self._resolved_at(alert, announced)
            if ends is None:
                firing.append(alert)
            else:
                alert.ends_at = alert.ends_at or ends
                resolved.append(alert)
        return firing, resolved

    def _resolved_at(self, alert: AlertInstance, announced: set[str]) -> datetime | None:
        if alert.kind == RUN_FINISHED or alert.alert_id not in announced:
            return None
        if alert.scope == "run":
            facts = self.runs.get(alert.run_id)
            if facts is None:
                return alert.detected_at  # forgotten after its retention: long over
            if facts.ended_seen is None:
                return None
            return facts.finished_at or facts.ended_seen
        key = (alert.labels.get("pipeline", ""), alert.labels.get("branch") or None)
        health = self.pipelines.get(key)
        if (
            health is not None
            and health.run_id != alert.run_id
            and health.finished_at > alert.detected_at
            and finding(alert.labels.get("type", ""), alert.subject) not in health.findings
        ):
            return health.finished_at
        return None

    def _flush_receiver(
        self,
        group: AlertGroupState,
        route: Route,
        receiver: str,
        firing: list[AlertInstance],
        resolved: list[AlertInstance],
        now: datetime,
    ) -> Notification | None:
        muted = self._muted(firing + resolved, now)
        self._record_suppressed(
            group, receiver, [a for a in firing if a.alert_id in muted], muted, now
        )
        told_firing = [alert for alert in firing if alert.alert_id not in muted]
        told_resolved = [alert for alert in resolved if alert.alert_id not in muted]
        is_am = receiver in self.resend_s
        send_resolved = route.send_resolved or is_am  # Alertmanager needs endsAt to resolve
        repeat = min(route.repeat_interval_s, self.resend_s.get(receiver, route.repeat_interval_s))
        entry = group.notifications.get(receiver)
        firing_ids = [alert.alert_id for alert in told_firing]
        resolved_ids = [alert.alert_id for alert in told_resolved]
        if not needs_update(entry, firing_ids, resolved_ids, send_resolved, repeat, now):
            return None
        if entry is not None and not firing_ids and not send_resolved:
            # All resolved and the route does not tell resolutions: clear the log, send nothing.
            group.notifications[receiver] = entry.model_copy(
                update={"firing_ids": [], "resolved_ids": sorted(resolved_ids), "sent_at": now}
            )
            return None
        sequence = entry.messages + 1 if entry else 1
        new_firing = frozenset(firing_ids) - frozenset(entry.firing_ids if entry else ())
        new_resolved = frozenset(resolved_ids) - frozenset(entry.resolved_ids if entry else ())
        return Notification(
            delivery_id=delivery_id(group.group_key, receiver, firing_ids, resolved_ids, sequence),
            receiver=receiver,
            group_key=group.group_key,
            partition=group.partition,
            route_id=group.route_id,
            group_labels=dict(group.group_labels),
            firing=tuple(told_firing),
            resolved=tuple(told_resolved),
            new_firing=new_firing,
            new_resolved=new_resolved,
            runs=self._runs_of(told_firing + told_resolved),
            reason=_reason(entry is None, firing_ids, new_firing, new_resolved),
            sequence=sequence,
            created_at=now,
            send_resolved=send_resolved,
            thread_ts=entry.thread_ts if entry else None,
            thread_channel=entry.thread_channel if entry else None,
            first_message_id=thread_id(group.group_key, receiver),
        )

    def _muted(self, alerts: list[AlertInstance], now: datetime) -> dict[str, list[str]]:
        active = [s for s in self.silences.values() if s.state_at(now) == "active"]
        muted: dict[str, list[str]] = {}
        for alert in alerts:
            ids = [s.silence_id for s in active if matches_all(s.matchers, alert.labels)]
            if ids:
                muted[alert.alert_id] = ids
        return muted

    def _record_suppressed(
        self,
        group: AlertGroupState,
        receiver: str,
        alerts: list[AlertInstance],
        muted: dict[str, list[str]],
        now: datetime,
    ) -> None:
        recorded = group.suppressed.setdefault(receiver, [])
        fresh = [alert for alert in alerts if alert.alert_id not in recorded]
        if not fresh:
            return
        ids = [alert.alert_id for alert in fresh]
        recorded.extend(ids)
        silences = sorted({s for alert in fresh for s in muted[alert.alert_id]})
        self._changes.deliveries.append(
            AlertDelivery(
                delivery_id=delivery_id(group.group_key, receiver, ids, [], 0),
                channel=receiver,
                channel_type=self.kinds.get(receiver),
                group_key=group.group_key,
                anomaly_ids=[alert.alert_id for alert in fresh if alert.kind == "anomaly"],
                outcome=DeliveryOutcome.SUPPRESSED,
                attempted_at=now,
                run_ids=sorted({alert.run_id for alert in fresh}),
                status="firing",
                title="; ".join(alert.summary for alert in fresh)[:300],
                silence_ids=silences,
            )
        )

    def _runs_of(self, alerts: list[AlertInstance]) -> tuple[AlertRun, ...]:
        seen: dict[str, AlertRun] = {}
        for alert in alerts:
            facts = self.runs.get(alert.run_id)
            if facts is not None and alert.run_id not in seen:
                seen[alert.run_id] = facts
        return tuple(seen.values())

    # -- forgetting ---------------------------------------------------------------------------

    def _expire(self, now: datetime) -> None:
        keep = timedelta(hours=self.config.retention_hours)
        for key, group in list(self.groups.items()):
            if not group.alerts and key not in self._flushes and group.updated_at + keep <= now:
                del self.groups[key]
                self._dirty_groups.discard(key)
                self._changes.group_tombstones.append((key, group.partition))
        for run_id, facts in list(self.runs.items()):
            if not facts.pending and facts.updated_at + keep <= now:
                del self.runs[run_id]
                self._dirty_runs.discard(run_id)
                self._watch.discard(run_id)
                self._changes.run_tombstones.append((run_id, facts.partition))


def _reason(
    first: bool, firing: list[str], new_firing: frozenset[str], new_resolved: frozenset[str]
) -> Reason:
    if first:
        return "new"
    if not firing:
        return "resolved"
    if new_firing or new_resolved:
        return "update"
    return "repeat"
