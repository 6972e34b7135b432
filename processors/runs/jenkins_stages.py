"""Jenkins ``[Pipeline]`` stages from one console stream, read line by line (pure).

Rules
    ``[Pipeline] stage`` + ``[Pipeline] { (NAME)`` opens NAME, ``[Pipeline] // stage`` closes the
    innermost open stage. ``ERROR: ...`` or ``script returned exit code N`` (N != 0) while open
    fails it; ``Stage "NAME" skipped due to ...`` closes it cancelled with conclusion
    ``skipped``. Repeated names get ``#2``, ``#3``.

Judgment calls
    * Jenkins prints an uncaught step failure (``ERROR: script returned exit code 1``) after
      ``End of Pipeline``, when no stage is open any more. The first ``skipped due to earlier
      failure(s)`` therefore marks the last stage that ran (if not already failed) as failed,
      by a second stage event with a later event time (same status rank, later event wins in
      the tracker). A failed nested stage fails its enclosing stage, as Jenkins shows it.

Known gaps
    * Jenkins parallel branches interleave in one console: ``// stage`` closes the innermost
      open stage, which in parallel output may be a sibling branch's stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from processors.test_results.log_parsers import clean_line
from schemas.messages import (
    RunStatus,
)

# ---------------------------------------------------------------------------------------------
# Log lines: Jenkins stages

# Jenkins hides console annotations as ESC[8m ha:<base64> ESC[0m in the raw console text.
_CONSOLE_NOTE = re.compile(r"\x1b\[8mha:[^\x1b]*\x1b\[0m")
_TIMESTAMPER = re.compile(r"^\[\d{4}-\d{2}-\d{2}[T ][\d:.,]+(?:Z|[+-]\d{2}:?\d{2})?\] ")
_STAGE_STEP = re.compile(r"^\[Pipeline\] stage\s*$")
_BLOCK_OPEN = re.compile(r"^\[Pipeline\] \{ \((?P<name>.*)\)\s*$")
_STAGE_CLOSE = re.compile(r"^\[Pipeline\] // stage\s*$")
_SKIPPED = re.compile(r'^Stage "(?P<name>.+)" skipped due to (?P<why>.+?)\s*$')
_ERROR = re.compile(r"^ERROR: ")
_EXIT_CODE = re.compile(r"script returned exit code (?P<code>-?\d+)")
_BRANCH = "Branch: "
# Every line this reader acts on contains one of these: the rest skip all regex work.
_JENKINS_HINTS = ("[Pipeline]", "ERROR: ", "script returned exit code", "skipped due to")


def jenkins_text(raw: str) -> str:
    """A console line without colours and without the Timestamper plugin's ``[time] `` prefix."""
    if "\x1b[8mha:" in raw:
        raw = _CONSOLE_NOTE.sub("", raw)
    return _TIMESTAMPER.sub("", clean_line(raw)).strip()


def _is_failure_line(text: str) -> bool:
    if _ERROR.match(text):
        return True
    code = _EXIT_CODE.search(text)
    return code is not None and int(code.group("code")) != 0


@dataclass
class _Stage:
    stage_id: str
    name: str
    started_at: datetime
    failed: bool = False
    skipped: str | None = None
    finished_at: datetime | None = None


@dataclass
class StageEvent:
    """What the Jenkins reader saw; turned into a STAGE signal by the stream."""

    stage_id: str
    name: str
    status: RunStatus
    started_at: datetime
    at: datetime
    finished_at: datetime | None = None
    conclusion: str | None = None
    tag: str = "open"


class JenkinsStages:
    """Jenkins ``[Pipeline]`` stage blocks of one console stream, read line by line."""

    def __init__(self) -> None:
        self._open: list[_Stage] = []
        self._stage_step = False  # the previous step line was `[Pipeline] stage`
        self._counts: dict[str, int] = {}
        self._last_closed: _Stage | None = None

    def feed(self, raw: str, at: datetime) -> list[StageEvent]:
        if not any(hint in raw for hint in _JENKINS_HINTS):
            return []
        text = jenkins_text(raw)
        if not text:
            return []
        if _STAGE_STEP.match(text):
            self._stage_step = True
            return []
        opened = _BLOCK_OPEN.match(text)
        if opened:
            return self._block(opened.group("name"), at)
        if text.startswith("[Pipeline] "):
            self._stage_step = False  # another step came between: that stage step opened nothing
        if _STAGE_CLOSE.match(text):
            return self._close(at)
        skipped = _SKIPPED.match(text)
        if skipped:
            return self._skipped(skipped.group("name"), skipped.group("why"), at)
        if _is_failure_line(text) and self._open:
            self._open[-1].failed = True
        return []

    def _block(self, name: str, at: datetime) -> list[StageEvent]:
        # A parallel branch block is not a stage, even right after `[Pipeline] stage`.
        if not self._stage_step or name.startswith(_BRANCH):
            return []
        self._stage_step = False
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        stage_id = f"jenkins-stage:{name}" + (f"#{count}" if count > 1 else "")
        stage = _Stage(stage_id, name, at)
        self._open.append(stage)
        return [StageEvent(stage_id, name, RunStatus.RUNNING, at, at)]

    def _close(self, at: datetime) -> list[StageEvent]:
        if not self._open:
            return []
        stage = self._open.pop()
        if stage.failed and self._open:
            self._open[-1].failed = True  # an error propagates out of nested stages
        status, conclusion = RunStatus.SUCCEEDED, None
        if stage.skipped is not None:
            status, conclusion = RunStatus.CANCELLED, "skipped"
        elif stage.failed:
            status, conclusion = RunStatus.FAILED, "failed"
        if stage.skipped is None:
            stage.finished_at = at
            self._last_closed = stage
        return [
            StageEvent(
                stage.stage_id, stage.name, status, stage.started_at, at, at, conclusion, "close"
            )
        ]

    def _skipped(self, name: str, why: str, at: datetime) -> list[StageEvent]:
        stage = next((s for s in reversed(self._open) if s.name == name), None)
        if stage is not None:
            stage.skipped = why
        earlier = self._last_closed
        if not why.startswith("earlier failure") or earlier is None or earlier.failed:
            return []
        # The failing step's ERROR line comes only after End of Pipeline: the last stage that
        # ran is the one that failed. Said once, with this later event time, so it wins.
        earlier.failed = True
        return [
            StageEvent(
                earlier.stage_id,
                earlier.name,
                RunStatus.FAILED,
                earlier.started_at,
                at,
                earlier.finished_at,
                "failed (later stages skipped)",
                "inferred-failure",
            )
        ]
