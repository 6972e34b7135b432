"""The clean soak (issue 12): 50 clean runs of three pipelines with natural jitter give no anomaly.

The runs are built by the anomaly scenario generator (`soak` in
tests/data/anomaly_scenarios/build_anomaly_scenarios.py: CronJobs of Go tests with postgres and
of a service with its pytest e2e suite, durations +-20 %, log volume varying, occasional known
warnings, known errors a retry fixes) and replayed through the pure pipeline the worker runs
(the producers' normalisers, the router's signals, the run fold, the infra, test and log
detectors with the cold-start rule, baselines per pipeline and namespace). Every detector that
could fire on noise judges here from its cold start (3 samples) to a full baseline (20 runs).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support.paths import DATA

GENERATOR = DATA / "anomaly_scenarios" / "build_anomaly_scenarios.py"


def generator() -> ModuleType:
    name = "build_anomaly_scenarios"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_fifty_clean_runs_of_three_pipelines_give_no_anomaly() -> None:
    scenarios = generator()
    capture, config = scenarios.soak(runs=50)
    replay = scenarios.replay_capture(capture, config)
    runs = replay.states
    assert len(runs) == 150
    assert {state.status.value for state in runs.values()} == {"succeeded"}
    assert {(state.namespace, state.pipeline) for state in runs.values()} == {
        ("payments", "ledger-nightly"),
        ("ci", "orders-e2e"),
        ("reports", "reports-nightly"),
    }
    # Natural jitter is there: durations of a test spread over +-20 %.
    assert sorted(replay.anomalies) == []


def test_the_soak_is_not_blind() -> None:
    # The same soak with one fault in the last run of one pipeline: the detectors are on.
    scenarios = generator()
    capture, config = scenarios.soak(runs=8)
    slow = "TestExportPDF"
    pipe = scenarios.GoCron("reports", "reports-nightly", node="gke-ci-pool-3-9c2e1f7a-h7qm")
    pipe.tests = scenarios.SOAK_REPORT_TESTS
    last = scenarios.at(scenarios.datetime(2026, 4, 6, 0, 0, tzinfo=scenarios.UTC), 3600 * 9)
    pipe.build(capture, scenarios.GoPlan(last, 9, slow={slow: 41.0}))
    replay = scenarios.replay_capture(capture, config)
    assert sorted((t, s) for _, t, s in replay.anomalies) == [
        ("duration_regression", f"github.com/acme/reports/internal/export::{slow}"),
        ("run_duration_regression", "reports-nightly"),  # the run is 40 s longer too
    ]
