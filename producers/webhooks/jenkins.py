"""Jenkins Notification plugin payloads normalised into `CiEvent` (pure: no I/O).

The plugin (jenkinsci/notification-plugin, JSON format) posts one JSON object per build phase,
serialised by Gson with snake_case names and *without* null fields::

    {"name": "main", "display_name": "main", "url": "job/shop/job/api/job/main/",
     "build": {"full_url": "https://ci.example.com/job/shop/job/api/job/main/42/",
               "number": 42, "queue_id": 1234, "timestamp": 1764230400000, "duration": 0,
               "phase": "STARTED", "status": "SUCCESS", "url": "job/shop/job/api/job/main/42/",
               "scm": {"url": "...", "branch": "origin/main", "commit": "..."},
               "parameters": {...}, "log": "...", "notes": "...", "test_summary": {...},
               "artifacts": {...}}}

Run identity
    ``name`` is only the job's *short* name (a multibranch branch job is just ``main``), so the
    job's full name is read from the job ``url`` (``job/shop/job/api/job/main/`` ->
    ``shop/api/main``, each segment URL-decoded once, which gives Jenkins' own full name, e.g.
    ``feature%2Fx`` for branch ``feature/x``); without a usable ``url`` it is ``name``.
    Jenkins forbids ``:`` in item names, so the run id is unambiguous:

    ``jenkins:{full name}:{number}``, or ``jenkins:{instance}:{full name}:{number}`` when
    ``webhooks.jenkins.instance`` names the controller (needed when several post here).

    ``url`` is the build's ``full_url`` (absent when Jenkins has no root URL configured).
    Label ``jenkins.run_url`` is the build's relative ``url`` -- exactly the ``runUrl``
    annotation the Jenkins Kubernetes plugin puts on the build's agent pods, whose default
    correlation key is ``jenkins:{runUrl}`` (see ``k8s.correlation``). Joining pods to the build
    is ``pod correlation_key == "jenkins:" + labels["jenkins.run_url"]``.

Status mapping (``raw_status`` = the phase, ``conclusion`` = the plugin's ``status``)

    ===========================  ===========
    phase / status               RunStatus
    ===========================  ===========
    QUEUED                       pending
    STARTED                      running
    COMPLETED/FINALIZED SUCCESS  succeeded
    ... FAILURE, UNSTABLE        failed
    ... ABORTED, NOT_BUILT       cancelled
    ... missing or other status  unknown
    other phases (NONE, ...)     ignored (202, nothing published)
    ===========================  ===========

    UNSTABLE is failed: Jenkins sets it when tests failed (or a quality gate tripped) while the
    build itself ran; for a test-automation monitor that is a failed run, and ``conclusion``
    keeps ``UNSTABLE`` for anyone who wants to tell them apart. NOT_BUILT is cancelled: the
    build ended without doing its work (a skip, a ``[ci skip]``, an early stop), which is
    neither a failure of the code nor an open question; it must close the run, which unknown
    would not. On QUEUED/STARTED the plugin may send a ``status`` (the build's result so far,
    or a stale one); it is not an outcome yet and is ignored.

Timestamps
    ``build.timestamp`` is epoch milliseconds and means, per phase: QUEUED the time the build
    entered the queue, STARTED the build's start, COMPLETED start + duration (its end),
    FINALIZED when post-build work finished. It is the event time; 0 or absent falls back to
    ``received_at``. COMPLETED with a ``duration`` also gives the start time.
    Both terminal phases set ``finished_at`` to their timestamp, and the run tracker keeps the
    earliest report of the outcome: the build's own end (COMPLETED), as Jenkins shows it, not
    the end of its post-build work (FINALIZED, a few seconds later), whatever order they come in.

Delivery id
    The plugin sends no delivery id, and its retries re-send the same phase. The event id is a
    hash of (instance, full name, number, phase), so a repeated phase of a build is one event.

``raw`` keeps the payload as received, except that ``build.log`` (the plugin can send the whole
console log) is cut to its last `RAW_LOG_CHARS` characters: logs travel through the log
pipeline, and a Kafka message has a size limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from producers.webhooks.payload import Ignored, PayloadError, problem
from schemas.messages import CiEvent, CiEventKind, RunStatus
from schemas.utc import as_utc

PROVIDER = "jenkins"
EVENT_TYPE = "build"
RAW_LOG_CHARS = 16 * 1024

_PHASE_STATUS = {"QUEUED": RunStatus.PENDING, "STARTED": RunStatus.RUNNING}
_TERMINAL_PHASES = frozenset({"COMPLETED", "FINALIZED"})
_RESULTS: dict[str, RunStatus] = {
    "SUCCESS": RunStatus.SUCCEEDED,
    "FAILURE": RunStatus.FAILED,
    "UNSTABLE": RunStatus.FAILED,
    "ABORTED": RunStatus.CANCELLED,
    "NOT_BUILT": RunStatus.CANCELLED,
}

Payload = Mapping[str, Any]


def map_status(phase: str, result: str | None) -> RunStatus | None:
    """(phase, status) -> RunStatus per the module table; None for a phase we do not track."""
    if phase in _PHASE_STATUS:
        return _PHASE_STATUS[phase]
    if phase in _TERMINAL_PHASES:
        return _RESULTS.get(result or "", RunStatus.UNKNOWN)
    return None


def delivery_id(instance: str | None, full_name: str, number: int, phase: str) -> str:
    """The deterministic event id of one phase of one build."""
    key = "\x00".join((instance or "", full_name, str(number), phase))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"jenkins-{phase.lower()}-{digest}"


def run_id(instance: str | None, full_name: str, number: int) -> str:
    prefix = f"jenkins:{instance}:" if instance else "jenkins:"
    return f"{prefix}{full_name}:{number}"


def job_full_name(job_url: str | None, name: str | None) -> str | None:
    """``job/a/job/b/`` -> ``a/b`` (segments URL-decoded once); else `name`."""
    if job_url:
        parts = [part for part in job_url.strip("/").split("/") if part]
        if parts and len(parts) % 2 == 0 and all(key == "job" for key in parts[::2]):
            return "/".join(unquote(part) for part in parts[1::2])
    return name


def normalize(
    payload: Payload, received_at: datetime, instance: str | None = None
) -> CiEvent | Ignored:
    """One Notification plugin post -> a `CiEvent`, or `Ignored` for an untracked phase.

    Raises `PayloadError` naming the field when the payload lacks or garbles what we need.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("payload", "is not a JSON object")
    build = payload.get("build")
    if not isinstance(build, Mapping):
        raise PayloadError("build", problem(build, "an object"))
    phase = build.get("phase")
    if not isinstance(phase, str) or not phase:
        raise PayloadError("build.phase", problem(phase, "a non-empty string"))
    result = _opt_str(build, "status")
    status = map_status(phase, result)
    if status is None:
        return Ignored(f"phase {phase!r} is not tracked")
    number = build.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise PayloadError("build.number", problem(number, "a non-negative integer"))
    full_name = job_full_name(_opt_str(payload, "url"), _opt_str(payload, "name"))
    if full_name is None:
        raise PayloadError("name", problem(payload.get("name"), "a non-empty string"))
    received = as_utc(received_at)
    stamp = _millis(build, "timestamp")
    duration = _duration(build)
    scm = build.get("scm")
    scm = scm if isinstance(scm, Mapping) else {}
    terminal = phase in _TERMINAL_PHASES
    started = None
    if phase == "STARTED":
        started = stamp
    elif phase == "COMPLETED" and stamp is not None and duration is not None:
        started = _minus(stamp, duration)
    return CiEvent(
        event_id=delivery_id(instance, full_name, number, phase),
        provider=PROVIDER,
        event_type=EVENT_TYPE,
        action=phase.lower(),
        kind=CiEventKind.RUN,
        run_id=run_id(instance, full_name, number),
        provider_run_id=f"{full_name}#{number}",
        repository=_opt_str(scm, "url"),
        pipeline=full_name,
        branch=_branch(_opt_str(scm, "branch")),
        commit_sha=_opt_str(scm, "commit"),
        status=status,
        raw_status=phase,
        conclusion=result if terminal else None,
        url=_opt_str(build, "full_url"),
        labels=_labels(payload, build, instance, scm),
        created_at=stamp if phase == "QUEUED" else None,
        started_at=started,
        finished_at=stamp if terminal else None,
        event_time=stamp or received,
        received_at=received,
        raw=_raw(payload, build),
    )


def _labels(payload: Payload, build: Payload, instance: str | None, scm: Payload) -> dict[str, str]:
    queue_id = build.get("queue_id")
    labels = {
        "jenkins.run_url": _opt_str(build, "url"),
        "jenkins.job_url": _opt_str(payload, "url"),
        "jenkins.instance": instance,
        "jenkins.queue_id": (
            str(queue_id)
            if isinstance(queue_id, int) and not isinstance(queue_id, bool) and queue_id > 0
            else None
        ),
        "jenkins.scm_branch": _opt_str(scm, "branch"),
    }
    return {key: value for key, value in labels.items() if value}


def _branch(value: str | None) -> str | None:
    # The Git plugin reports the remote-tracking name (origin/main); the branch is main.
    if value and value.startswith("origin/"):
        return value[len("origin/") :] or None
    if value and value.startswith("refs/heads/"):
        return value[len("refs/heads/") :] or None
    return value


def _raw(payload: Payload, build: Payload) -> dict[str, Any]:
    raw = dict(payload)
    log = build.get("log")
    if isinstance(log, str) and len(log) > RAW_LOG_CHARS:
        raw["build"] = {**build, "log": log[-RAW_LOG_CHARS:], "log_truncated": True}
    return raw


def _millis(obj: Payload, key: str) -> datetime | None:
    value = obj.get(key)
    if value is None or value == 0:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (ValueError, OverflowError, OSError):
            pass
    raise PayloadError(f"build.{key}", problem(value, "epoch milliseconds"))


def _duration(build: Payload) -> timedelta | None:
    value = build.get("duration")
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        try:
            return timedelta(milliseconds=value) if value > 0 else None
        except OverflowError:
            pass
    raise PayloadError("build.duration", problem(value, "milliseconds (>= 0)"))


def _minus(stamp: datetime, duration: timedelta) -> datetime:
    try:
        return stamp - duration
    except OverflowError as exc:
        raise PayloadError("build.duration", "is longer than the build's timestamp allows") from exc


def _opt_str(obj: Payload, key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None
