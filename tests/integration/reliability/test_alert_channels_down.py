"""Reliability suite (issue 17, item 5): every alert channel down for a minute, the dispatcher
killed with SIGKILL in the middle of it — and afterwards every alert told exactly once per
channel, nothing lost, nothing twice, in order.

`sentinel alerts` runs as its own process on the real broker, with one route to three
receivers: Slack (incoming webhook; the loopback stand-in answers 429 with Retry-After = the
seconds left of the minute), email (nothing listens on the SMTP port for the minute: connection
refused; then a real aiosmtpd server starts on that port) and the signed webhook (503 for the
minute). One run's group was told before the outage; during it that group gets follow-ups and
new groups (runs) start; the first dispatcher is killed while all of them wait for the channels,
and a second one restores them and takes more anomalies. What the three servers received is
counted by alert (each anomaly marked new in exactly one message per channel) and by message
(each group's messages once, in sequence order, the same on every channel); the delivery
records (`sentinel.alert-deliveries`) and the second process's /metrics must say what happened.

About 85 s (the minute of outage is the test), so part of `make test`.
"""

from __future__ import annotations

import email
import re
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from runtime.config import Settings
from schemas.messages import AlertDelivery, DeliveryOutcome
from sentinel.brokers import free_port
from sentinel.topic_admin import ensure_topics
from tests.support.alert_dispatcher import Dispatcher, Input, wait_committed, wait_for
from tests.support.alert_servers import FakeSlack, LoopbackServer, Outage, WebhookReceiver
from tests.support.alerts import anomaly, run_state
from tests.support.helpers import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

OUTAGE_S = 60.0
# Once the channels answer again, everything waiting must be out within this: the Slack rate
# limit (1 message/s) times the messages, plus one backoff step (max_backoff_s) for the
# channels that gave no Retry-After. A minute's wait per message would blow it at once.
DRAIN_S = 20.0
SECRET = "chaos-s3cret"
CHANNELS = ("slack", "mail", "hook")
NEW_SLACK = re.compile(r"\(new\) oom_killed on (\S+)")
NEW_MAIL = re.compile(r"oom_killed on (\S+) \(new\)")
DELIVERIES = "sentinel_alert_deliveries_total"
SLACK_CONTEXT = re.compile(r"message (\d+) · group `([^`]+)`")


def run_id(n: int) -> str:
    return f"github:acme/chaos:{n}:1"


class MailServer:
    """aiosmtpd on a fixed loopback port, started only when the test says so."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[float, Any]] = []
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((time.monotonic(), envelope))
        return "250 Message accepted"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


class Servers:
    def __init__(self) -> None:
        self.slack = FakeSlack()
        self.slack_down = Outage(self.slack.app, 429, retry_after=True)
        self.hook = WebhookReceiver(SECRET)
        self.hook_down = Outage(self.hook.app, 503)
        self.mail = MailServer()
        self.mail_back: threading.Timer | None = None
        self.http = [LoopbackServer(self.slack_down), LoopbackServer(self.hook_down)]

    def start(self) -> None:
        for server in self.http:
            server.start()
        self.mail.start()

    def go_down(self) -> float:
        """Every channel fails from now for OUTAGE_S; returns when they come back."""
        assert self.mail.controller is not None
        self.mail.controller.stop()  # the port is closed: connection refused
        self.mail.controller = None
        self.slack_down.begin(OUTAGE_S)
        self.hook_down.begin(OUTAGE_S)
        self.mail_back = threading.Timer(OUTAGE_S, self.mail.start)  # same port, a minute later
        self.mail_back.start()
        return time.monotonic() + OUTAGE_S

    def stop(self) -> None:
        if self.mail_back is not None:
            self.mail_back.cancel()
            self.mail_back.join()
        for server in self.http:
            server.stop()
        self.mail.stop()


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    running = Servers()
    running.start()
    monkeypatch.setenv("TEST_SLACK_URL", f"{running.http[0].url}/hooks/T1")
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    try:
        yield running
    finally:
        running.stop()
    assert running.slack.violations == []
    assert running.hook.refused == []


def alerting(servers: Servers) -> dict[str, Any]:
    return {
        "route": {
            "receivers": list(CHANNELS),
            "group_wait_s": 2,
            "group_interval_s": 3,
        },
        "receivers": [
            {"name": "slack", "slack": {"url_env": "TEST_SLACK_URL"}},
            {
                "name": "mail",
                "email": {
                    "host": "127.0.0.1",
                    "port": servers.mail.port,
                    "starttls": False,
                    "from": "sentinel@example.com",
                    "to": ["oncall@example.com"],
                },
            },
            {
                "name": "hook",
                "webhook": {
                    "url": f"{servers.http[1].url}/hook",
                    "secret_env": "TEST_HOOK_SECRET",
                },
            },
        ],
        # Backoff capped at 5 s so the channels without a Retry-After are tried again within
        # seconds of coming back; the give-up is far beyond the minute.
        "delivery": {"initial_backoff_s": 0.5, "max_backoff_s": 5, "give_up_after_s": 600},
        "run_wait_s": 1,
        "public_url": "https://sentinel.example",
    }


def test_channels_down_for_a_minute_and_a_sigkill_tell_every_alert_exactly_once(
    servers: Servers,
    kafka_bootstrap: str,
    make_settings: Any,
    tmp_path: Path,
) -> None:
    ops_port = free_port()
    settings: Settings = make_settings(
        kafka_bootstrap, alerting=alerting(servers), ops={"port": ops_port}
    )
    ensure_topics(settings)
    config = tmp_path / "alerts.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", by_alias=True)))
    source = Input(settings)
    sent: dict[str, list[str]] = defaultdict(list)  # run id -> subjects, in sending order

    def alert(n: int, *subjects: str) -> None:
        sent[run_id(n)].extend(subjects)
        source.send(*[anomaly(subject=s, run_id=run_id(n)) for s in subjects])

    first = Dispatcher(config, tmp_path / "first.log")
    source.send(*[run_state(run_id(n)) for n in range(1, 5)])
    # Run 1's group is told while everything works: the outage's alerts to it are follow-ups.
    alert(1, "r1-a", "r1-b")
    wait_for(lambda: told_everywhere(servers, 1), timeout=30, what="run 1's first message")

    back_at = servers.go_down()
    alert(1, "r1-c")  # a follow-up to a group already told
    alert(2, "r2-a", "r2-b")  # new groups, first messages
    time.sleep(4)  # past group_wait: run 1 and 2's messages are decided and wait
    alert(3, "r3-a")
    # After run 2's first message was decided and while it waits: left alone, a follow-up;
    # with the kill below, the next process decides run 2's first message again with it.
    alert(2, "r2-c")
    time.sleep(4)
    wait_committed(settings)  # all of it is in the persisted groups
    assert servers.slack_down.refused and servers.hook_down.refused
    first.kill()

    second = Dispatcher(config, tmp_path / "second.log")
    assert time.monotonic() < back_at - 10, "the restart took too long to test a wait"
    alert(4, "r4-a")  # a group born after the restart, during the outage
    alert(3, "r3-b")
    expected = {subject for subjects in sent.values() for subject in subjects}
    try:
        wait_for(
            lambda: all(set(news(servers, c)) >= expected for c in CHANNELS),
            timeout=OUTAGE_S + DRAIN_S + 30,
            what="every alert told on every channel",
        )
        drained = time.monotonic() - back_at
        time.sleep(8)  # more group intervals: nothing else may arrive
        metrics = scrape(ops_port)
    finally:
        second.stop()

    # -- what the servers received --------------------------------------------------------
    messages = {channel: received(servers, channel) for channel in CHANNELS}
    for channel, by_group in messages.items():
        told = Counter(
            s for group in by_group.values() for _seq, subjects in group for s in subjects
        )
        assert told == Counter(expected), f"{channel}: alerts told {dict(told)}"
        for group, group_messages in by_group.items():
            # One message per sequence number, in order: the first message, then follow-ups.
            assert [seq for seq, _s in group_messages] == list(range(1, len(group_messages) + 1)), (
                f"{channel} {group}: {group_messages}"
            )
    # Each flush goes to all three receivers: every channel saw the same messages.
    assert messages["mail"] == messages["slack"] == messages["hook"]
    # Within a group, alerts are told in the order they happened.
    for run, subjects in sent.items():
        (group,) = [g for g in messages["hook"] if run in g]
        assert [s for _seq, told in messages["hook"][group] for s in told] == subjects
    assert drained <= DRAIN_S, f"everything was told {drained:.1f}s after the channels were back"
    late = arrival_after(servers, back_at)
    print(f"channels back -> all told in {drained:.1f}s, last arrival after {late:.1f}s")
    assert late <= DRAIN_S, f"the last message arrived {late:.1f}s after the channels came back"

    # -- what the delivery records say ------------------------------------------------------
    records = [
        AlertDelivery.from_bytes(value)
        for _key, value in read_topic(settings, settings.topic_names.alert_deliveries)
    ]
    assert [r for r in records if r.outcome == DeliveryOutcome.FAILED] == []
    for channel in CHANNELS:
        ours = [r for r in records if r.channel == channel]
        sent_ids = Counter(r.delivery_id for r in ours if r.outcome == DeliveryOutcome.SENT)
        assert set(sent_ids.values()) == {1}, f"{channel}: a delivery recorded sent twice"
        assert len(sent_ids) == sum(len(g) for g in messages[channel].values())
        retried = {r.delivery_id for r in ours if r.outcome == DeliveryOutcome.RETRYING}
        assert retried, f"{channel}: no retry recorded"
        assert any(r.attempt > 1 for r in ours if r.outcome == DeliveryOutcome.SENT)
        # Every retried message ends in a record: sent, or — decided by the killed process and
        # decided again by the next one with the alerts that came meanwhile — superseded by a
        # message that was sent and carries its alerts.
        superseded = {r.delivery_id: r for r in ours if r.outcome == DeliveryOutcome.SUPERSEDED}
        # Run 2's first message was decided 2 s before r2-c came, and was decided again with it.
        assert superseded, f"{channel}: nothing decided again after the restart"
        assert retried <= set(sent_ids) | set(superseded), f"{channel}: left retrying"
        assert not set(sent_ids) & set(superseded)
        for old in superseded.values():
            (by,) = [
                r
                for r in ours
                if r.outcome == DeliveryOutcome.SENT and r.delivery_id in (old.error or "")
            ]
            assert by.group_key == old.group_key and set(old.anomaly_ids) <= set(by.anomaly_ids)
    slack_retries = [
        r for r in records if r.channel == "slack" and r.outcome == DeliveryOutcome.RETRYING
    ]
    assert {r.status_code for r in slack_retries} == {429}
    # Retry-After honoured: one wait per refusal, as long as Slack asked, not a 0.5 s backoff.
    assert all((r.retry_in_s or 0) >= 1 for r in slack_retries)
    assert len(slack_retries) <= 4, f"Slack was asked {len(slack_retries)} times in the minute"
    hook_codes = {
        r.status_code
        for r in records
        if r.channel == "hook" and r.outcome == DeliveryOutcome.RETRYING
    }
    assert hook_codes == {503}
    mail_errors = [
        r.error or ""
        for r in records
        if r.channel == "mail" and r.outcome == DeliveryOutcome.RETRYING
    ]
    assert mail_errors and all("SMTPConnectError" in e for e in mail_errors)  # refused

    # -- the second process's metrics ----------------------------------------------------------
    for channel in CHANNELS:
        assert metric(metrics, "sentinel_alert_queue_depth", channel=channel) == 0
        counted = Counter(r.outcome.value for r in records if r.channel == channel)
        # Run 1's first message went out from the first process, before the outage; every
        # other message and every superseded record are the second process's.
        second_sent = metric(metrics, DELIVERIES, channel=channel, outcome="sent")
        assert second_sent == counted["sent"] - 1
        superseded = metric(metrics, DELIVERIES, channel=channel, outcome="superseded")
        assert superseded == counted["superseded"]
        assert metric(metrics, DELIVERIES, channel=channel, outcome="retrying") >= 1


# -- reading what arrived ---------------------------------------------------------------------

Received = dict[str, list[tuple[int, list[str]]]]  # group key -> (sequence, new alerts) in order


def received(servers: Servers, channel: str) -> Received:
    found: Received = defaultdict(list)
    if channel == "slack":
        for body in list(servers.slack.webhook_posts):
            texts = [
                b["text"]["text"] for b in body["blocks"] if "text" in b and b["type"] != "header"
            ]
            context = body["blocks"][-1]["elements"][0]["text"]
            match = SLACK_CONTEXT.search(context)
            assert match is not None, context
            subjects = [s for t in texts for s in NEW_SLACK.findall(t)]
            found[match[2]].append((int(match[1]), subjects))
    elif channel == "hook":
        for doc in list(servers.hook.accepted):
            subjects = [a["subject"] for a in doc["alerts"] if a["new"]]
            found[doc["group_key"]].append((doc["sequence"], subjects))
    else:
        numbers: Counter[str] = Counter()
        for _at, envelope in list(servers.mail.received):
            message = email.message_from_bytes(envelope.content, policy=policy.default)
            group = str(message["X-Sentinel-Group"])
            numbers[group] += 1
            text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            # Mail carries no sequence: its place among the group's mails stands in for it.
            found[group].append((numbers[group], NEW_MAIL.findall(text)))
    return dict(found)


def news(servers: Servers, channel: str) -> list[str]:
    return [s for group in received(servers, channel).values() for _q, told in group for s in told]


def told_everywhere(servers: Servers, n: int) -> bool:
    return all(any(run_id(n) in group for group in received(servers, c)) for c in CHANNELS)


def arrival_after(servers: Servers, back_at: float) -> float:
    arrivals = [at for at, _e in servers.mail.received] + list(servers.slack.webhook_arrivals)
    return max(arrivals) - back_at


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total
