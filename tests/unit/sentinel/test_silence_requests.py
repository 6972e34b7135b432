"""A client's mistake in POST /api/silences is a 400 with the reason, never a 500.

Each body here once reached the server as a 500 (found by schemathesis): text that UTF-8 cannot
encode echoed in the error, a matcher object that is no label name, a duration no date holds.
The silence store is never reached for a refused request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sentinel.alerts_api import alerts_router
from sentinel.api.errors import install


class NeverWritten:
    def put(self, silence: Any) -> None:
        raise AssertionError(f"a refused silence was written: {silence}")


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install(app)
    app.include_router(alerts_router(None, NeverWritten()))  # type: ignore[arg-type]
    return TestClient(app)


def post(client: TestClient, body: dict[str, Any]) -> Any:
    raw = json.dumps(body)  # ensure_ascii: an unpaired surrogate travels as \ud800
    return client.post("/api/silences", content=raw, headers={"content-type": "application/json"})


BASE = {"matchers": ['team="web"'], "created_by": "ana", "comment": "deploy window"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"created_by": "ana\ud800"}, "created_by"),
        ({"matchers": [{"name": "te am", "value": "x"}], "duration": "1h"}, "not a matcher"),
        ({"duration": "999999999d"}, "at most 365 days"),
        ({"matchers": ['team=~"("'], "duration": "1h"}, "regular expression"),
        ({"ends_at": "0.5"}, "ends_at"),
    ],
)
def test_a_bad_silence_is_a_400_naming_what_is_wrong(
    client: TestClient, change: dict[str, Any], reason: str
) -> None:
    body = {**BASE, "duration": "2h", **change}
    if "ends_at" in change:
        del body["duration"]
    answer = post(client, body)
    assert answer.status_code == 400
    assert reason in answer.text
