"""Schemathesis hooks (loaded with SCHEMATHESIS_HOOKS) for tests/integration/sentinel/
test_api_schema.py: two generated path parameters in three become real ids of the scenario
store, chosen by the generated value, so the requests reach the store and not just a 404."""

from __future__ import annotations

from typing import Any

import schemathesis

REAL = {
    "run_id": ["job:ci/orders-api-tests-29501700", "job:ci/orders-api-tests-29503080"],
    "name": ["orders-api-tests"],
}


@schemathesis.hook
def map_path_parameters(_ctx: Any, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    for name, real in REAL.items():
        value = (parameters or {}).get(name)
        if isinstance(value, str) and len(value) % 3 != 0:
            assert parameters is not None
            parameters[name] = real[len(value) % len(real)]
    return parameters
