"""GitHub webhook normalisation against the octokit example corpus (tests/data/github-webhooks).

The expected values below were written by reading each payload, not produced by the code.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from producers.webhooks.github import (
    Ignored,
    PayloadError,
    Ping,
    map_status,
    normalize,
    verify_signature,
)
from schemas.messages import CiEvent, CiEventKind, RunStatus
from tests.support.paths import DATA

CORPUS = DATA / "github-webhooks"
TRACKED = ("workflow_run", "workflow_job", "check_suite", "check_run")
RECEIVED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

RUN, STAGE = CiEventKind.RUN, CiEventKind.STAGE
PENDING, RUNNING = RunStatus.PENDING, RunStatus.RUNNING
SUCCEEDED, FAILED = RunStatus.SUCCEEDED, RunStatus.FAILED


def load(event: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / event / name).read_text())
    return data


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Expected:
    run_id: str
    kind: CiEventKind
    status: RunStatus
    raw_status: str
    conclusion: str | None
    provider_run_id: str
    pipeline: str
    branch: str
    actor: str
    event_time: str
    stage_id: str | None = None
    stage_name: str | None = None
    app: str | None = None


OCTO_RUN = "github:octo-org/octo-repo:289782451:1"
HELLO_JOB_RUN = "github:Codertocat/Hello-World:2202229078:1"
ENV_TEST_RUN = "github:lineville/elastic-machines-testing:4747967848:1"
SUITE_147 = "github:Codertocat/Hello-World:check_suite:118578147"
SUITE_174 = "github:Codertocat/Hello-World:check_suite:118578174"

_wr = dict(
    run_id=OCTO_RUN,
    kind=RUN,
    provider_run_id="289782451",
    pipeline="test",
    branch="master",
    actor="Codertocat",
)
_job = dict(
    run_id=HELLO_JOB_RUN,
    kind=STAGE,
    provider_run_id="2202229078",
    pipeline="CodeQL",
    branch="main",
    actor="Codertocat",
    stage_id="289782451",
)
_env_job = dict(
    run_id=ENV_TEST_RUN,
    kind=STAGE,
    status=PENDING,
    raw_status="waiting",
    conclusion=None,
    provider_run_id="4747967848",
    pipeline="Env Test",
    branch="main",
    actor="lineville",
    event_time="2023-04-19T21:12:12Z",
    stage_id="12877621891",
    stage_name="test",
)
_suite_done = dict(
    run_id=SUITE_147,
    kind=RUN,
    status=SUCCEEDED,
    raw_status="completed",
    conclusion="success",
    provider_run_id="118578147",
    pipeline="octocoders-linter",
    branch="changes",
    event_time="2019-05-15T15:21:14Z",
    app="octocoders-linter",
)
_suite_new = dict(
    run_id=SUITE_174,
    kind=RUN,
    status=PENDING,
    raw_status="queued",
    conclusion=None,
    provider_run_id="118578174",
    pipeline="octocoders-linter",
    branch="master",
    actor="Codertocat",
    event_time="2019-05-15T15:20:33Z",
    app="octocoders-linter",
)
_check = dict(
    run_id=SUITE_147,
    kind=STAGE,
    provider_run_id="118578147",
    pipeline="octocoders-linter",
    branch="changes",
    actor="Codertocat",
    event_time="2019-05-15T15:21:12Z",
    stage_id="128620228",
    stage_name="Octocoders-linter",
    app="octocoders-linter",
)
_randscape = dict(
    run_id="github:github/hello-world:check_suite:5",
    kind=STAGE,
    status=SUCCEEDED,
    raw_status="completed",
    conclusion="neutral",
    provider_run_id="5",
    pipeline="Super Duper",
    branch="master",
    actor="octocat",
    event_time="2018-05-04T01:14:52Z",
    stage_id="4",
    stage_name="randscape",
    app="Super Duper",
)

# One row per example file of every tracked event: (event, file) -> what it must normalise to.
CORPUS_TABLE: dict[tuple[str, str], Expected] = {
    # workflow_run: `name` is "" in these examples, so the pipeline is the workflow's name.
    ("workflow_run", "completed.payload.json"): Expected(
        **_wr,
        status=SUCCEEDED,
        raw_status="completed",
        conclusion="success",
        event_time="2020-10-05T16:33:49Z",
    ),
    ("workflow_run", "completed.with-pull-requests.payload.json"): Expected(
        **_wr,
        status=SUCCEEDED,
        raw_status="completed",
        conclusion="success",
        event_time="2020-10-05T16:33:49Z",
    ),
    ("workflow_run", "requested.payload.json"): Expected(
        **_wr,
        status=PENDING,
        raw_status="queued",
        conclusion=None,
        event_time="2020-10-05T16:33:24Z",
    ),
    ("workflow_run", "requested.with-conclusion.payload.json"): Expected(
        **_wr,
        status=PENDING,
        raw_status="completed",
        conclusion="action_required",
        event_time="2020-10-05T16:33:24Z",
    ),
    # workflow_job: a job is a stage of its run attempt.
    ("workflow_job", "completed.failure.with-organization.payload.json"): Expected(
        **_job,
        status=FAILED,
        raw_status="completed",
        conclusion="failure",
        event_time="2021-08-05T10:38:16Z",
        stage_name="linters",
    ),
    ("workflow_job", "completed.success.with-organization.payload.json"): Expected(
        **_job,
        status=SUCCEEDED,
        raw_status="completed",
        conclusion="success",
        event_time="2021-08-05T10:38:16Z",
        stage_name="linters",
    ),
    ("workflow_job", "in_progress.payload.json"): Expected(
        **_job,
        status=RUNNING,
        raw_status="in_progress",
        conclusion=None,
        event_time="2021-09-13T02:21:13Z",
        stage_name="Analyze (javascript)",
    ),
    ("workflow_job", "in_progress.with-queued-steps.payload.json"): Expected(
        run_id="github:wolfy1339/github-events-schemas:5373506832:1",
        kind=STAGE,
        status=RUNNING,
        raw_status="in_progress",
        conclusion=None,
        provider_run_id="5373506832",
        pipeline="Test",
        branch="renovate/got-13.x",
        actor="renovate[bot]",
        event_time="2023-06-26T03:31:36Z",
        stage_id="14541957942",
        stage_name="Do examples need to be regenerated?",
    ),
    ("workflow_job", "queued.payload.json"): Expected(
        **_job,
        status=PENDING,
        raw_status="queued",
        conclusion=None,
        event_time="2021-09-13T02:21:13Z",
        stage_name="update",
    ),
    ("workflow_job", "queued.with-deployment.payload.json"): Expected(**_env_job),
    ("workflow_job", "waiting.payload.json"): Expected(**_env_job),
    # check_suite: its own run; the app slug names it (the name when the slug is missing).
    ("check_suite", "completed.1.payload.json"): Expected(
        **{**_suite_done, "branch": "main", "app": "github-actions"}, actor="Codertocat"
    ),
    ("check_suite", "completed.payload.json"): Expected(**_suite_done, actor="Codertocat"),
    ("check_suite", "completed.with-organization.payload.json"): Expected(
        **_suite_done, actor="Codertocat"
    ),
    ("check_suite", "requested.payload.json"): Expected(**_suite_new),
    ("check_suite", "requested.payload.with-email-with-special-characters.json"): Expected(
        **_suite_new
    ),
    ("check_suite", "requested.with-organization.payload.json"): Expected(**_suite_new),
    ("check_suite", "rerequested.payload.json"): Expected(
        **_suite_done, actor="octocoders-linter[bot]"
    ),
    ("check_suite", "rerequested.with-organization.payload.json"): Expected(
        **_suite_done, actor="octocoders-linter[bot]"
    ),
    # check_run: a stage of its check suite's run.
    ("check_run", "completed.1.payload.json"): Expected(
        **{**_check, "app": "github-actions"},
        status=FAILED,
        raw_status="completed",
        conclusion="failure",
    ),
    ("check_run", "completed.payload.json"): Expected(
        **_check, status=SUCCEEDED, raw_status="completed", conclusion="success"
    ),
    ("check_run", "completed.with-organization.payload.json"): Expected(
        **_check, status=SUCCEEDED, raw_status="completed", conclusion="success"
    ),
    ("check_run", "created.payload.json"): Expected(
        **_check, status=PENDING, raw_status="queued", conclusion=None
    ),
    ("check_run", "created.with-organization.payload.json"): Expected(
        **_check, status=PENDING, raw_status="queued", conclusion=None
    ),
    ("check_run", "requested_action.payload.json"): Expected(
        run_id="github:electron/electron:check_suite:1604239627",
        kind=STAGE,
        status=RUNNING,
        raw_status="in_progress",
        conclusion=None,
        provider_run_id="1604239627",
        pipeline="Electron Cation",
        branch="miniak/event-process-id",
        actor="codebytere",
        event_time="2020-12-03T18:27:27Z",
        stage_id="1494503112",
        stage_name="API Review",
        app="electron-cation",
    ),
    ("check_run", "rerequested.payload.json"): Expected(**_randscape),
    ("check_run", "rerequested.with-organization.payload.json"): Expected(**_randscape),
}


def _normalize_file(event: str, name: str, delivery: str = "delivery-1") -> CiEvent:
    result = normalize(event, delivery, load(event, name), RECEIVED)
    assert isinstance(result, CiEvent), result
    return result


def test_table_covers_every_corpus_file_of_tracked_events() -> None:
    on_disk = {(path.parent.name, path.name) for e in TRACKED for path in (CORPUS / e).glob("*")}
    assert on_disk == set(CORPUS_TABLE)


@pytest.mark.parametrize(("event", "name"), sorted(CORPUS_TABLE), ids="/".join)
def test_corpus_example_normalises(event: str, name: str) -> None:
    expected = CORPUS_TABLE[(event, name)]
    got = _normalize_file(event, name)
    assert (
        got.run_id,
        got.kind,
        got.status,
        got.raw_status,
        got.conclusion,
        got.provider_run_id,
        got.pipeline,
        got.branch,
        got.actor,
        got.event_time,
        got.stage_id,
        got.stage_name,
        got.app,
    ) == (
        expected.run_id,
        expected.kind,
        expected.status,
        expected.raw_status,
        expected.conclusion,
        expected.provider_run_id,
        expected.pipeline,
        expected.branch,
        expected.actor,
        ts(expected.event_time),
        expected.stage_id,
        expected.stage_name,
        expected.app,
    )
    assert got.provider == "github"
    assert got.event_type == event
    assert got.event_id == "delivery-1"
    assert got.received_at == RECEIVED
    assert got.raw == load(event, name)
    # The message must survive the trip through Kafka unchanged.
    assert CiEvent.from_bytes(got.to_bytes()) == got


def test_workflow_run_completed_details() -> None:
    got = _normalize_file("workflow_run", "completed.payload.json")
    assert got.action == "completed"
    assert got.trigger == "repository_dispatch"
    assert got.commit_sha == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert got.url == "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    assert got.repository == "octo-org/octo-repo"
    assert got.attempt == 1
    assert got.created_at == ts("2020-10-05T16:33:24Z")
    assert got.started_at == ts("2020-10-05T16:33:49Z")
    assert got.finished_at == ts("2020-10-05T16:33:49Z")
    assert got.labels == {
        "github.workflow_id": "2823525",
        "github.workflow_path": ".github/workflows/test.yml",
        "github.run_number": "163",
    }


def test_workflow_run_with_pull_request_labels_it() -> None:
    got = _normalize_file("workflow_run", "completed.with-pull-requests.payload.json")
    assert got.labels["github.pull_requests"] == "2"


def test_pending_workflow_run_has_no_start_or_finish() -> None:
    requested = _normalize_file("workflow_run", "requested.payload.json")
    waiting = _normalize_file("workflow_run", "requested.with-conclusion.payload.json")
    for got in (requested, waiting):
        assert (got.started_at, got.finished_at) == (None, None)
        assert got.created_at == ts("2020-10-05T16:33:24Z")


def test_workflow_run_pipeline_falls_back_to_name_then_path() -> None:
    payload = load("workflow_run", "completed.payload.json")
    payload["workflow_run"]["name"] = "CI"
    assert _pipeline(payload) == "CI"
    payload["workflow_run"]["name"] = ""
    del payload["workflow"]
    assert _pipeline(payload) == ".github/workflows/test.yml"


def _pipeline(payload: dict[str, Any]) -> str | None:
    got = normalize("workflow_run", "d", payload, RECEIVED)
    assert isinstance(got, CiEvent)
    return got.pipeline


def test_rerun_attempt_is_its_own_run_created_when_the_attempt_started() -> None:
    payload = load("workflow_run", "completed.payload.json")
    payload["workflow_run"]["run_attempt"] = 2
    payload["workflow_run"]["run_started_at"] = "2020-10-06T08:00:00Z"
    payload["workflow_run"]["updated_at"] = "2020-10-06T08:05:00Z"
    got = normalize("workflow_run", "d", payload, RECEIVED)
    assert isinstance(got, CiEvent)
    assert got.run_id == "github:octo-org/octo-repo:289782451:2"
    assert got.attempt == 2
    assert got.created_at == got.started_at == ts("2020-10-06T08:00:00Z")
    assert got.finished_at == got.event_time == ts("2020-10-06T08:05:00Z")


def test_triggering_actor_is_preferred_over_sender() -> None:
    payload = load("workflow_run", "completed.payload.json")
    payload["workflow_run"]["triggering_actor"] = {"login": "rerunner"}
    got = normalize("workflow_run", "d", payload, RECEIVED)
    assert isinstance(got, CiEvent)
    assert got.actor == "rerunner"


def test_payload_without_run_attempt_is_attempt_one() -> None:
    payload = load("workflow_run", "completed.payload.json")
    del payload["workflow_run"]["run_attempt"]
    got = normalize("workflow_run", "d", payload, RECEIVED)
    assert isinstance(got, CiEvent)
    assert got.run_id == OCTO_RUN


def test_completed_job_steps_runner_and_times() -> None:
    got = _normalize_file("workflow_job", "completed.failure.with-organization.payload.json")
    assert got.runner_name == "GitHub Actions 5"
    assert got.url == "https://github.com/octo-org/octo-repo/runs/1291536064"
    assert got.created_at == ts("2021-08-05T10:33:58Z")
    assert got.started_at == ts("2021-08-05T10:34:58Z")
    assert got.finished_at == ts("2021-08-05T10:38:16Z")
    assert got.labels == {
        "github.runner_labels": "ubuntu-latest",
        "github.runner_group": "GitHub Actions",
        "github.runner_id": "5",
    }
    assert len(got.steps) == 12
    failing = got.steps[7]
    assert (failing.name, failing.number, failing.status, failing.conclusion) == (
        "Run yarn run format-check",
        8,
        FAILED,
        "failure",
    )
    assert failing.started_at == ts("2021-08-05T10:26:27Z")
    assert failing.finished_at == ts("2021-08-05T10:26:28Z")
    assert got.steps[8].status == SUCCEEDED  # skipped post step


def test_in_progress_job_step_statuses() -> None:
    got = _normalize_file("workflow_job", "in_progress.with-queued-steps.payload.json")
    assert [step.status for step in got.steps] == [SUCCEEDED, SUCCEEDED, RUNNING] + [PENDING] * 6
    assert got.steps[3].started_at is None
    assert got.started_at == ts("2023-06-26T03:31:36Z")
    assert got.finished_at is None


def test_queued_job_start_time_is_dropped() -> None:
    # GitHub sets a queued job's started_at to its creation time; that is not a start.
    got = _normalize_file("workflow_job", "queued.payload.json")
    assert got.created_at == ts("2021-09-13T02:21:13Z")
    assert got.started_at is None
    assert got.steps == []


def test_self_hosted_runner_labels() -> None:
    got = _normalize_file("workflow_job", "queued.with-deployment.payload.json")
    assert got.runner_name is None
    assert got.labels == {"github.runner_labels": "self-hosted,k8s"}


def test_check_suite_details() -> None:
    got = _normalize_file("check_suite", "completed.payload.json")
    assert got.labels == {"github.app": "octocoders-linter"}
    assert got.commit_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert got.created_at == ts("2019-05-15T15:20:31Z")
    assert got.finished_at == ts("2019-05-15T15:21:14Z")
    assert got.started_at is None


def test_check_run_details() -> None:
    got = _normalize_file("check_run", "completed.payload.json")
    assert got.url == "https://github.com/Codertocat/Hello-World/runs/128620228"
    assert got.started_at == got.finished_at == ts("2019-05-15T15:21:12Z")
    queued = _normalize_file("check_run", "created.payload.json")
    assert (queued.started_at, queued.finished_at) == (None, None)


@pytest.mark.parametrize("name", ["payload.json", "with-app_id.payload.json"])
def test_ping(name: str) -> None:
    got = normalize("ping", "d-ping", load("ping", name), RECEIVED)
    assert got == Ping(
        delivery_id="d-ping", zen="Anything added dilutes everything else.", hook_id=109948940
    )


@pytest.mark.parametrize("name", sorted(path.name for path in (CORPUS / "push").glob("*")))
def test_push_is_ignored(name: str) -> None:
    got = normalize("push", "d-push", load("push", name), RECEIVED)
    assert isinstance(got, Ignored)
    assert "push" in got.reason


def test_unknown_event_is_ignored_even_with_odd_payload() -> None:
    assert isinstance(normalize("issues", "d", {}, RECEIVED), Ignored)


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node = changed
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return changed


def _with(payload: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


WR = load("workflow_run", "completed.payload.json")
WJ = load("workflow_job", "in_progress.payload.json")
CS = load("check_suite", "requested.payload.json")
CR = load("check_run", "completed.payload.json")

BROKEN_PAYLOADS = [
    ("workflow_run", _without(WR, "workflow_run"), "workflow_run is missing"),
    ("workflow_run", _without(WR, "workflow_run", "id"), "workflow_run.id is missing"),
    ("workflow_run", _without(WR, "workflow_run", "status"), "workflow_run.status is missing"),
    ("workflow_run", _without(WR, "repository"), "repository is missing"),
    ("workflow_run", _without(WR, "repository", "full_name"), "repository.full_name"),
    ("workflow_run", _with(WR, "soon", "workflow_run", "updated_at"), "workflow_run.updated_at"),
    ("workflow_run", _with(WR, 0, "workflow_run", "run_attempt"), "workflow_run.run_attempt"),
    ("workflow_run", _with(WR, [], "workflow_run"), "workflow_run must be an object"),
    ("workflow_job", _without(WJ, "workflow_job", "run_id"), "workflow_job.run_id is missing"),
    ("workflow_job", _without(WJ, "workflow_job", "id"), "workflow_job.id is missing"),
    ("workflow_job", _with(WJ, "x", "workflow_job", "steps"), "workflow_job.steps"),
    ("workflow_job", _with(WJ, 7, "workflow_job", "status"), "workflow_job.status"),
    ("check_suite", _without(CS, "check_suite", "id"), "check_suite.id is missing"),
    ("check_run", _without(CR, "check_run", "check_suite"), "check_run.check_suite is missing"),
    ("check_run", _without(CR, "check_run", "check_suite", "id"), "check_run.check_suite.id"),
    ("check_run", _without(CR, "check_run", "id"), "check_run.id is missing"),
]


@pytest.mark.parametrize(("event", "payload", "message"), BROKEN_PAYLOADS)
def test_broken_payload_names_the_field(event: str, payload: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message.replace(".", r"\.")) as caught:
        normalize(event, "d", payload, RECEIVED)
    assert isinstance(caught.value, ValueError)
    assert message.startswith(caught.value.field)


def test_non_object_payload_is_rejected() -> None:
    with pytest.raises(PayloadError, match="payload"):
        normalize("workflow_run", "d", [], RECEIVED)  # type: ignore[arg-type]


def test_event_without_any_timestamp_uses_received_at() -> None:
    payload = copy.deepcopy(WR)
    for key in ("created_at", "updated_at", "run_started_at"):
        del payload["workflow_run"][key]
    got = normalize("workflow_run", "d", payload, RECEIVED)
    assert isinstance(got, CiEvent)
    assert got.event_time == RECEIVED


@pytest.mark.parametrize(
    ("status", "conclusion", "expected"),
    [
        ("queued", None, PENDING),
        ("requested", None, PENDING),
        ("waiting", None, PENDING),
        ("pending", None, PENDING),
        ("in_progress", None, RUNNING),
        ("completed", "success", SUCCEEDED),
        ("completed", "neutral", SUCCEEDED),
        ("completed", "skipped", SUCCEEDED),
        ("completed", "failure", FAILED),
        ("completed", "startup_failure", FAILED),
        ("completed", "cancelled", RunStatus.CANCELLED),
        ("completed", "timed_out", RunStatus.TIMED_OUT),
        ("completed", "stale", RunStatus.TIMED_OUT),
        ("completed", "action_required", PENDING),
        ("completed", None, RunStatus.UNKNOWN),
        ("completed", "something_new", RunStatus.UNKNOWN),
        ("brand_new_status", None, PENDING),
    ],
)
def test_status_mapping(status: str, conclusion: str | None, expected: RunStatus) -> None:
    assert map_status(status, conclusion) is expected


SECRET = b"It's a Secret to Everybody"
BODY = b'{"action":"completed","zen":"Keep it logically awesome."}'
GOOD = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_signature_good() -> None:
    assert verify_signature(SECRET, BODY, GOOD)
    assert verify_signature(SECRET, BODY, GOOD.upper().replace("SHA256=", "sha256="))


def test_signature_known_vector() -> None:
    # The example from GitHub's "Validating webhook deliveries" documentation.
    assert verify_signature(
        b"It's a Secret to Everybody",
        b"Hello, World!",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + hmac.new(b"other secret", BODY, hashlib.sha256).hexdigest(),
        "sha256=" + hmac.new(SECRET, BODY + b" ", hashlib.sha256).hexdigest(),
        "sha256=" + "0" * 64,
    ],
    ids=["wrong-secret", "tampered-body", "zeros"],
)
def test_signature_bad(header: str) -> None:
    assert not verify_signature(SECRET, BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        GOOD[len("sha256=") :],
        "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest(),
        GOOD[:-2],
        GOOD + "00",
        GOOD[:-1] + "g",
        GOOD[:-1] + "é",
        "sha256 " + GOOD[len("sha256=") :],
    ],
    ids=[
        "missing",
        "empty",
        "no-digest",
        "no-prefix",
        "sha1",
        "short",
        "long",
        "non-hex",
        "non-ascii",
        "no-equals",
    ],
)
def test_signature_missing_or_malformed(header: str | None) -> None:
    assert not verify_signature(SECRET, BODY, header)
