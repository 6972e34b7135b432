"""GitHub webhooks: signature check and normalisation into `CiEvent` (pure: no I/O).

Run identity
    One Sentinel run per workflow run *attempt*: a re-run is a new execution with its own jobs,
    duration and outcome, so it must not overwrite the first attempt.

    ============  ======  =================================================  ============
    event         kind    run_id                                             stage_id
    ============  ======  =================================================  ============
    workflow_run  run     ``github:{repo}:{workflow_run.id}:{run_attempt}``  -
    workflow_job  stage   ``github:{repo}:{job.run_id}:{job.run_attempt}``   job id
    check_suite   run     ``github:{repo}:check_suite:{suite.id}``           -
    check_run     stage   ``github:{repo}:check_suite:{check_suite.id}``     check run id
    ============  ======  =================================================  ============

    ``provider_run_id`` is always the id of the *run* (workflow run or check suite), also on stage
    events, so every event of a run carries the same identity. Check suites of apps listed in
    ``tracking.ignore_check_suite_apps`` are still normalised here; the run tracker skips them.

Status mapping (``raw_status`` and ``conclusion`` are kept as GitHub sent them)

    =============================================  ===========
    GitHub status / conclusion                     RunStatus
    =============================================  ===========
    queued, requested, waiting, pending            pending
    in_progress                                    running
    completed + success, neutral, skipped          succeeded
    completed + failure, startup_failure           failed
    completed + cancelled                          cancelled
    completed + timed_out, stale                   timed_out
    completed + action_required                    pending (waits for a human)
    completed + null or unrecognised conclusion    unknown
    any other status (not yet known to us)         pending
    =============================================  ===========

    An unrecognised *status* maps to pending, not unknown: every status GitHub has added so far
    (waiting, requested, pending) was a pre-run state, and pending never outranks real progress in
    the run tracker, whereas unknown would hide a later in_progress.

Timestamps
    ``event_time`` is when GitHub says this state came about. Workflow runs and check suites carry
    ``updated_at``, which GitHub bumps on every change, so it is used as is. Jobs and check runs
    have no ``updated_at``; the latest of their own created/started/completed times is the moment
    of their newest transition. Only a payload with none of these falls back to ``received_at``
    (rejecting it would lose the delivery for good; GitHub does not resend after a 400).

    ``started_at`` is left empty while the status is pending: GitHub fills a queued job's
    ``started_at`` with its creation time, which would count queue time as run time.
    ``finished_at`` is set only for terminal/unknown statuses (not for action_required).
    For a re-run (attempt > 1) GitHub keeps the first attempt's ``created_at``; the attempt itself
    was created at ``run_started_at``, so that is this run's ``created_at``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from producers.webhooks.payload import Ignored, PayloadError, problem
from schemas.messages import CiEvent, CiEventKind, RunStatus, StepInfo
from schemas.utc import as_utc

PROVIDER = "github"
SIGNATURE_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")

_PENDING_STATUSES = frozenset({"queued", "requested", "waiting", "pending"})
_CONCLUSIONS: dict[str, RunStatus] = {
    "success": RunStatus.SUCCEEDED,
    "neutral": RunStatus.SUCCEEDED,
    "skipped": RunStatus.SUCCEEDED,
    "failure": RunStatus.FAILED,
    "startup_failure": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
    "stale": RunStatus.TIMED_OUT,
    "action_required": RunStatus.PENDING,
}
_FINISHED_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.TIMED_OUT,
        RunStatus.UNKNOWN,
    }
)

Payload = Mapping[str, Any]


@dataclass(frozen=True)
class Ping:
    """GitHub's hook check, sent once when a webhook is created."""

    delivery_id: str
    zen: str | None
    hook_id: int | None


NormalizeResult = CiEvent | Ping | Ignored


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True if `header` (X-Hub-Signature-256) is the HMAC-SHA256 of `body` under `secret`."""
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    given = header[len(SIGNATURE_PREFIX) :].strip()
    # Checking the shape first keeps compare_digest on ASCII input (it rejects other str).
    if not _HEX_DIGEST.fullmatch(given):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.lower())


def map_status(status: str | None, conclusion: str | None) -> RunStatus:
    """GitHub (status, conclusion) -> RunStatus, per the table in the module docstring."""
    if status == "in_progress":
        return RunStatus.RUNNING
    if status == "completed":
        return _CONCLUSIONS.get(conclusion or "", RunStatus.UNKNOWN)
    return RunStatus.PENDING


def normalize(
    event: str, delivery_id: str, payload: Payload, received_at: datetime
) -> NormalizeResult:
    """Turn one webhook delivery into a `CiEvent`, a `Ping` or `Ignored`.

    Raises `PayloadError` (a ValueError naming the field) when a tracked event lacks what we need.
    """
    builder = _BUILDERS.get(event)
    if builder is None and event != "ping":
        return Ignored(f"event {event!r} is not tracked")
    if not isinstance(payload, Mapping):
        raise PayloadError("payload", "is not a JSON object")
    if builder is None:
        return _ping(delivery_id, payload)
    fields = builder(payload)
    return CiEvent(
        event_id=delivery_id,
        provider=PROVIDER,
        event_type=event,
        action=_opt_str(payload, "action"),
        actor=fields.pop("actor", None) or _login(payload.get("sender")),
        event_time=fields.pop("event_time", None) or as_utc(received_at),
        received_at=as_utc(received_at),
        raw=dict(payload),
        **fields,
    )


# --- one builder per tracked event; each returns CiEvent fields -----------------------------


def _workflow_run(payload: Payload) -> dict[str, Any]:
    run = _object(payload, "workflow_run", "workflow_run")
    repo = _repository(payload)
    run_id = _id(run, "id", "workflow_run.id")
    attempt = _attempt(run, "workflow_run.run_attempt")
    status, raw_status, conclusion = _status(run, "workflow_run")
    created = _time(run, "created_at", "workflow_run")
    run_started = _time(run, "run_started_at", "workflow_run")
    updated = _time(run, "updated_at", "workflow_run")
    return {
        "kind": CiEventKind.RUN,
        "run_id": f"github:{repo}:{run_id}:{attempt}",
        "provider_run_id": run_id,
        "attempt": attempt,
        "repository": repo,
        "pipeline": _first(
            _opt_str(run, "name"),
            _opt_str(_mapping(payload.get("workflow")), "name"),
            _opt_str(run, "path"),
        ),
        "branch": _opt_str(run, "head_branch"),
        "commit_sha": _opt_str(run, "head_sha"),
        "trigger": _opt_str(run, "event"),
        "actor": _login(run.get("triggering_actor")) or _login(run.get("actor")),
        "status": status,
        "raw_status": raw_status,
        "conclusion": conclusion,
        "url": _opt_str(run, "html_url"),
        "labels": _workflow_run_labels(run),
        "created_at": (run_started or created) if attempt > 1 else (created or run_started),
        "started_at": None if status is RunStatus.PENDING else run_started,
        "finished_at": updated if status in _FINISHED_STATUSES else None,
        "event_time": updated or _latest(created, run_started),
    }


def _workflow_job(payload: Payload) -> dict[str, Any]:
    job = _object(payload, "workflow_job", "workflow_job")
    repo = _repository(payload)
    run_id = _id(job, "run_id", "workflow_job.run_id")
    attempt = _attempt(job, "workflow_job.run_attempt")
    status, raw_status, conclusion = _status(job, "workflow_job")
    created = _time(job, "created_at", "workflow_job")
    started = _time(job, "started_at", "workflow_job")
    completed = _time(job, "completed_at", "workflow_job")
    return {
        "kind": CiEventKind.STAGE,
        "run_id": f"github:{repo}:{run_id}:{attempt}",
        "provider_run_id": run_id,
        "attempt": attempt,
        "repository": repo,
        "pipeline": _opt_str(job, "workflow_name"),
        "branch": _opt_str(job, "head_branch"),
        "commit_sha": _opt_str(job, "head_sha"),
        "status": status,
        "raw_status": raw_status,
        "conclusion": conclusion,
        "stage_id": _id(job, "id", "workflow_job.id"),
        "stage_name": _opt_str(job, "name"),
        "runner_name": _opt_str(job, "runner_name"),
        "labels": _runner_labels(job),
        "steps": _steps(job),
        "url": _opt_str(job, "html_url"),
        "created_at": created,
        "started_at": None if status is RunStatus.PENDING else started,
        "finished_at": completed if status in _FINISHED_STATUSES else None,
        "event_time": _latest(created, started, completed),
    }


def _check_suite(payload: Payload) -> dict[str, Any]:
    suite = _object(payload, "check_suite", "check_suite")
    repo = _repository(payload)
    suite_id = _id(suite, "id", "check_suite.id")
    status, raw_status, conclusion = _status(suite, "check_suite")
    created = _time(suite, "created_at", "check_suite")
    updated = _time(suite, "updated_at", "check_suite")
    app_slug, app_name = _app(suite.get("app"))
    return {
        "kind": CiEventKind.RUN,
        "run_id": f"github:{repo}:check_suite:{suite_id}",
        "provider_run_id": suite_id,
        "repository": repo,
        "pipeline": app_name,
        "branch": _opt_str(suite, "head_branch"),
        "commit_sha": _opt_str(suite, "head_sha"),
        "app": app_slug,
        "status": status,
        "raw_status": raw_status,
        "conclusion": conclusion,
        "labels": {"github.app": app_slug} if app_slug else {},
        "created_at": created,
        "finished_at": updated if status in _FINISHED_STATUSES else None,
        "event_time": updated or created,
    }


def _check_run(payload: Payload) -> dict[str, Any]:
    check = _object(payload, "check_run", "check_run")
    suite = _object(check, "check_suite", "check_run.check_suite")
    repo = _repository(payload)
    suite_id = _id(suite, "id", "check_run.check_suite.id")
    status, raw_status, conclusion = _status(check, "check_run")
    started = _time(check, "started_at", "check_run")
    completed = _time(check, "completed_at", "check_run")
    # The check run's own app is authoritative; the suite's is the same app on real payloads.
    app_slug, app_name = _app(check.get("app"))
    if app_slug is None:
        app_slug, app_name = _app(suite.get("app"))
    return {
        "kind": CiEventKind.STAGE,
        "run_id": f"github:{repo}:check_suite:{suite_id}",
        "provider_run_id": suite_id,
        "repository": repo,
        "pipeline": app_name,
        "branch": _opt_str(suite, "head_branch"),
        "commit_sha": _opt_str(check, "head_sha") or _opt_str(suite, "head_sha"),
        "app": app_slug,
        "status": status,
        "raw_status": raw_status,
        "conclusion": conclusion,
        "stage_id": _id(check, "id", "check_run.id"),
        "stage_name": _opt_str(check, "name"),
        "url": _opt_str(check, "html_url"),
        "started_at": None if status is RunStatus.PENDING else started,
        "finished_at": completed if status in _FINISHED_STATUSES else None,
        "event_time": _latest(started, completed),
    }


_BUILDERS = {
    "workflow_run": _workflow_run,
    "workflow_job": _workflow_job,
    "check_suite": _check_suite,
    "check_run": _check_run,
}


def _ping(delivery_id: str, payload: Payload) -> Ping:
    hook_id = payload.get("hook_id")
    zen = payload.get("zen")
    return Ping(
        delivery_id=delivery_id,
        zen=zen if isinstance(zen, str) else None,
        hook_id=hook_id if isinstance(hook_id, int) and not isinstance(hook_id, bool) else None,
    )


# --- parts shared by the builders --------------------------------------------------------------


def _workflow_run_labels(run: Payload) -> dict[str, str]:
    labels = {
        "github.workflow_id": _opt_id(run, "workflow_id"),
        "github.workflow_path": _opt_str(run, "path"),
        "github.run_number": _opt_id(run, "run_number"),
    }
    # Fork pull requests run with the fork's code: worth knowing when a run misbehaves.
    head_repo = _opt_str(_mapping(run.get("head_repository")), "full_name")
    base_repo = _opt_str(_mapping(run.get("repository")), "full_name")
    if head_repo and head_repo != base_repo:
        labels["github.head_repository"] = head_repo
    numbers = [
        str(pr["number"])
        for pr in _list(run.get("pull_requests"))
        if isinstance(pr, Mapping) and isinstance(pr.get("number"), int)
    ]
    if numbers:
        labels["github.pull_requests"] = ",".join(numbers)
    return {key: value for key, value in labels.items() if value}


def _runner_labels(job: Payload) -> dict[str, str]:
    # Runner labels pick the machine type (and, with ARC, the scale set): the usual suspect
    # when one kind of runner is slow or flaky. Joined in GitHub's order to stay one map entry.
    runner_labels = [label for label in _list(job.get("labels")) if isinstance(label, str)]
    labels = {
        "github.runner_labels": ",".join(runner_labels),
        "github.runner_group": _opt_str(job, "runner_group_name"),
        "github.runner_id": _opt_id(job, "runner_id"),
    }
    return {key: value for key, value in labels.items() if value}


def _steps(job: Payload) -> list[StepInfo]:
    raw_steps = job.get("steps")
    if raw_steps is None:
        return []
    if not isinstance(raw_steps, list):
        raise PayloadError("workflow_job.steps", "is not a list")
    steps = []
    for index, step in enumerate(raw_steps):
        path = f"workflow_job.steps[{index}]"
        if not isinstance(step, Mapping):
            raise PayloadError(path, "is not an object")
        number = step.get("number")
        number = number if isinstance(number, int) and not isinstance(number, bool) else None
        conclusion = _opt_str(step, "conclusion")
        steps.append(
            StepInfo(
                name=_opt_str(step, "name") or f"step {number if number is not None else index}",
                number=number,
                status=map_status(_opt_str(step, "status"), conclusion),
                conclusion=conclusion,
                started_at=_time(step, "started_at", path),
                finished_at=_time(step, "completed_at", path),
            )
        )
    return steps


def _status(obj: Payload, path: str) -> tuple[RunStatus, str, str | None]:
    raw_status = obj.get("status")
    if not isinstance(raw_status, str) or not raw_status:
        raise PayloadError(f"{path}.status", problem(raw_status, "a non-empty string"))
    conclusion = _opt_str(obj, "conclusion")
    return map_status(raw_status, conclusion), raw_status, conclusion


def _repository(payload: Payload) -> str:
    repo = _object(payload, "repository", "repository")
    name = repo.get("full_name")
    if not isinstance(name, str) or not name:
        raise PayloadError("repository.full_name", problem(name, "a non-empty string"))
    return name


def _app(app: Any) -> tuple[str | None, str | None]:
    """(slug, display name) of a GitHub App; older payloads have no slug, only a name."""
    obj = _mapping(app)
    slug = _opt_str(obj, "slug")
    name = _opt_str(obj, "name")
    return slug or name, name or slug


def _attempt(obj: Payload, path: str) -> int:
    # Payloads from before re-runs existed (2021) have no run_attempt: that was attempt 1.
    value = obj.get("run_attempt", 1)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PayloadError(path, problem(value, "a positive integer"))
    return value


def _id(obj: Payload, key: str, path: str) -> str:
    value = _opt_id(obj, key)
    if value is None:
        raise PayloadError(path, problem(obj.get(key), "an integer or string id"))
    return value


def _opt_id(obj: Payload, key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value):
        return str(value)
    return None


def _object(obj: Payload, key: str, path: str) -> Payload:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise PayloadError(path, problem(value, "an object"))
    return value


def _list(value: Any) -> list[Any]:
    """A payload list, or nothing when a corrupted payload has something else there."""
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Payload:
    return value if isinstance(value, Mapping) else {}


def _opt_str(obj: Payload, key: str) -> str | None:
    # GitHub sends "" for unset names (e.g. a workflow_run without a `name:`): treat as absent.
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _login(user: Any) -> str | None:
    return _opt_str(_mapping(user), "login")


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)


def _time(obj: Payload, key: str, parent: str) -> datetime | None:
    """An optional timestamp: RFC 3339 string (offset-less = UTC) or epoch seconds."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            return as_utc(datetime.fromisoformat(value))
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise PayloadError(f"{parent}.{key}", problem(value, "an RFC 3339 timestamp"))


def _latest(*times: datetime | None) -> datetime | None:
    present = [time for time in times if time is not None]
    return max(present) if present else None
