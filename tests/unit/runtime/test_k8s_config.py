"""The `k8s:` and `logs:` config sections: defaults, overrides, errors naming the bad key."""

from __future__ import annotations

import pytest

from runtime.config import ConfigError, K8sKind, load_settings


def test_defaults_follow_design_order() -> None:
    settings = load_settings(None)
    sources = [rule.label or f"annotation {rule.annotation}" for rule in settings.k8s.correlation]
    assert sources == [
        "sentinel.io/run-id",
        "tekton.dev/pipelineRun",
        "tekton.dev/taskRun",
        "workflows.argoproj.io/workflow",
        "annotation runUrl",
        "actions.github.com/scale-set-name",
        "batch.kubernetes.io/job-name",
        "job-name",
    ]
    assert settings.k8s.kinds == list(K8sKind)
    assert settings.k8s.namespaces == []  # all namespaces
    assert settings.logs.max_line_bytes == 64 * 1024


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_K8S__NAMESPACES", '["ci", "qa"]')
    monkeypatch.setenv("SENTINEL_LOGS__MAX_STREAMS", "7")
    settings = load_settings(None)
    assert settings.k8s.namespaces == ["ci", "qa"]
    assert settings.logs.max_streams == 7


def test_bad_rules_and_kinds_are_reported_with_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None,
            k8s={
                "correlation": [
                    {"label": "a", "annotation": "b"},
                    {"label": "x", "template": "{y}"},
                ],
                "kinds": ["Pod", "Deployment"],
            },
            logs={"max_line_bytes": 10},
        )
    text = "\n".join(caught.value.problems)
    assert "k8s.correlation.0: Value error, set exactly one of label or annotation" in text
    assert "k8s.correlation.1: Value error, template may use only" in text
    assert "k8s.kinds.1" in text
    assert "logs.max_line_bytes" in text
