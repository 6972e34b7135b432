"""The read API against its own served OpenAPI spec, with schemathesis, over real scenario data.

The real `schemathesis` command runs every phase (examples, coverage, fuzzing, stateful) on
every operation of the spec `sentinel api` serves: no 5xx; every status code, content type,
header and body is the one documented; invalid input is refused with a 4xx; a wrong method gets
405 with an Allow header. Path parameters are often real run ids and a real pipeline
(tests/support/schemathesis_hooks.py), so the requests reach the store, not only the 404 path.
Bounded: 20 examples per operation and phase, a fixed seed.

One check is left out: `positive_data_acceptance` (no 400 for a schema-valid request). Two rules
of this API cannot be written in JSON Schema: a cursor is opaque (only one the API returned is
valid) and a zoom window's `to` must be later than its `from`; both are 400s with the reason.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.sentinel.conftest import ScenarioApi
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "schemathesis"


def test_every_operation_keeps_its_spec(scenario_api: ScenarioApi, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS if SCHEMATHESIS.exists() else "schemathesis"),
        "run",
        f"{scenario_api.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--suppress-health-check",
        "filter_too_much,too_slow",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    # Run in the test's temporary directory (schemathesis keeps a cache where it runs); the
    # hooks module is found through PYTHONPATH.
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.support.schemathesis_hooks")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=420, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
