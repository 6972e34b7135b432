"""Bearer-token configuration and checking for the Jenkins and generic webhooks."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.webhooks.routes import bearer_matches
from runtime.config import GENERIC_TOKEN_ENV, JENKINS_TOKEN_ENV, ConfigError, load_settings


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JENKINS_TOKEN_ENV, raising=False)
    monkeypatch.delenv(GENERIC_TOKEN_ENV, raising=False)


def test_tokens_come_from_env_then_file_else_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(None).jenkins_webhook_token() is None
    assert load_settings(None).generic_webhook_token() is None
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    settings = load_settings(None, webhooks={"generic": {"token_file": str(token_file)}})
    token = settings.generic_webhook_token()
    assert token is not None and token.get_secret_value() == "from-file"
    monkeypatch.setenv(GENERIC_TOKEN_ENV, "from-env")
    token = settings.generic_webhook_token()
    assert token is not None and token.get_secret_value() == "from-env"
    assert settings.jenkins_webhook_token() is None


def test_token_in_yaml_is_refused_and_missing_token_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("webhooks:\n  jenkins:\n    token: hunter2\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert any(p.startswith("webhooks.jenkins.token:") for p in caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, webhooks={"jenkins": {"token_file": str(tmp_path / "absent")}})
    assert caught.value.problems[0].startswith("webhooks.jenkins.token_file:")


def test_jenkins_instance_must_be_a_simple_name() -> None:
    assert load_settings(None, webhooks={"jenkins": {"instance": "ci-eu.1"}})
    with pytest.raises(ConfigError) as caught:
        load_settings(None, webhooks={"jenkins": {"instance": "ci:eu"}})
    assert caught.value.problems[0].startswith("webhooks.jenkins.instance:")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer  s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cretX", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("Bearer", False),
        ("", False),
        (None, False),
        ("Bearer sécret", False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(b"s3cret", header) is ok
