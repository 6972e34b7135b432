"""The capture format: recorded input as JSON Lines, one record per line, ordered by `ts`.

Used by `sentinel analyze`, replay, the demo, tests and bug reports (DESIGN.md, "Capture format").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    ts: AwareDatetime


class WebhookRecord(_Record):
    type: Literal["webhook"]
    provider: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any]

    def header(self, name: str) -> str | None:
        """Header lookup ignoring case, as HTTP does."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


class K8sRecord(_Record):
    type: Literal["k8s"]
    # RELISTED: a state the watcher found by relisting after a 410 (see producers/k8s/watch.py).
    event: Literal["ADDED", "MODIFIED", "DELETED", "RELISTED"]
    object: dict[str, Any]


class LogRecord(_Record):
    type: Literal["log"]
    namespace: str
    pod: str
    container: str
    line: str
    correlation_key: str | None = None


CaptureRecord = Annotated[WebhookRecord | K8sRecord | LogRecord, Field(discriminator="type")]
_RECORD = TypeAdapter(CaptureRecord)


class CaptureError(ValueError):
    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line


def parse_record(text: str) -> WebhookRecord | K8sRecord | LogRecord:
    return _RECORD.validate_json(text)


def read_capture(path: Path) -> Iterator[WebhookRecord | K8sRecord | LogRecord]:
    """Records in file order; a bad line raises `CaptureError` naming the line and the reason."""
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield parse_record(text)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(record)"
                raise CaptureError(path, number, f"{where}: {first['msg']}") from exc
