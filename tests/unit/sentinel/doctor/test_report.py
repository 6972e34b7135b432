"""sentinel doctor's decisions: topics, migrations, the permissions the components need."""

from __future__ import annotations

from runtime.config import load_settings
from sentinel.doctor.report import (
    Check,
    Status,
    exit_code,
    fail,
    migration_problems,
    ok,
    render_text,
    required_permissions,
    topic_problems,
    warn,
)


def test_topics_missing_and_partition_counts_that_differ() -> None:
    expected = {"s.ci": 3, "s.k8s": 3, "s.logs": 3}
    missing, wrong = topic_problems(expected, {"s.ci": 3, "s.k8s": 1, "other": 7})
    assert missing == ["s.logs"]
    assert wrong == ["s.k8s has 1 partitions, not 3"]
    assert topic_problems(expected, dict(expected)) == ([], [])


def test_migrations_pending_and_changed_after_they_were_applied() -> None:
    files = {"0001": "a", "0002": "b", "0003": "c"}
    assert migration_problems(files, {"0001": "a", "0002": "x"}) == (["0003"], ["0002"])
    assert migration_problems(files, dict(files)) == ([], [])


def labels(settings_overrides: dict[str, dict[str, object]]) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for p in required_permissions(load_settings(None, **settings_overrides), "ops"):
        by.setdefault(p.component, []).append(p.label())
    return by


def test_watcher_and_streamer_permissions_cluster_wide_by_default() -> None:
    by = labels({})
    assert by["k8s-watch"] == [
        f"{verb} {what} cluster-wide"
        for what in ("pods", "jobs.batch", "services", "events")
        for verb in ("list", "watch")
    ]
    assert by["log-stream"][-1] == "get pods/log cluster-wide"
    assert "leases" not in str(by)


def test_permissions_per_watched_namespace_and_for_leader_election() -> None:
    by = labels(
        {
            "k8s": {"namespaces": ["ci", "qa"], "kinds": ["Pod"]},
            "leader_election": {"enabled": True},
        }
    )
    assert by["k8s-watch"][:2] == ["list pods in ci", "watch pods in ci"]
    assert "get pods/log in qa" in by["log-stream"]
    assert "update leases.coordination.k8s.io in ops" in by["log-stream"]
    assert "jobs" not in str(by["k8s-watch"])


def test_exit_status_and_lines_name_the_fix_and_its_section() -> None:
    checks: list[Check] = [
        ok("kafka", "answers"),
        warn("webhook secret (github)", "not set", "set it", "webhook-secrets-not-set"),
    ]
    assert exit_code(checks) == 0
    checks.append(fail("store", "refused", "check store.dsn", "store-unreachable"))
    assert exit_code(checks) == 1
    text = render_text(checks)
    assert "FAIL  store: refused" in text
    assert "-> check store.dsn (see docs/troubleshooting.md#store-unreachable)" in text
    assert text.endswith("3 checks: 1 ok, 1 warn, 1 fail")
    assert checks[0].status is Status.OK
