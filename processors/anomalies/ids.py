"""The one way every detector names a finding (DESIGN.md: the same finding twice is one anomaly).

An anomaly id is 32 hex characters of sha256 over the run, the type, the subject, any
detector-specific parts (a structure rule's name) and the event-time window, JSON-encoded so no
separator can be faked and with times in UTC so an offset never changes an id.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from schemas.utc import utc_iso


def anomaly_id(
    run_id: str, kind: str, subject: str, start: datetime, end: datetime, *extra: str
) -> str:
    parts = [run_id, kind, subject, *extra, utc_iso(start), utc_iso(end)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
