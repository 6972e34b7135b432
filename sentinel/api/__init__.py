"""The HTTP API: operations, the read API, the pages, and the routers callers add.

Modules: `app` (create_api), `runs` (/api/runs and one run's parts), `catalog` (anomalies,
flaky tests, pipelines), `ops` (/health, /ready, /metrics, /api/stats), `auth` (api.auth),
`errors` (4xx with a reason). The queries are pure (`sentinel.queries`), run by
`sentinel.views`; the pages are `sentinel.web`.
"""

from sentinel.api.app import create_api
from sentinel.api.runs import HIDDEN_RUN_FIELDS, run_view
from sentinel.queries.anomalies import row_to_anomaly, run_anomalies_sql
from sentinel.views.reader import RunStore

__all__ = [
    "HIDDEN_RUN_FIELDS",
    "RunStore",
    "create_api",
    "row_to_anomaly",
    "run_anomalies_sql",
    "run_view",
]
