"""The generic CI webhook format (docs/webhooks.md) normalised into `CiEvent`s (pure: no I/O).

Any CI system that can POST JSON can report runs this way. The format is validated with the
pydantic models below; a violation becomes a `PayloadError` naming the first bad field by its
path (``stage.status``, ``event_time``).

Run identity
    ``run_id`` is used verbatim, so a CI system that also labels its pods
    ``sentinel.io/run-id: <run_id>`` gets them joined to the run with no configuration.
    Without ``run_id``, ``pipeline`` + ``run_number`` give ``<pipeline>#<run_number>``.

Events
    Every post yields a run event carrying ``status`` (the run's status). A post with ``stage``
    yields a stage event as well, carrying ``stage.status``: the run tracker lets only run events
    decide the run's status, so both statuses are kept.

Event id
    ``event_id`` when given; otherwise a hash of the run id, status, event time and stage
    (id, status), so a retried post is the same event, and two different facts are two. The stage
    event's id is the post's id plus ``:stage``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from producers.webhooks.payload import PayloadError, shown
from schemas.messages import CiEvent, CiEventKind, RunStatus
from schemas.utc import as_utc

PROVIDER = "generic"
EVENT_TYPE = "generic"

_Text = Field(default=None, min_length=1, max_length=1024)


class _Strict(BaseModel):
    # Unknown fields are allowed (newer senders) and kept in `raw`, never rejected.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class GenericStage(_Strict):
    id: str = Field(min_length=1, max_length=512)
    name: str | None = _Text
    status: RunStatus
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None


class GenericEvent(_Strict):
    run_id: str | None = Field(default=None, min_length=1, max_length=512)
    pipeline: str | None = _Text
    run_number: int | str | None = None
    status: RunStatus
    event_time: AwareDatetime
    event_id: str | None = Field(default=None, min_length=1, max_length=256)
    repository: str | None = _Text
    branch: str | None = _Text
    commit: str | None = Field(default=None, min_length=1, max_length=128)
    url: str | None = Field(default=None, min_length=1, max_length=4096)
    attempt: int = Field(default=1, ge=1, le=1_000_000)
    labels: dict[str, str] = Field(default_factory=dict)
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    stage: GenericStage | None = None

    @model_validator(mode="after")
    def _identified(self) -> GenericEvent:
        if self.run_id is None and (self.pipeline is None or self.run_number in (None, "")):
            raise ValueError("give run_id, or pipeline and run_number")
        return self

    @property
    def sentinel_run_id(self) -> str:
        return self.run_id or f"{self.pipeline}#{self.run_number}"


def parse(payload: Mapping[str, Any]) -> GenericEvent:
    """Validate a post; `PayloadError` names the first bad field."""
    if not isinstance(payload, Mapping):
        raise PayloadError("payload", "is not a JSON object")
    try:
        return GenericEvent.model_validate(dict(payload))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        if not field:  # the model's own check: no run identity
            problem = "is missing (give run_id, or pipeline and run_number)"
            raise PayloadError("run_id", problem) from None
        raise PayloadError(field, _reason(error)) from None


def normalize(payload: Mapping[str, Any], received_at: datetime) -> list[CiEvent]:
    """One post -> its run event, and its stage event when it has a stage."""
    post = parse(payload)
    received = as_utc(received_at)
    run = post.sentinel_run_id
    event_id = post.event_id or derive_event_id(post)
    common: dict[str, Any] = {
        "provider": PROVIDER,
        "event_type": EVENT_TYPE,
        "run_id": run,
        "provider_run_id": run,
        "attempt": post.attempt,
        "repository": post.repository,
        "pipeline": post.pipeline,
        "branch": post.branch,
        "commit_sha": post.commit,
        "event_time": as_utc(post.event_time),
        "received_at": received,
        "raw": dict(payload),
    }
    events = [
        CiEvent(
            event_id=event_id,
            kind=CiEventKind.RUN,
            status=post.status,
            raw_status=post.status.value,
            url=post.url,
            labels=post.labels,
            started_at=post.started_at,
            finished_at=post.finished_at if post.status.terminal else None,
            **common,
        )
    ]
    stage = post.stage
    if stage is not None:
        events.append(
            CiEvent(
                event_id=f"{event_id}:stage",
                kind=CiEventKind.STAGE,
                status=stage.status,
                raw_status=stage.status.value,
                stage_id=stage.id,
                stage_name=stage.name,
                started_at=stage.started_at,
                finished_at=stage.finished_at if stage.status.terminal else None,
                **common,
            )
        )
    return events


def derive_event_id(post: GenericEvent) -> str:
    """Deterministic id of a post without ``event_id``: same facts, same id."""
    stage = post.stage
    parts = [
        post.sentinel_run_id,
        post.status.value,
        as_utc(post.event_time).isoformat(),
        stage.id if stage else "",
        stage.status.value if stage else "",
    ]
    key = "\x00".join(parts).encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).hexdigest()[:32]
    return f"generic-{digest}"


def _reason(error: Any) -> str:
    if error["type"] == "missing":
        return "is missing"
    return f"is invalid: {error['msg']} (got {shown(error.get('input'))})"
