"""librdkafka's own log lines go through Python logging at their level, never raw to stderr."""

from __future__ import annotations

import logging
import time

import pytest

from producers.publisher import KafkaPublisher
from runtime.config import load_settings
from runtime.kafka_clients import producer_config
from sentinel.brokers import broker_answers, free_port

pytestmark = pytest.mark.integration


def test_a_refused_connection_is_an_error_record_of_the_librdkafka_logger(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    settings = load_settings(None, kafka={"bootstrap_servers": closed})
    caplog.set_level(logging.DEBUG, logger="librdkafka")
    publisher = KafkaPublisher(producer_config(settings), component="log-test")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _refusals(caplog):
            time.sleep(0.1)
    finally:
        publisher.close(timeout=1)
    refusals = _refusals(caplog)
    assert refusals, "librdkafka's connection failure never reached Python logging"
    assert {record.levelno for record in refusals} == {logging.ERROR}
    assert "Connection refused" not in capfd.readouterr().err


def test_the_readiness_probe_makes_no_client_and_no_noise_while_nothing_listens(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = f"127.0.0.1:{free_port()}"
    assert [broker_answers(closed, timeout=0.5) for _ in range(5)] == [False] * 5
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert capfd.readouterr().err == ""


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "librdkafka" and "Connection refused" in r.getMessage()
    ]
