"""Every channel against a real server on loopback, through the real delivery queue.

Slack (incoming webhook and Web API) and the webhook receiver are small HTTP servers of ours
that check every request (tests/support/alert_servers.py); email goes to aiosmtpd with
STARTTLS and AUTH required; Alertmanager is the real v0.35.0 built from its Go module.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.messages import DeliveryOutcome, RunStatus
from sinks.alerts.engine import AlertEngine
from tests.support.alert_servers import TOKEN, FakeSlack, LoopbackServer, WebhookReceiver
from tests.support.alertmanager import AmWebhookSink, RunningAlertmanager, alertmanager_binary
from tests.support.alerts import alerting, anomaly, at, deliver, group_messages, run_state

pytestmark = pytest.mark.integration

# The issue asks for a channel down "for a minute"; CI uses a shorter outage (same code path:
# the head-of-line message retries until the channel answers). Set the variable to 60 for the
# full minute.
OUTAGE_S = float(os.environ.get("SENTINEL_TEST_CHANNEL_OUTAGE_S", "6"))
FAST_RETRIES = {"initial_backoff_s": 0.2, "max_backoff_s": 1.0, "give_up_after_s": 120}


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, LoopbackServer]]:
    fake = FakeSlack()
    with LoopbackServer(fake.app) as server:
        yield fake, server
    assert fake.violations == []


def slack_config(**receiver: Any) -> Any:
    return alerting(
        route={"receivers": ["slack"], "group_wait_s": 0},
        receivers=[{"name": "slack", "slack": {"url_env": "TEST_SLACK_URL"}, **receiver}],
        delivery=FAST_RETRIES,
        public_url="https://sentinel.example",
    )


def test_slack_429_with_retry_after_is_delivered_once_after_the_wait(
    slack: tuple[FakeSlack, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, server = slack
    monkeypatch.setenv("TEST_SLACK_URL", f"{server.url}/hooks/T1")
    config = slack_config()
    fake.script(429, {"Retry-After": "2"}, "rate_limited")
    started = time.monotonic()
    run = deliver(config, "slack", group_messages(config, anomalies=2))
    assert len(fake.webhook_posts) == 1
    (first, second) = fake.requests
    assert second[0] - first[0] >= 2.0  # waited what Slack asked, not the 0.2 s backoff
    assert time.monotonic() - started < 30
    assert [(r.outcome, r.attempt, r.status_code) for r in run.records] == [
        (DeliveryOutcome.RETRYING, 1, 429),
        (DeliveryOutcome.SENT, 2, 200),
    ]
    assert run.records[0].retry_in_s == pytest.approx(2.0)
    body = fake.webhook_posts[0]
    text = str(body["blocks"])
    assert (
        "oom_killed" in text
        and "https://sentinel.example/runs/github%3Aacme%2Fshop%3A1%3A1" in text
    )


def test_slack_blocks_stay_within_limits_with_plus_n_more(
    slack: tuple[FakeSlack, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, server = slack
    monkeypatch.setenv("TEST_SLACK_URL", f"{server.url}/hooks/T1")
    config = slack_config()
    run = deliver(config, "slack", group_messages(config, anomalies=80))
    assert [r.outcome for r in run.records] == [DeliveryOutcome.SENT]
    (body,) = fake.webhook_posts
    assert len(body["blocks"]) <= 50
    assert "+60 more" in str(body["blocks"])  # max_alerts_per_message 20 of 80


def test_a_permanent_4xx_is_recorded_failed_and_not_retried(
    slack: tuple[FakeSlack, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, server = slack
    monkeypatch.setenv("TEST_SLACK_URL", f"{server.url}/hooks/T1")
    config = slack_config()
    fake.script(404, body="no_service")
    run = deliver(config, "slack", group_messages(config, anomalies=1))
    assert len(fake.requests) == 1 and fake.webhook_posts == []
    (record,) = run.records
    assert (record.outcome, record.status_code) == (DeliveryOutcome.FAILED, 404)
    assert "no_service" in (record.error or "")
    assert [o.sent for o in run.outcomes] == [False]


def test_slack_bot_threads_follow_ups_and_keeps_the_first_message_current(
    slack: tuple[FakeSlack, LoopbackServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, server = slack
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)
    config = alerting(
        route={"receivers": ["bot"], "group_wait_s": 0, "group_interval_s": 1},
        receivers=[
            {
                "name": "bot",
                "slack_bot": {
                    "token_env": "TEST_SLACK_TOKEN",
                    "channel": "#alerts",
                    "api_url": f"{server.url}/api/",
                },
            }
        ],
        delivery=FAST_RETRIES,
        run_wait_s=0,
    )
    engine = AlertEngine(config)
    engine.observe_run(run_state(), 0, at(0))
    for index in range(4):
        engine.observe_anomaly(anomaly(subject=f"pod-{index}"), 0, at(1))

    def send(when: float) -> None:
        for note in engine.tick(at(when)):
            run = deliver(config, "bot", [note])
            (outcome,) = run.outcomes
            assert outcome.sent and outcome.result is not None
            engine.completed(
                note, True, at(when), outcome.result.thread_ts, outcome.result.thread_channel
            )

    send(1)
    engine.observe_anomaly(anomaly("crash_loop", "pod-9"), 0, at(2))
    send(3)
    engine.observe_run(run_state(status=RunStatus.FAILED, version=2, when=4), 0, at(4))
    send(5)
    (first,) = fake.top_level()
    assert first.block_text.count("*oom_killed*") == 4
    replies = fake.replies(first.ts)
    assert len(replies) == 2
    assert "*crash_loop*" in replies[0].block_text
    assert "*oom_killed*" not in replies[0].block_text
    assert "RESOLVED" in replies[1].text
    # The first message now says what the group's state is: the run failed, all resolved.
    assert len(first.updates) == 2
    assert "run failed" in first.updates[-1]["text"] and "5 resolved" in first.updates[-1]["text"]


def test_a_channel_down_delivers_everything_after_it_returns_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = WebhookReceiver("s3cret")
    server = LoopbackServer(receiver.app)
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    config = alerting(
        route={"receivers": ["hook"], "group_wait_s": 0},
        receivers=[
            {
                "name": "hook",
                "webhook": {"url": f"{server.url}/hook", "secret_env": "TEST_HOOK_SECRET"},
            }
        ],
        delivery=FAST_RETRIES,
    )
    runs = [f"github:acme/shop:{n}:1" for n in range(3)]
    notes = [group_messages(config, anomalies=1, run_id=run_id)[0] for run_id in runs]

    def come_back() -> None:
        time.sleep(OUTAGE_S)
        server.start()

    threading.Thread(target=come_back, daemon=True).start()
    started = time.monotonic()
    run = deliver(config, "hook", notes, timeout_s=OUTAGE_S + 60)
    try:
        assert time.monotonic() - started >= OUTAGE_S
        assert receiver.refused == []
        assert [doc["runs"][0]["run_id"] for doc in receiver.accepted] == runs
        outcomes = [(r.outcome, r.delivery_id) for r in run.records]
        assert [o for o, _d in outcomes if o != DeliveryOutcome.RETRYING] == [
            DeliveryOutcome.SENT
        ] * 3
        retries = [r for r in run.records if r.outcome == DeliveryOutcome.RETRYING]
        assert retries and all(r.delivery_id == notes[0].delivery_id for r in retries)
        assert all("ConnectError" in (r.error or "") for r in retries)
    finally:
        server.stop()


def test_the_webhook_is_signed_and_versioned(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = WebhookReceiver("k3y")
    monkeypatch.setenv("TEST_HOOK_SECRET", "k3y")
    with LoopbackServer(receiver.app) as server:
        config = alerting(
            route={"receivers": ["hook"], "group_wait_s": 0},
            receivers=[
                {
                    "name": "hook",
                    "webhook": {"url": f"{server.url}/hook", "secret_env": "TEST_HOOK_SECRET"},
                }
            ],
        )
        run = deliver(config, "hook", group_messages(config, anomalies=2))
        monkeypatch.setenv("TEST_HOOK_SECRET", "wrong")
        bad = deliver(config, "hook", group_messages(config, anomalies=1))
    assert [r.outcome for r in run.records] == [DeliveryOutcome.SENT]
    (doc,) = receiver.accepted
    assert doc["schema_version"] == "1" and doc["status"] == "firing"
    assert {a["type"] for a in doc["alerts"]} == {"oom_killed"} and len(doc["alerts"]) == 2
    assert doc["runs"][0]["pipeline"] == "ci"
    # Signed with another key: the receiver refuses it (401), which is not retried.
    assert receiver.refused == ["bad signature"]
    assert [(r.outcome, r.status_code) for r in bad.records] == [(DeliveryOutcome.FAILED, 401)]


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from sentinel.brokers import free_port

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 Message accepted"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"sentinel",
            b"p4ss",
        )
        # handled=False: aiosmtpd itself answers (235, or 535 for a refused login)
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield {"port": port, "ca_file": ca_file, "received": received}
    finally:
        controller.stop()


def email_config(smtp: dict[str, Any], password_file: Path) -> Any:
    return alerting(
        route={"receivers": ["mail"], "group_wait_s": 0},
        receivers=[
            {
                "name": "mail",
                "email": {
                    "host": "127.0.0.1",
                    "port": smtp["port"],
                    "starttls": True,
                    "username": "sentinel",
                    "password_file": str(password_file),
                    "from": "sentinel@example.com",
                    "to": ["oncall@example.com"],
                    "ca_file": str(smtp["ca_file"]),
                },
            }
        ],
        delivery=FAST_RETRIES,
    )


def test_email_arrives_over_starttls_with_subject_and_both_parts(
    smtp_server: dict[str, Any], tmp_path: Path
) -> None:
    import email
    from email import policy

    password = tmp_path / "smtp-password"
    password.write_text("p4ss\n")
    received: list[Any] = smtp_server["received"]
    received.clear()
    config = email_config(smtp_server, password)
    run = deliver(config, "mail", group_messages(config, anomalies=2))
    assert [(r.outcome, r.status_code) for r in run.records] == [(DeliveryOutcome.SENT, 250)]
    (envelope,) = received
    assert envelope.rcpt_tos == ["oncall@example.com"]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    subject = str(message["Subject"])
    assert subject.startswith("[ERROR] ci #1 (main)") and "run running" in subject
    assert "2 firing" in subject
    kinds = [part.get_content_type() for part in message.walk() if not part.is_multipart()]
    assert kinds == ["text/plain", "text/html"]
    html = message.get_body(("html",)).get_content()
    assert "<li><b>[error]</b> oom_killed on pod-0" in html


def test_an_smtp_login_refused_is_recorded_failed_not_retried(
    smtp_server: dict[str, Any], tmp_path: Path
) -> None:
    password = tmp_path / "smtp-password"
    password.write_text("wrong\n")
    received: list[Any] = smtp_server["received"]
    received.clear()
    config = email_config(smtp_server, password)
    run = deliver(config, "mail", group_messages(config, anomalies=1))
    (record,) = run.records
    assert record.outcome == DeliveryOutcome.FAILED and record.status_code == 535
    assert received == []


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    binary = alertmanager_binary()
    sink = AmWebhookSink()
    sink.server.start()
    am = RunningAlertmanager(binary, tmp_path_factory.mktemp("am"), f"{sink.server.url}/am-hook")
    try:
        yield {"am": am, "sink": sink}
    finally:
        am.stop()
        sink.server.stop()


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_alertmanager_receives_our_alerts_honours_its_silences_and_sees_resolution(
    alertmanager: dict[str, Any],
) -> None:
    am: RunningAlertmanager = alertmanager["am"]
    sink: AmWebhookSink = alertmanager["sink"]
    config = alerting(
        route={"receivers": ["am"], "group_wait_s": 0, "group_interval_s": 1},
        receivers=[{"name": "am", "alertmanager": {"url": am.url}}],
        public_url="https://sentinel.example",
        run_wait_s=0,
    )
    engine = AlertEngine(config)
    engine.observe_run(run_state(), 0, at(0))
    engine.observe_anomaly(anomaly("oom_killed", "pod-a"), 0, at(1))
    engine.observe_anomaly(anomaly("crash_loop", "pod-b"), 0, at(1))
    am.silence([{"name": "alertname", "value": "crash_loop", "isRegex": False, "isEqual": True}])

    def send(when: float) -> None:
        for note in engine.tick(at(when)):
            run = deliver(config, "am", [note])
            assert [r.outcome for r in run.records] == [DeliveryOutcome.SENT]
            engine.completed(note, True, at(when))

    send(1)
    ours = wait_for(lambda: am.alerts() if len(am.alerts()) == 2 else None)
    by_name = {alert["labels"]["alertname"]: alert for alert in ours}
    assert by_name["oom_killed"]["generatorURL"].startswith("https://sentinel.example/runs/")
    assert by_name["oom_killed"]["labels"]["pipeline"] == "ci"
    assert by_name["oom_killed"]["status"]["state"] == "active"
    assert by_name["crash_loop"]["status"]["state"] == "suppressed"
    # Alertmanager's own routing told its receiver about the one it did not silence.
    firing = wait_for(lambda: sink.alerts("firing"))
    assert {a["labels"]["alertname"] for a in firing} == {"oom_killed"}
    # Re-sent while firing (every resend interval): the same two alerts, still two.
    send(61)
    assert len(am.alerts()) == 2
    # The run ends: endsAt goes out, the alerts leave the active list, the receiver is told.
    engine.observe_run(run_state(status=RunStatus.FAILED, version=2, when=100), 0, at(100))
    send(121)
    wait_for(lambda: am.alerts() == [] or None)
    resolved = wait_for(lambda: sink.alerts("resolved"))
    assert {a["labels"]["alertname"] for a in resolved} == {"oom_killed"}
