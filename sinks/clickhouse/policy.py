"""Pure decisions of the sink: batch plans kept with the offsets, and which errors reject rows.

**Batch plans (exactly once across a crash).** An insert is deduplicated by a token made from
its partition's offset range, but that only helps if a re-read after a crash cuts the *same*
range: a restarted sink with a different batch size or timing would cut another one, and its
token would not match. So before inserting a slice the sink commits the slice's first offset
(where the group already stands) with the planned range as commit metadata; after the insert it
commits the next offset with empty metadata. A sink that finds a plan when it is assigned the
partition re-reads exactly that range first and inserts it with the same token: ClickHouse drops
what already landed. This is the idea of ClickHouse's Kafka Connect sink (deterministic batches
plus insert deduplication), with the state kept in Kafka's own offset store.

**Rejected rows.** A server error about the data (a CHECK constraint, a value the column type
cannot hold, text that does not parse) rejects the whole insert, but only some of its rows are
bad: the sink bisects the slice to find them and dead-letters those with the server's reason.
Every other error (unreachable server, timeouts, memory limits, a missing table) is treated as
"the store is unavailable": keep the batch, pause, retry.
"""

from __future__ import annotations

import re

PLAN_PREFIX = "sentinel-sink/plan:"
_PLAN = re.compile(r"^(?P<first>\d+)-(?P<last>\d+)$")

# ClickHouse error codes that blame the inserted data, not the server.
REJECTION_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (throwIf in a materialized view)
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)
# clickhouse-connect raises these when it cannot serialize a value for the column type (a
# number out of range, a wrong type): the row is bad wherever the server is.
CLIENT_DATA_ERRORS = frozenset({"DataError"})
# Never a rejection, whatever the code says: the server could not be reached or answered.
UNAVAILABLE_ERRORS = frozenset({"OperationalError"})


def plan_metadata(first_offset: int, last_offset: int) -> str:
    return f"{PLAN_PREFIX}{first_offset}-{last_offset}"


def parse_plan(metadata: str | None, committed_offset: int) -> tuple[int, int] | None:
    """The planned (first, last) offsets in commit metadata, if they start at the commit."""
    if not metadata or not metadata.startswith(PLAN_PREFIX):
        return None
    match = _PLAN.match(metadata[len(PLAN_PREFIX) :])
    if match is None:
        return None
    first, last = int(match["first"]), int(match["last"])
    # A plan is only valid where it was made: at the committed offset, not after it.
    if first != committed_offset or last < first:
        return None
    return first, last


def rejection_reason(exc: BaseException) -> str | None:
    """The server's (or client's) reason if `exc` rejects the inserted rows, else None."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & UNAVAILABLE_ERRORS:
        return None
    code = getattr(exc, "code", None)
    if code is None:
        code = _code_in(str(exc))
    if names & CLIENT_DATA_ERRORS or code in REJECTION_CODES:
        return _reason(exc)
    return None


def _code_in(text: str) -> int | None:
    match = re.search(r"\bCode:\s*(\d+)", text)
    return int(match.group(1)) if match else None


def _reason(exc: BaseException) -> str:
    parts = [str(exc).strip()]
    cause = exc.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in parts[0]:
        parts.append(str(cause).strip())
    return ": ".join(parts)[:2000]
