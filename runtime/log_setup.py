"""Structured logging: one JSON object per line in deployments, readable text on a terminal.

Every line carries ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``component`` (the
`sentinel` subcommand that runs: api, worker, sink, ...), ``logger`` and ``message``, and, where
they apply, ``run_id`` / ``topic`` / ``partition`` / ``offset``: passed with ``extra=`` on one
call, or set for a block of work with `log_context` (a context variable, so it follows an
asyncio task or a thread and never leaks into another one).

``logging.format: auto`` (the default) picks text when stderr is a terminal and JSON otherwise
(a container, a pipe, a file); ``json`` and ``text`` force one.

librdkafka's own lines (confluent-kafka clients) come through the ``librdkafka`` logger at the
level librdkafka gave them (`kafka_logger`); the Faust worker's and aiokafka's through the same
handler (`handler_config` is what the worker passes to Faust's log set-up).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# Fields a line may carry about the message being handled, in this order.
CONTEXT_FIELDS = ("run_id", "topic", "partition", "offset")
# Loggers whose INFO lines are noise next to ours: shown from WARNING (DEBUG shows everything).
NOISY_LOGGERS = ("uvicorn.access", "librdkafka", "leaderelection", "kubernetes")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_NO_CONTEXT: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "sentinel_log_context", default=_NO_CONTEXT
)
_COMPONENT = {"name": "sentinel"}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Lines logged inside the block carry `fields` (None values are left out)."""
    merged = {**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Adds the component and the `log_context` fields to every record (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "component"):
            record.component = _COMPONENT["name"]
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "component": getattr(record, "component", _COMPONENT["name"]),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``15:04:05.123 INFO    sink  sentinel.sink: message  topic=... partition=...``."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
        )

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)]
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first}  [{' '.join(fields)}]{newline}{rest}"


def resolve_format(fmt: str, stream: Any = None) -> str:
    """``auto`` -> text on a terminal, json elsewhere; ``json`` / ``text`` unchanged."""
    if fmt != "auto":
        return fmt
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def make_handler(fmt: str = "auto", stream: Any = None) -> logging.Handler:
    """A stderr handler with our formatter and context filter (also used by the Faust worker)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    chosen = resolve_format(fmt, handler.stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    return handler


def setup_logging(level: str = "INFO", fmt: str = "auto", component: str | None = None) -> None:
    """Configure the root logger for this process (`component`: the subcommand)."""
    if component is not None:
        _COMPONENT["name"] = component
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level)
    quiet_noisy_loggers(level)


def quiet_noisy_loggers(level: str) -> None:
    noisy = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy)


def handler_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` document with our handler on the root logger.

    The Faust worker (mode's `Worker`) replaces the root handlers with its own coloured stdout
    handler unless it is given a logging config: this is the one it gets.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"sentinel": {"()": make_handler, "fmt": fmt}},
        "root": {"level": level.upper(), "handlers": ["sentinel"]},
        "loggers": {
            name: {"level": "DEBUG" if level.upper() == "DEBUG" else "WARNING"}
            for name in NOISY_LOGGERS
        },
    }


class _ProbeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """librdkafka lines of a client that is expected to fail (a readiness probe): DEBUG."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self.logger.log(logging.DEBUG, msg, *args, **kwargs)


def kafka_logger(probe: bool = False) -> Any:
    """The ``logger`` property of a confluent-kafka client: librdkafka's lines (served by the
    client's poll) go through Python logging at their own level instead of raw to stderr."""
    logger = logging.getLogger("librdkafka")
    return _ProbeLogger(logger, {}) if probe else logger
