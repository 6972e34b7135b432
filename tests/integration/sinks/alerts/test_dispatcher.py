"""The dispatcher on real Kafka: grouping, threads, dedup, silences, a SIGKILL mid-group.

Input is produced to `sentinel.anomalies` / `sentinel.runs` as the worker would (keyed by run
id); the dispatcher talks to the Slack stand-in over HTTP (bot token mode).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.config import Settings
from schemas.messages import AlertDelivery, DeadLetter, DeliveryOutcome
from sentinel.topic_admin import ensure_topics
from sinks.alerts.service import AlertDispatcher
from sinks.alerts.silence_rules import new_silence, parse_matchers
from sinks.alerts.silence_store import SilenceStore
from tests.support.alert_dispatcher import Dispatcher, Input, wait_committed, wait_for
from tests.support.alert_servers import TOKEN, FakeSlack, LoopbackServer
from tests.support.alerts import anomaly, run_state
from tests.support.helpers import (
    create_topic_refusing_over,
    read_topic,
    set_max_message_bytes,
)

pytestmark = pytest.mark.integration


def bot_alerting(slack_url: str, **route: Any) -> dict[str, Any]:
    return {
        "route": {
            "receivers": ["bot"],
            "group_wait_s": 2,
            "group_interval_s": 2,
            "send_resolved": True,
            **route,
        },
        "receivers": [
            {
                "name": "bot",
                "slack_bot": {
                    "token_env": "TEST_SLACK_TOKEN",
                    "channel": "#alerts",
                    "api_url": f"{slack_url}/api/",
                },
            }
        ],
        "delivery": {"initial_backoff_s": 0.2, "max_backoff_s": 1, "give_up_after_s": 60},
        "run_wait_s": 1,
        "public_url": "https://sentinel.example",
    }


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeSlack, str]]:
    monkeypatch.setenv("TEST_SLACK_TOKEN", TOKEN)
    fake = FakeSlack()
    with LoopbackServer(fake.app) as server:
        yield fake, server.url
    assert fake.violations == []


@pytest.fixture
def settings_for(
    kafka_bootstrap: str, make_settings: Callable[..., Settings]
) -> Callable[[dict[str, Any]], Settings]:
    def build(alerting: dict[str, Any]) -> Settings:
        settings = make_settings(kafka_bootstrap, alerting=alerting)
        ensure_topics(settings)
        return settings

    return build


def test_grouping_threads_dedup_and_silences_on_kafka(
    slack: tuple[FakeSlack, str], settings_for: Callable[[dict[str, Any]], Settings]
) -> None:
    fake, url = slack
    settings = settings_for(bot_alerting(url))
    dispatcher = AlertDispatcher(settings)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: dispatcher.owned == {0, 1, 2}, what="partitions assigned")
        source = Input(settings)
        silence = new_silence(
            parse_matchers(['type="log_silence"']), "ops", "known quiet pod", _now(), duration=_h()
        )
        SilenceStore(settings).put(silence)
        found = [anomaly(subject=f"pod-{n}") for n in range(4)]
        source.send(run_state(labels={"team": "shop"}), *found)
        first = wait_for(lambda: fake.top_level(), what="the first message")[0]
        assert first.text.endswith("4 firing")
        # The same anomaly again, a new one, and one that a silence mutes.
        muted = anomaly("log_silence", "pod-quiet", severity="warning")
        source.send(found[0], anomaly("crash_loop", "pod-x"), muted)
        (reply,) = wait_for(lambda: fake.replies(first.ts), what="a thread reply")
        assert "*crash_loop*" in reply.block_text and "*oom_killed*" not in reply.block_text
        # The reply goes out first, then chat.update rewrites the first message: two calls, so
        # the update may land a moment after the reply is seen.
        wait_for(lambda: first.updates, what="the first message updated")
        assert "5 firing" in first.updates[-1]["text"]
        time.sleep(5)  # two more flush intervals: nothing new to say
        assert len(fake.messages) == 2
        assert "log_silence" not in json.dumps([m.blocks for m in fake.messages])
        deliveries = [
            AlertDelivery.from_bytes(value)
            for _key, value in read_topic(settings, settings.topic_names.alert_deliveries)
        ]
        outcomes = sorted((d.outcome.value, len(d.anomaly_ids)) for d in deliveries)
        assert outcomes == [("sent", 4), ("sent", 5), ("suppressed", 1)]
        (suppressed,) = [d for d in deliveries if d.outcome == DeliveryOutcome.SUPPRESSED]
        assert suppressed.anomaly_ids == [muted.anomaly_id]
        assert suppressed.silence_ids == [silence.silence_id]
    finally:
        stop.set()
        thread.join(30)


def test_sigkill_mid_group_and_restart_sends_nothing_twice_and_loses_nothing(
    slack: tuple[FakeSlack, str],
    settings_for: Callable[[dict[str, Any]], Settings],
    tmp_path: Path,
) -> None:
    fake, url = slack
    settings = settings_for(bot_alerting(url, group_wait_s=4, group_interval_s=6))
    config = tmp_path / "alerts.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    source = Input(settings)
    run_a, run_b = "github:acme/shop:1:1", "github:acme/shop:2:1"

    dispatcher = Dispatcher(config, tmp_path / "first.log")
    source.send(run_state(run_a), *[anomaly(subject=f"a-{n}", run_id=run_a) for n in range(3)])
    first = wait_for(lambda: fake.top_level(), timeout=60, what="run A's first message")[0]
    # Mid-group: two more alerts of run A (its follow-up is due 6 s after the first message)
    # and a new run B (its first message due 4 s after its alert) are consumed and persisted —
    # their offsets committed — then the process dies.
    source.send(*[anomaly(subject=f"a-late-{n}", run_id=run_a) for n in range(2)])
    source.send(run_state(run_b), anomaly(subject="b-0", run_id=run_b))
    wait_committed(settings)
    dispatcher.kill()
    assert len(fake.messages) == 1  # nothing of the new alerts was sent before the kill

    again = Dispatcher(config, tmp_path / "second.log")
    try:
        wait_for(
            lambda: fake.replies(first.ts) and len(fake.top_level()) == 2,
            timeout=90,
            what="run A's follow-up and run B's first message after the restart",
        )
        time.sleep(8)  # further flush intervals: nothing is sent again
    finally:
        again.stop()
    tops = fake.top_level()
    assert [m.text.split(" — ")[0] for m in tops] == [
        "[ERROR] ci #1 (main)",
        "[ERROR] ci #2 (main)",
    ]
    (reply,) = fake.replies(first.ts)
    told = json.dumps([m.blocks for m in fake.messages])
    # Each alert's line ("oom_killed on <subject>") is told once: the follow-up has the two
    # late ones, run B's message its one, and no earlier alert of run A is repeated.
    for subject in ("a-late-0", "a-late-1"):
        assert reply.block_text.count(f"oom_killed on {subject}") == 1
    assert told.count("oom_killed on b-0") == 1
    assert reply.block_text.count("oom_killed on a-0") == 0
    assert first.updates and "5 firing" in first.updates[-1]["text"]


def test_a_dead_letter_the_broker_refuses_is_sent_again_and_nothing_is_committed_before(
    slack: tuple[FakeSlack, str],
    kafka_bootstrap: str,
    make_settings: Callable[..., Settings],
) -> None:
    """The DLQ refuses the dispatcher's letter (its max.message.bytes too small): the input stays
    uncommitted and the letter is sent again until the topic is fixed, then it lands once. (The
    dispatcher used to rewrite only its own state after a failed write: the next write
    succeeded, the offsets were committed and the letter was gone.)"""
    _fake, url = slack
    settings = make_settings(kafka_bootstrap, alerting=bot_alerting(url))
    dlq, names = settings.topic_names.dlq, settings.topic_names
    create_topic_refusing_over(settings, dlq, 200)
    ensure_topics(settings)
    dispatcher = AlertDispatcher(settings)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: dispatcher.owned == {0, 1, 2}, what="partitions assigned")
        run_id = "github:acme/shop:1:1"
        source = Input(settings)
        source.producer.produce(names.anomalies, key=run_id.encode(), value=b"\xff not json")
        source.send(run_state(run_id), anomaly(run_id=run_id))
        time.sleep(6)  # several persist attempts, each refused
        with pytest.raises(AssertionError, match="offsets committed"):
            wait_committed(settings, timeout=2)
        assert read_topic(settings, dlq) == []

        set_max_message_bytes(settings, dlq, 1_048_588)
        wait_committed(settings, timeout=30)
        letters = [DeadLetter.from_bytes(v) for _k, v in read_topic(settings, dlq)]
        assert [(letter.raw_value, letter.component) for letter in letters] == [
            (b"\xff not json", "alerts")
        ]
    finally:
        stop.set()
        thread.join(30)


def test_a_bad_template_or_a_missing_secret_fails_at_start_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = tmp_path / "title.j2"
    template.write_text("{{ run.pipline }} is broken")  # a typo: undefined in the sandbox
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": "127.0.0.1:9"},
                "alerting": {
                    "receivers": [
                        {"name": "console", "console": {}, "templates": {"title": str(template)}},
                        {"name": "team", "slack": {"url_env": "NOT_SET_ANYWHERE"}},
                    ]
                },
            }
        )
    )
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    command = [sys.executable, "-m", "sentinel", "--config", str(config), "alerts"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "alerting.receivers[0].templates.title" in result.stderr
    assert "pipline" in result.stderr
    template.write_text("{{ run.pipeline }} is fine")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "alerting.receivers[1].slack.url_env/url_file: no value in env NOT_SET_ANYWHERE" in (
        result.stderr
    )


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _h() -> Any:
    from datetime import timedelta

    return timedelta(hours=1)
