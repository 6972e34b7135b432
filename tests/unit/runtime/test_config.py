from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.config import GITHUB_SECRET_ENV, BrokerKind, ConfigError, load_settings
from sentinel.cli import main
from tests.support.paths import REPO

EXAMPLE = REPO / "config.example.yaml"


def test_example_config_is_valid_and_matches_defaults() -> None:
    from_example = load_settings(EXAMPLE)
    defaults = load_settings(None)
    assert from_example.model_dump() == defaults.model_dump()


def test_env_overrides_yaml_for_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  bootstrap_servers: yaml:9092\ntopics:\n  partitions: 6\n")
    monkeypatch.setenv("SENTINEL_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    settings = load_settings(path)
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.topics.partitions == 6


def test_every_bad_key_is_named_with_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "kafka:\n  delivery_timeout_s: -1\n  bogus: 1\n"
        "topics:\n  partitions: many\n"
        "embedded:\n  broker: docker\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    problems = "\n".join(info.value.problems)
    assert "kafka.delivery_timeout_s: Input should be greater than 0" in problems
    assert "kafka.bogus: unknown key" in problems
    assert "topics.partitions: Input should be a valid integer" in problems
    assert "embedded.broker: Input should be 'auto', 'apache-kafka' or 'tansu'" in problems
    assert len(info.value.problems) == 4


def test_bad_env_value_names_the_key_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_API__PORT", "eighty")
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    assert info.value.problems == [
        "api.port: Input should be a valid integer, unable to parse string as an integer "
        "(got 'eighty') [or from env SENTINEL_API__PORT]"
    ]


def test_secret_in_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("webhooks:\n  github:\n    secret: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("webhooks.github.secret: secrets are not read")
    assert "hunter2" not in str(info.value)


def test_secret_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GITHUB_SECRET_ENV, raising=False)
    assert load_settings(None).github_webhook_secret() is None
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"webhooks:\n  github:\n    secret_file: {secret_file}\n")
    secret = load_settings(path).github_webhook_secret()
    assert secret is not None and secret.get_secret_value() == "from-file"
    monkeypatch.setenv(GITHUB_SECRET_ENV, "from-env")
    secret = load_settings(path).github_webhook_secret()
    assert secret is not None and secret.get_secret_value() == "from-env"


def test_missing_secret_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("webhooks:\n  github:\n    secret_file: /nonexistent/secret\n")
    expected = re.escape("webhooks.github.secret_file: expected a readable file")
    with pytest.raises(ConfigError, match=expected):
        load_settings(path)


def test_config_check_command_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("sink:\n  batch_rows: 0\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sink.batch_rows: Input should be greater than or equal to 1 (got 0)" in err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: [unclosed\n")
    assert main(["config", "check", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_broker_choice_is_an_enum() -> None:
    settings = load_settings(None, embedded={"broker": "tansu"})
    assert settings.embedded.broker is BrokerKind.TANSU


def test_a_consumed_value_over_the_limit_is_refused_naming_the_key_to_raise() -> None:
    kafka = load_settings(None).kafka
    assert kafka.value_problem(kafka.max_value_bytes) is None
    assert kafka.value_problem(10 * 1024 * 1024) == (
        "value of 10485760 bytes is over kafka.max_value_bytes=8388608 "
        "(raise it if such values are expected)"
    )


def test_the_value_limit_leaves_room_for_what_the_producers_send() -> None:
    # The webhook receiver publishes bodies up to webhooks.max_body_bytes (inside a CiEvent):
    # a limit below that would dead-letter them all.
    with pytest.raises(ConfigError) as info:
        load_settings(None, webhooks={"max_body_bytes": 10 * 1024 * 1024})
    (problem,) = info.value.problems
    assert "kafka.max_value_bytes (8388608) must be at least webhooks.max_body_bytes" in problem
    with pytest.raises(ConfigError, match=r"logs\.max_line_bytes"):
        load_settings(None, logs={"max_line_bytes": 8 * 1024 * 1024})
