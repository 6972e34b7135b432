"""The demo's bundled history: read it, move it in time, and make new runs from templates.

The history (``data/history.jsonl.gz``, written by ``tools/build_demo_history.py``) is a capture
recorded on three days in March 2026. `shift_records` moves every timestamp in it — record
times, timestamps inside webhook payloads and Kubernetes objects, Jenkins epoch milliseconds,
and the timestamps log lines print (RFC 3339, ``YYYY-MM-DD HH:MM:SS[.,]fff``, klog's
``Lmmdd hh:mm:ss.uuuuuu``, JSON ``"ts":<epoch seconds>``) — by the same whole number of
seconds, so the history ends "now" and every duration, order and gap is what it was.

`LiveTemplates` makes the runs the demo plays after the history: a template run (one clean run
of each pipeline, and one with a flaky test) with its ids renumbered for every replay (run and
job numbers, pod and PipelineRun names, uids, container ids) and its times moved to now.

Pure: records in, records out. Reading the package data is `load_history` / `load_live`.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from runtime.config import Settings
from schemas.capture import K8sRecord, LogRecord, WebhookRecord, parse_record

Record = WebhookRecord | K8sRecord | LogRecord
Raw = dict[str, Any]

_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})"
)
_SPACED = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2})(?P<frac>[.,]\d{1,6})?"
)
_KLOG = re.compile(r"^(?P<level>[IWEF])(?P<md>\d{4}) (?P<time>\d{2}:\d{2}:\d{2})\.(?P<us>\d{6})")
_JSON_TS = re.compile(r'"ts":(?P<epoch>\d{10}(?:\.\d+)?)')
_EPOCH_MS_KEYS = {"timestamp"}  # Jenkins Notification plugin: build.timestamp
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_HEX_ID = re.compile(r"\b(?:[0-9a-f]{64}|[0-9a-f]{40})\b")
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _data(name: str) -> bytes:
    return (resources.files("sentinel.demo") / "data" / name).read_bytes()


def load_history() -> list[Raw]:
    """The bundled history's records as JSON objects, in time order."""
    text = gzip.decompress(_data("history.jsonl.gz")).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_expected() -> dict[str, Any]:
    """What analysing the history must give: runs, anomalies, the featured run."""
    expected: dict[str, Any] = json.loads(_data("history.expected.json"))
    return expected


def demo_config() -> dict[str, Any]:
    """The settings the history is analysed with (its structure rule), as YAML data."""
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(_data("demo.config.yaml").decode("utf-8"))
    return loaded


def with_demo_rules(settings: Settings) -> Settings:
    """`settings` plus the demo's structure rules (the user's own rules are kept)."""
    from runtime.config import StructureRule

    rules = [StructureRule.model_validate(r) for r in demo_config()["structure"]["rules"]]
    names = {rule.name for rule in settings.structure.rules}
    merged = [*settings.structure.rules, *(r for r in rules if r.name not in names)]
    return settings.model_copy(
        update={"structure": settings.structure.model_copy(update={"rules": merged})}
    )


def parse(records: list[Raw]) -> list[Record]:
    return [parse_record(json.dumps(record)) for record in records]


# --------------------------------------------------------------------------------------------
# time


def record_time(record: Raw) -> datetime:
    return datetime.fromisoformat(str(record["ts"]))


def delta_to_end_at(records: list[Raw], end: datetime) -> timedelta:
    """The whole number of seconds that moves the last record to `end` (or just before)."""
    last = max(record_time(r) for r in records)
    return timedelta(seconds=int((end - last).total_seconds()))


def shift_records(records: list[Raw], delta: timedelta) -> list[Raw]:
    """Every timestamp of `records` moved by `delta` (whole seconds keep every format exact)."""
    if delta.microseconds:
        raise ValueError("shift by whole seconds only")
    return [_shift_record(record, delta) for record in records]


def _shift_record(record: Raw, delta: timedelta) -> Raw:
    year = record_time(record).year
    out: Raw = {}
    for key, value in record.items():
        if key == "ts":
            out[key] = _shift_iso(str(value), delta)
        elif key == "line" and record.get("type") == "log":
            out[key] = shift_text(str(value), delta, year)
        elif key in ("body", "object"):
            out[key] = _shift_value(value, delta)
        else:
            out[key] = value
    return out


def _shift_value(value: Any, delta: timedelta, key: str | None = None) -> Any:
    if isinstance(value, str):
        return _ISO.sub(lambda m: _moved_iso(m, delta), value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and key in _EPOCH_MS_KEYS and value > 10**12:
        return value + int(delta.total_seconds() * 1000)
    if isinstance(value, dict):
        return {k: _shift_value(v, delta, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift_value(v, delta) for v in value]
    return value


def shift_text(line: str, delta: timedelta, year: int) -> str:
    """A log line with the timestamps it prints moved by `delta` (`year`: for klog's dates)."""
    line = _ISO.sub(lambda m: _moved_iso(m, delta), line)
    line = _SPACED.sub(lambda m: _moved_spaced(m, delta), line)
    line = _KLOG.sub(lambda m: _moved_klog(m, delta, year), line)
    return _JSON_TS.sub(lambda m: _moved_epoch(m, delta), line)


def _shift_iso(text: str, delta: timedelta) -> str:
    return _ISO.sub(lambda m: _moved_iso(m, delta), text)


def _moved_iso(match: re.Match[str], delta: timedelta) -> str:
    moment = datetime.fromisoformat(f"{match['date']}T{match['time']}") + delta
    zone = match["zone"]
    return f"{moment:%Y-%m-%dT%H:%M:%S}{match['frac'] or ''}{zone}"


def _moved_spaced(match: re.Match[str], delta: timedelta) -> str:
    moment = datetime.fromisoformat(f"{match['date']}T{match['time']}") + delta
    return f"{moment:%Y-%m-%d %H:%M:%S}{match['frac'] or ''}"


def _moved_klog(match: re.Match[str], delta: timedelta, year: int) -> str:
    md, clock = match["md"], match["time"]
    moment = datetime.fromisoformat(f"{year}-{md[:2]}-{md[2:]}T{clock}") + delta
    return f"{match['level']}{moment:%m%d %H:%M:%S}.{match['us']}"


def _moved_epoch(match: re.Match[str], delta: timedelta) -> str:
    text = match["epoch"]
    digits = len(text.split(".")[1]) if "." in text else 0
    moved = float(text) + delta.total_seconds()
    return f'"ts":{moved:.{digits}f}'


# --------------------------------------------------------------------------------------------
# live runs


@dataclass(frozen=True)
class LiveRun:
    pipeline: str
    run_id: str
    records: list[Raw]


class LiveTemplates:
    """Template runs, renumbered and moved in time for each replay (`make(n, start)`)."""

    def __init__(self, templates: list[Raw]) -> None:
        if not templates:
            raise ValueError("no live templates")
        self.templates = templates

    def make(self, n: int, start: datetime) -> LiveRun:
        """Replay `n` (0, 1, 2, ...): template n mod count, ids renumbered for round n // count,
        first record at `start`."""
        template = self.templates[n % len(self.templates)]
        round_ = n // len(self.templates)
        rename = _renamer(template["tokens"], round_, salt=str(n))
        records = [json.loads(rename(json.dumps(r))) for r in copy.deepcopy(template["records"])]
        first = min(record_time(r) for r in records)
        delta = timedelta(seconds=int((start.astimezone(UTC) - first).total_seconds()))
        run_id = rename(template["run_id"])
        return LiveRun(template["pipeline"], run_id, shift_records(records, delta))


def load_live() -> LiveTemplates:
    data = json.loads(gzip.decompress(_data("live.json.gz")).decode("utf-8"))
    return LiveTemplates(data["templates"])


def _renamer(tokens: list[Raw], round_: int, salt: str) -> Callable[[str], str]:
    """Text → text with the template's ids made unique for this replay."""
    fixed: list[tuple[str, str]] = []
    for token in tokens:
        value, kind = str(token["value"]), token["kind"]
        if kind == "number":
            fixed.append((value, str(int(value) + round_)))
        elif kind == "name":
            fixed.append((value, value[:-5] + _suffix(value, salt)))
        elif kind == "counter":
            new = str(int(value) + round_ * int(token.get("step", 1)))
            fixed += [(context.format(value), context.format(new)) for context in token["contexts"]]
        else:
            raise ValueError(f"unknown token kind {kind!r}")

    def rename(text: str) -> str:
        for old, new in fixed:
            text = text.replace(old, new)
        text = _UUID.sub(lambda m: str(uuid.uuid5(uuid.NAMESPACE_OID, f"{m[0]}/{salt}")), text)
        return _HEX_ID.sub(lambda m: _rehex(m[0], salt), text)

    return rename


def _suffix(value: str, salt: str) -> str:
    digest = hashlib.sha256(f"{value}/{salt}".encode()).digest()
    return "".join(_K8S_ALPHABET[b % len(_K8S_ALPHABET)] for b in digest[:5])


def _rehex(value: str, salt: str) -> str:
    return hashlib.sha256(f"{value}/{salt}".encode()).hexdigest()[: len(value)]
