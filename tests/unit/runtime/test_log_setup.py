"""Log lines: JSON with our fields off a terminal, text on one, message context attached."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from runtime.log_setup import handler_config, log_context, make_handler, setup_logging


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def emit(handler: logging.Handler, message: str, **extra: object) -> None:
    logger = logging.getLogger("sentinel.test")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info(message, extra=extra)
    finally:
        logger.handlers.clear()
        logger.propagate = True


def test_off_a_terminal_lines_are_json_with_time_level_component_and_context() -> None:
    setup_logging("INFO", "auto", "sink")
    stream = io.StringIO()
    handler = make_handler("auto", stream)
    with log_context(topic="sentinel.runs", partition=2):
        emit(handler, "inserted 3 rows", offset=41)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "info"
    assert entry["component"] == "sink"
    assert entry["logger"] == "sentinel.test"
    assert entry["message"] == "inserted 3 rows"
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("sentinel.runs", 2, 41)
    assert entry["time"].endswith("+00:00")


def test_context_ends_with_its_block() -> None:
    stream = io.StringIO()
    handler = make_handler("json", stream)
    with log_context(run_id="github:o/r:1:1"):
        emit(handler, "inside")
    emit(handler, "outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["run_id"] == "github:o/r:1:1"
    assert "run_id" not in outside


def test_on_a_terminal_lines_are_text_with_the_context_at_the_end() -> None:
    stream = Tty()
    handler = make_handler("auto", stream)
    emit(handler, "dead letter", topic="sentinel.ci", partition=0, offset=7)
    line = stream.getvalue().strip()
    assert not line.startswith("{")
    assert "INFO" in line and "sentinel.test: dead letter" in line
    assert line.endswith("[topic=sentinel.ci partition=0 offset=7]")


def test_the_faust_worker_config_installs_the_same_handler() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        logging.config.dictConfig(handler_config("info", "json"))
        (handler,) = root.handlers
        assert handler.formatter is not None
        assert type(handler.formatter).__name__ == "JsonFormatter"
        assert logging.getLogger("librdkafka").level == logging.WARNING
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
